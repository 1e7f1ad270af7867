"""Cost of an optimised all-stage request on DETR-R50's architecture (random weights), 480x640, CPU.

    python -m benchmarks.optimisation --json

Prints `optimised_request_forward_equivalents`: the wall time of one optimised request (capture,
then all four stages optimised in one batch with the default OptimisationConfig, exactly its step
budget of forward+backward evaluations) over the wall time of one plain DETR forward, measured in
this run, each request between plain forwards (the median of those before and after it) so that
load on a shared machine hits both alike.
Also: the same ratio by FLOPs, and the cost model's ESTIMATE of the GPU seconds and of the
ZeroGPU duration the app would ask for it (inversion/optimisation/cost.py: measured FLOPs over a
stated GPU throughput, not a GPU measurement), with the quota it would charge at ZeroGPU's 1.5
duration factor. One thread, as on the project's CPU runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

import torch
from transformers import DetrForObjectDetection

from benchmarks.core import _test_image
from inversion.core.detector import DEFAULT_WORKING_SIZE, Detector
from inversion.core.images import normalise
from inversion.core.stages import STAGE_SOURCES
from inversion.optimisation import OptimisationConfig, optimise_inversions
from inversion.optimisation.cost import (
    ASSUMED_GPU_FLOPS_PER_SECOND,
    QUOTA_FACTOR,
    gpu_seconds,
    measure_cost,
    zero_gpu_duration,
)
from inversion.testing import detr_r50_config

FORWARDS_PER_TIMING = 3  # plain forwards timed before and after each request: one alone varied 1.3-3.0 s between runs


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run(repeats: int = 1, steps: int | None = None, working_size: tuple[int, int] = DEFAULT_WORKING_SIZE) -> dict:
    """Time requests and plain forwards alternately (forward, request, forward, ...) and apply the cost model."""
    torch.manual_seed(0)
    detector = Detector(DetrForObjectDetection(detr_r50_config()), working_size=working_size, name="detr-r50-random")
    config = OptimisationConfig() if steps is None else OptimisationConfig(steps=steps)
    canvas = detector.preprocess([_test_image(working_size)])
    pixels, mask = normalise(canvas.pixels), canvas.pixel_mask

    def plain_forward():
        with torch.no_grad():
            detector.model(pixel_values=pixels, pixel_mask=mask)

    def request():
        optimise_inversions(detector, detector.capture(canvas), list(STAGE_SOURCES), config)

    plain_forward()
    forwards, requests = [[timed(plain_forward) for _ in range(FORWARDS_PER_TIMING)]], []
    for _ in range(repeats):
        requests.append(timed(request))
        forwards.append([timed(plain_forward) for _ in range(FORWARDS_PER_TIMING)])
    ratios = [seconds / statistics.median(forwards[i] + forwards[i + 1]) for i, seconds in enumerate(requests)]
    cost = measure_cost(detector)
    flops = cost.request_flops(1, 0, config.steps, STAGE_SOURCES)
    duration = zero_gpu_duration(flops, config.steps)
    return {
        "working_size": list(working_size),
        "threads": torch.get_num_threads(),
        "steps": config.steps,
        "parameterisation": config.parameterisation,
        "optimiser": config.optimiser,
        "images_per_step": len(STAGE_SOURCES),
        "detr_forward_s": round(statistics.median(sum(forwards, [])), 3),
        "detr_forwards_s": [round(seconds, 3) for seconds in sum(forwards, [])],
        "optimised_request_s": round(statistics.median(requests), 2),
        "optimised_request_forward_equivalents": round(statistics.median(ratios), 1),
        "forward_equivalents_by_flops": round(flops / cost.capture_flops, 1),
        "detr_forward_gflops": round(cost.capture_flops / 1e9, 1),
        "step_gflops": round(cost.step_flops(STAGE_SOURCES) / 1e9, 1),
        "request_gflops": round(flops / 1e9, 1),
        "assumed_gpu_tflops": ASSUMED_GPU_FLOPS_PER_SECOND / 1e12,
        "gpu_seconds_estimate": round(gpu_seconds(flops, config.steps), 1),
        "zero_gpu_duration_s_estimate": duration,
        "zero_gpu_quota_s_estimate": round(duration * QUOTA_FACTOR, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--repeats", type=int, default=1, help="optimised requests to time (each between forwards)")
    parser.add_argument("--steps", type=int, default=None, help="override the default step budget")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(args.repeats, args.steps)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
        print(f"optimised all-stage request = {result['optimised_request_forward_equivalents']} forward-equivalents "
              f"(target <= 600); ZeroGPU duration asked: {result['zero_gpu_duration_s_estimate']} s (estimate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
