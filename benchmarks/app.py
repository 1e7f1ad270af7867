"""Latency and memory of the running app (its own process) serving Shapes and DETR-R50, driven by gradio_client.

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
import sys
import tempfile
import time
from pathlib import Path

from inversion.core.registry import read_space_config
from inversion.testing import detr_r50_config, save_standin, write_space_config
from lab.server import child_process

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0
TARGET_GIB = 3.0


def bench_config(folder: Path) -> Path:
    """A space config with the bundled Shapes model and DETR-R50's architecture with random weights.

    Shapes keeps its entry as written (its inverters record their detector by that path): the
    config's folder gets a link to the repository's checkpoints/, against which such paths resolve.
    """
    config = read_space_config(REPO / "space_config.yaml")
    (folder / "checkpoints").symlink_to(REPO / "checkpoints", target_is_directory=True)
    shapes = config["models"]["shapes"]
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

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model is local: the app (a child process) never asks the Hub
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = bench_config(folder)
        start = time.perf_counter()
        with child_process(config, folder) as (process, url):
            startup = time.perf_counter() - start
            log = (folder / "app.log").read_text()
            if "not served" in log or "served without inverters" in log:  # lab.catalogue's warnings
                raise RuntimeError(f"The app does not serve both models whole, so the timings would mislead: {log[-2000:]}")
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
