"""Latency and memory of the running app (its own process) serving Shapes and DETR-R50, driven by gradio_client.

    python -m benchmarks.app --json
    python -m benchmarks.app --load --json [--clients 16 --requests 4 --sequential 500 --baseline ../other-checkout]

Shapes is the bundled model; DETR-R50 is its architecture with random weights (nothing is downloaded).
Prints the median and worst end-to-end time of stage-reconstruction requests for each model,
the app's start-up time and its peak resident memory (VmHWM) with both models loaded.
Targets (issue 4): Shapes request <= 1 s, peak memory <= 3 GiB.

--load serves Shapes alone and drives it over loopback with N clients x M stage requests, each
client a thread with its own gradio_client.Client presenting its own address as the Space's proxy
would (x-forwarded-for; all share one TLS context, see `tls_settings`): identical requests (a room
opening one shared link), then one image per client; then one request at a time, and 500 sequential
requests for the app's memory growth. Each scenario reports p50/p95/max latency, throughput, errors
and the app's resident memory before, at its peak and after. --baseline serves another checkout's
app too (e.g. a worktree of main before a change), scenario by scenario in turn with this one, so
both are measured under the same load.
Targets (issue 11): 16 x 4 identical and 16 x 4 different: 0 errors, p95 <= 5 s, identical >= 3
requests/s; one request alone: median <= 0.6 s; 500 sequential requests: memory grows <= 50 MB.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from inversion.core.registry import read_space_config
from inversion.testing import detr_r50_config, save_standin, write_space_config
from lab.admission import PROXY_VARIABLE
from lab.server import child_process

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0
TARGET_GIB = 3.0
LOAD_TARGETS = {"p95_s": 5.0, "identical_requests_per_s": 3.0, "single_median_s": 0.6, "rss_growth_mb": 50.0}


def bench_config(folder: Path, with_detr: bool = True) -> Path:
    """A space config with the bundled Shapes model and (with_detr) DETR-R50's architecture with random weights.

    Shapes keeps its entry as written (its inverters record their detector by that path): the
    config's folder gets a link to the repository's checkpoints/, against which such paths resolve.
    """
    config = read_space_config(REPO / "space_config.yaml")
    (folder / "checkpoints").symlink_to(REPO / "checkpoints", target_is_directory=True)
    shapes = config["models"]["shapes"]
    detr = {**config["models"]["detr-resnet-50"], **save_standin(folder / "detr", detr_r50_config(), (480, 640)),
            "label": "DETR-R50 architecture (random weights)"}
    models = {"shapes": shapes, "detr-resnet-50": detr} if with_detr else {"shapes": shapes}
    return write_space_config(folder / "space_config.yaml", models, "shapes", config["limits"])


def proc_status_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status (VmHWM, VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc: run this on Linux")


def peak_gib(pid: int) -> float:
    """The peak resident memory of a process (VmHWM), in GiB."""
    return proc_status_kib(pid, "VmHWM") / 2**20


def time_requests(client, image: Path, model: str, repeats: int) -> list[float]:
    from gradio_client import handle_file

    times = []
    for _ in range(repeats + 1):  # the first request warms up
        start = time.perf_counter()
        client.predict(handle_file(str(image)), model, False, False, api_name="/stages")  # every input: /stages is undocumented
        times.append(time.perf_counter() - start)
    return times[1:]


def check_served_whole(folder: Path) -> None:
    """Refuse to time an app that serves a model without its inverters (lab.catalogue's warnings)."""
    log = (folder / "app.log").read_text()
    if "not served" in log or "served without inverters" in log:
        raise RuntimeError(f"The app does not serve its models whole, so the timings would mislead: {log[-2000:]}")


def run(repeats: int = 10) -> dict:
    from gradio_client import Client

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model is local: the app (a child process) never asks the Hub
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = bench_config(folder)
        start = time.perf_counter()
        with child_process(config, folder) as (process, url):
            startup = time.perf_counter() - start
            check_served_whole(folder)
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


class MemoryWatch:
    """The app's resident memory sampled every 50 ms in a thread while the block runs: before, peak, after (MB)."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()

    def _rss_mb(self) -> float:
        return proc_status_kib(self.pid, "VmRSS") / 1024

    def __enter__(self):
        self.before = self._rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.05):
            self.samples.append(self._rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.after = self._rss_mb()

    def report(self) -> dict:
        return {"rss_before_mb": round(self.before, 1), "rss_peak_mb": round(max([self.before, *self.samples, self.after]), 1),
                "rss_after_mb": round(self.after, 1)}


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(share * len(ordered) + 0.5)) - 1))]


def latency_report(times: list[float], errors: list[str], wall: float) -> dict:
    """p50/p95/max latency of the answered requests, throughput over the wall time, errors (the first few)."""
    report = {"requests": len(times) + len(errors), "errors": len(errors), "error_examples": sorted(set(errors))[:3],
              "wall_s": round(wall, 2), "requests_per_s": round(len(times) / wall, 2)}
    if times:
        report.update(p50_s=round(percentile(times, 0.5), 3), p95_s=round(percentile(times, 0.95), 3),
                      max_s=round(max(times), 3))
    return report


@functools.cache
def tls_settings() -> ssl.SSLContext:
    """One TLS context for every client of the load scenarios, made once. gradio_client opens an httpx client for
    each call (upload, join, stream, each file downloaded: a dozen per stage request) and, unless given a context,
    each reads the CA bundle again: about 30 ms of CPU per call here, on the app's cores, which no browser spends
    (it reads its certificates once; these calls are plain HTTP on loopback anyway)."""
    return ssl.create_default_context()


def visitor_client(url: str, index: int):
    """A gradio_client.Client that presents itself as visitor `index` (its address as the Space's proxy gives it)."""
    from gradio_client import Client

    return Client(url, verbose=False, headers={"x-forwarded-for": f"10.11.{index // 250}.{index % 250 + 1}"},
                  ssl_verify=tls_settings())


def stage_request(client, image: Path) -> None:
    from gradio_client import handle_file

    client.predict(handle_file(str(image)), "shapes", False, False, api_name="/stages")


def crowd(url: str, pid: int, images: list[Path], requests: int) -> dict:
    """len(images) clients at once, client i sending `requests` stage requests for images[i], one after another."""
    clients = [visitor_client(url, index) for index in range(len(images))]
    start_line = threading.Barrier(len(clients))

    def visitor(index: int) -> tuple[list[float], list[str]]:
        times, errors = [], []
        start_line.wait()
        for _ in range(requests):
            start = time.perf_counter()
            try:
                stage_request(clients[index], images[index])
                times.append(time.perf_counter() - start)
            except Exception as error:  # noqa: BLE001  (every failure is counted and named, none ends the run)
                errors.append(f"{error.__class__.__name__}: {str(error)[:200]}")
        return times, errors

    with MemoryWatch(pid) as memory, ThreadPoolExecutor(len(clients)) as pool:
        start = time.perf_counter()
        outcomes = list(pool.map(visitor, range(len(clients))))
        wall = time.perf_counter() - start
    for client in clients:
        client.close()
    report = latency_report([t for times, _ in outcomes for t in times], [e for _, errors in outcomes for e in errors], wall)
    return {"clients": len(clients), "requests_per_client": requests, **report, **memory.report()}


def sequential(url: str, pid: int, image: Path, requests: int) -> dict:
    """`requests` stage requests one after another from one client: latency and the app's memory growth."""
    client = visitor_client(url, 0)
    times, errors = [], []
    with MemoryWatch(pid) as memory:
        start = time.perf_counter()
        for _ in range(requests):
            begin = time.perf_counter()
            try:
                stage_request(client, image)
                times.append(time.perf_counter() - begin)
            except Exception as error:  # noqa: BLE001
                errors.append(f"{error.__class__.__name__}: {str(error)[:200]}")
        wall = time.perf_counter() - start
    client.close()
    report = {**latency_report(times, errors, wall), **memory.report()}
    return {**report, "rss_growth_mb": round(memory.after - memory.before, 1)}


def shapes_images(folder: Path, count: int) -> list[Path]:
    """`count` different images of the Shapes world (held-out seeds), saved as PNG."""
    from inversion.shapes.world import generate_sample

    paths = []
    for seed in range(count):
        paths.append(folder / f"shapes-{seed}.png")
        generate_sample(10_000 + seed)[0].save(paths[-1])
    return paths


def load_run(clients: int, requests: int, sequential_requests: int, baseline: Path | None) -> dict:
    """The load scenarios against this checkout's app, and scenario by scenario the baseline's when given."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ[PROXY_VARIABLE] = "1"  # the clients' x-forwarded-for stands for the Space's proxy: one visitor each
    load_before = os.getloadavg()
    roots = {"after": REPO, **({"before": baseline.resolve()} if baseline else {})}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        images = shapes_images(Path(tmp), clients)
        apps = {}
        for name, root in roots.items():
            folder = Path(tmp) / name
            folder.mkdir()
            process, url = stack.enter_context(child_process(bench_config(folder, with_detr=False), folder, root=root))
            check_served_whole(folder)
            stage_request(visitor_client(url, 0), images[0])  # warm-up
            apps[name] = (process.pid, url)
        results = {name: {"app": str(roots[name])} for name in apps}
        scenarios = {
            "single": lambda pid, url: crowd(url, pid, images[:1], 10),
            "identical": lambda pid, url: crowd(url, pid, [REPO / "examples" / "shapes_15.png"] * clients, requests),
            "different": lambda pid, url: crowd(url, pid, images, requests),
            "sequential": lambda pid, url: sequential(url, pid, images[0], sequential_requests),
        }
        for scenario, measure in scenarios.items():
            for name, (pid, url) in apps.items():
                print(f"{scenario}: {name}", file=sys.stderr, flush=True)
                results[name][scenario] = measure(pid, url)
        for name in apps:  # what the app said about failed requests, while its folder still exists
            if any(report["errors"] for scenario, report in results[name].items() if scenario != "app"):
                results[name]["app_log_tail"] = (Path(tmp) / name / "app.log").read_text()[-3000:]
    return {**results, "targets": LOAD_TARGETS, "cpu_count": os.cpu_count(),
            "load_average_before_and_after": [load_before, os.getloadavg()],
            "threads": os.environ.get("OMP_NUM_THREADS", "default")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Latency and memory of the running app.")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--load", action="store_true", help="the load scenarios (Shapes only) instead")
    parser.add_argument("--clients", type=int, default=16, help="--load: clients at once")
    parser.add_argument("--requests", type=int, default=4, help="--load: requests per client")
    parser.add_argument("--sequential", type=int, default=500, help="--load: sequential requests for memory growth")
    parser.add_argument("--baseline", type=Path, help="--load: another checkout whose app is measured in turn")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.load:
        result = load_run(args.clients, args.requests, args.sequential, args.baseline)
    else:
        result = run(args.repeats)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
