"""Latency and memory of the running app serving Shapes and DETR-R50, driven by gradio_client.

    python -m benchmarks.app --json

Shapes is the bundled model; DETR-R50 is its architecture with random weights (nothing is downloaded).
Prints the median and worst end-to-end time of stage-reconstruction requests for each model,
the app's start-up time and its peak resident memory (VmHWM) with both models loaded.
Targets (issue 4): Shapes request <= 1 s, peak memory <= 3 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from inversion.core.registry import read_space_config
from inversion.testing import detr_r50_config, save_standin, write_space_config
from lab.server import free_port

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0
TARGET_GIB = 3.0


@contextmanager
def app_process(config: Path, folder: Path, optimise_steps: int | None = None, timeout: float = 300.0):
    """The app serving `config` in its own process on a free loopback port; yields (process, URL)."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_EXAMPLES_CACHE=str(folder / "examples-cache"),
               GRADIO_ANALYTICS_ENABLED="False")
    command = [sys.executable, "-m", "lab.server", "--config", str(config), "--port", str(port)]
    command += ["--optimise-steps", str(optimise_steps)] if optimise_steps else []
    log_path = folder / "app.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + timeout
            while not _answers(url):
                if process.poll() is not None:
                    raise RuntimeError(f"app.py exited with {process.returncode}: {log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s; see {log_path}")
                time.sleep(0.5)
            yield process, url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def bench_config(folder: Path) -> Path:
    """A space config with the bundled Shapes model and DETR-R50's architecture with random weights."""
    config = read_space_config(REPO / "space_config.yaml")
    shapes = dict(config["models"]["shapes"])
    shapes.update(detector=str(REPO / shapes["detector"]), inverters=str(REPO / shapes["inverters"]))
    detr = {**config["models"]["detr-resnet-50"], **save_standin(folder / "detr", detr_r50_config(), (480, 640)),
            "label": "DETR-R50 architecture (random weights)"}
    return write_space_config(folder / "space_config.yaml", {"shapes": shapes, "detr-resnet-50": detr}, "shapes",
                              config["limits"])


def peak_gib(pid: int) -> float:
    """The peak resident memory of a process (VmHWM), in GiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc: run this on Linux")


def time_requests(client, image: Path, model: str, repeats: int) -> list[float]:
    from gradio_client import handle_file

    times = []
    for _ in range(repeats + 1):  # the first request warms up
        start = time.perf_counter()
        client.predict(handle_file(str(image)), model, False, api_name="/stages")
        times.append(time.perf_counter() - start)
    return times[1:]


def run(repeats: int = 10) -> dict:
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = bench_config(folder)
        start = time.perf_counter()
        with app_process(config, folder) as (process, url):
            startup = time.perf_counter() - start
            client = Client(url, verbose=False)
            shapes = time_requests(client, REPO / "examples" / "shapes_15.png", "shapes", repeats)
            detr = time_requests(client, REPO / "examples" / "astronaut.png", "detr-resnet-50", max(3, repeats // 3))
            peak = peak_gib(process.pid)
    return {
        "shapes_stage_request_s": {"median": statistics.median(shapes), "max": max(shapes)},
        "detr_r50_stage_request_s": {"median": statistics.median(detr), "max": max(detr)},
        "shapes_request_vs_target": statistics.median(shapes) / TARGET_SECONDS,
        "startup_s": startup,
        "peak_memory_gib": peak,
        "peak_memory_vs_target": peak / TARGET_GIB,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Latency and memory of the running app.")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.repeats)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
