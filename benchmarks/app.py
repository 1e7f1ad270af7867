"""Latency and memory of the running app: `python app.py` serving Shapes and DETR-R50, driven by gradio_client.

    python -m inversion.app_bench --json

Shapes is the bundled model when its inverters exist, else a random-weight stand-in of its
architecture; DETR-R50 is always its architecture with random weights (nothing is downloaded).
Prints the median and worst end-to-end time of stage-reconstruction requests for each model,
the app's start-up time and its peak resident memory (VmHWM) with both models loaded.
Targets (issue 4): Shapes request <= 1 s, peak memory <= 3 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from inversion.core.checkpoints import PROJECT_ROOT
from inversion.core.registry import read_space_config

TARGET_SECONDS = 1.0
TARGET_GIB = 3.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def app_process(config: Path, folder: Path, timeout: float = 300.0):
    """`python app.py` serving `config` on a free localhost port; yields (process, URL)."""
    port = free_port()
    env = dict(os.environ, INVERSION_SPACE_CONFIG=str(config), HF_HUB_OFFLINE="1", GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_SERVER_PORT=str(port), GRADIO_EXAMPLES_CACHE=str(folder / "examples-cache"),
               GRADIO_ANALYTICS_ENABLED="False")
    log_path = folder / "app.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "app.py")], env=env, cwd=PROJECT_ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
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


def bench_config(folder: Path) -> tuple[Path, str]:
    """A space config with Shapes (bundled, or a stand-in) and a random-weight DETR-R50; and which Shapes."""
    from benchmarks.core import detr_r50_config
    from inversion.testing import save_standin, shapes_config, write_space_config

    models = read_space_config()["models"]
    shapes, kind = models["shapes"], "bundled"
    if not (PROJECT_ROOT / shapes["inverters"] / "inverters.json").is_file():
        shapes = {**shapes, **save_standin(folder / "shapes", shapes_config(), tuple(shapes["working_size"])),
                  "label": "Shapes stand-in (random weights)"}
        kind = "stand-in (random weights)"
    detr = {**models["detr-resnet-50"], **save_standin(folder / "detr", detr_r50_config(), (480, 640)),
            "label": "DETR-R50 architecture (random weights)"}
    return write_space_config(folder / "space_config.yaml", {"shapes": shapes, "detr-resnet-50": detr}, "shapes"), kind


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
        config, shapes_kind = bench_config(folder)
        start = time.perf_counter()
        with app_process(config, folder) as (process, url):
            startup = time.perf_counter() - start
            client = Client(url, verbose=False)
            shapes = time_requests(client, PROJECT_ROOT / "examples" / "shapes_15.png", "shapes", repeats)
            detr = time_requests(client, PROJECT_ROOT / "examples" / "astronaut.png", "detr-resnet-50", max(3, repeats // 3))
            peak = peak_gib(process.pid)
    return {
        "shapes_stage_request_s": {"median": statistics.median(shapes), "max": max(shapes)},
        "detr_r50_stage_request_s": {"median": statistics.median(detr), "max": max(detr)},
        "shapes_request_vs_target": statistics.median(shapes) / TARGET_SECONDS,
        "startup_s": startup,
        "peak_memory_gib": peak,
        "peak_memory_vs_target": peak / TARGET_GIB,
        "shapes_model": shapes_kind,
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
