"""Speed, compute and memory of capture + reconstruction on DETR-R50's architecture (random weights).

    python -m inversion.bench --json

Builds DETR-R50 from its config (same compute as the real model; nothing is downloaded) and the
default inverter stack for it, and prints one JSON object measured in this run at 480x640 on the
CPU. Ratios are measured within the run, so a noisy machine affects both sides alike.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import statistics
import sys
import tempfile
import time

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from transformers import DetrForObjectDetection

from inversion.core.detector import DEFAULT_WORKING_SIZE, Detector
from inversion.core.families import FAMILIES, family_for
from inversion.core.images import normalise
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.core.reconstruct import reconstruct
from inversion.core.registry import find_spec, load_detector
from inversion.core.stages import STAGE_SOURCES
from inversion.shapes.architectures import heldout_images
from inversion.testing import detr_r50_config, r50_config, tiny_config
from inversion.training import recipe
from inversion.training.cost import training_step_flops
from inversion.training.feature_cache import (
    CACHED_STAGES,
    FeatureCache,
    cached_representations,
    collate_features,
    write_cache,
)
from inversion.training.objectives import ModularObjective

INVERSE_BACKBONE_BUDGET = 0.15  # the inverse backbone's FLOPs over DETR-R50's forward at 480x640 (issue 22)


def count_flops(function) -> int:
    """Floating-point operations of one call, counted by torch.utils.flop_counter."""
    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def paired_seconds(first, second, repeats: int) -> tuple[list[float], list[float]]:
    """Wall times of `first` and `second`, alternated `repeats` times after one warm-up each,
    so that load changes on a shared machine hit both sides alike."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, bucket in zip((first, second), times):
            start = time.perf_counter()
            function()
            bucket.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def run(repeats: int = 5, working_size: tuple[int, int] = DEFAULT_WORKING_SIZE,
        backbone_widths: list[int] | None = None) -> dict:
    """Measure everything the benchmark reports; returns a JSON-able dict. `backbone_widths`: another
    inverse backbone than the default (its channels per level, grid first), e.g. a candidate for the recipe."""
    torch.manual_seed(0)
    detector = Detector(DetrForObjectDetection(detr_r50_config()), working_size=working_size, name="detr-r50-random")
    overrides = {"backbone_widths": list(backbone_widths)} if backbone_widths else {}
    stack = InverterStack(InverterConfig.for_detector(detector, **overrides)).eval()
    canvas = detector.preprocess([_test_image(working_size)])
    pixels, mask = normalise(canvas.pixels), canvas.pixel_mask
    representations = detector.capture(canvas)

    def plain_forward():
        detector.model(pixel_values=pixels, pixel_mask=mask)

    def capture_and_reconstruct():
        reconstruct(stack, detector.capture(canvas), STAGE_SOURCES)

    forward_flops = count_flops(plain_forward)
    inverse_backbone_flops = count_flops(lambda: stack.backbone(representations.backbone))
    stack_flops = count_flops(lambda: reconstruct(stack, representations, STAGE_SOURCES))
    forward_times, full_times = paired_seconds(plain_forward, capture_and_reconstruct, repeats)
    forward_s, full_s = statistics.median(forward_times), statistics.median(full_times)
    return {
        "working_size": list(working_size),
        "inverse_backbone_widths": list(stack.config.backbone_widths),
        "threads": torch.get_num_threads(),
        "detr_forward_s": round(forward_s, 4),
        "capture_and_reconstruct_all_s": round(full_s, 4),
        "ratio": round(statistics.median(f / p for f, p in zip(full_times, forward_times)), 3),
        "detr_forward_gflops": round(forward_flops / 1e9, 2),
        "inverse_backbone_gflops": round(inverse_backbone_flops / 1e9, 2),
        "inverse_backbone_flops_fraction": round(inverse_backbone_flops / forward_flops, 4),
        "reconstruct_all_stages_gflops": round(stack_flops / 1e9, 2),
        "parameters": {
            "detr": sum(p.numel() for p in detector.model.parameters()),
            **{f"inverse_{stage}": sum(p.numel() for p in stack.module(stage).parameters())
               for stage in ("backbone", "encoder", "decoder", "prediction")},
        },
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }


def recipe_training_gflops(working_size: tuple[int, int] = recipe.WORKING_SIZE) -> dict:
    """GFLOPs of one training image under the DETR-R50 recipe (inversion/training/recipe.py), on DETR-R50's
    architecture: the frozen detector's capture, and the inverse modules' forward and backward (through the
    detector's backbone with a feature term); what `recipe.TRAINING_GFLOPS_PER_IMAGE` records."""
    torch.manual_seed(0)
    detector = Detector(DetrForObjectDetection(detr_r50_config()), working_size=working_size, name="detr-r50-random")
    stack = InverterStack(InverterConfig.for_detector(detector, backbone_widths=list(recipe.BACKBONE_WIDTHS)))
    capture_flops, inverse_flops = training_step_flops(detector, [_test_image(working_size)], stack,
                                                       recipe.FEATURE_WEIGHT, recipe.ADVERSARIAL_WEIGHT)
    return {"detector_capture": round(capture_flops / 1e9, 1), "inverse_modules": round(inverse_flops / 1e9, 1),
            "total": round((capture_flops + inverse_flops) / 1e9, 1)}


@torch.no_grad()
def capture_overhead(repeats: int = 5) -> dict:
    """Per family, at a tiny config (256 x 256) and at its ResNet-50 size (480 x 640): a capture (every stage,
    every layer, detections) over a plain forward of the same model: FLOPs, and wall times paired in one run."""
    results = {}
    for family in FAMILIES:
        model_type = family.model_types[0]
        for size, config, working_size in (("tiny", tiny_config(model_type), (256, 256)),
                                           ("r50", r50_config(model_type), DEFAULT_WORKING_SIZE)):
            torch.manual_seed(0)
            detector = Detector(family_for(config).model_class(config), working_size=working_size)
            canvas = detector.preprocess([_test_image(working_size)])
            inputs = detector.family.model_inputs(canvas.pixels, canvas.pixel_mask)

            def plain_forward(detector=detector, inputs=inputs):
                detector.model(**inputs)

            def capture(detector=detector, canvas=canvas):
                detector.capture(canvas)

            forward_times, capture_times = paired_seconds(plain_forward, capture, repeats)
            results[f"{family.name} {size}"] = {
                "flops_ratio": round(count_flops(capture) / count_flops(plain_forward), 4),
                "forward_s": round(statistics.median(forward_times), 4),
                "capture_s": round(statistics.median(capture_times), 4),
                "ratio": round(statistics.median(c / f for c, f in zip(capture_times, forward_times)), 3),
            }
    return results


def feature_cache_speedup(batch_size: int = 4, repeats: int = 3, working_size: tuple[int, int] = DEFAULT_WORKING_SIZE) -> dict:
    """Images/s training the encoder, decoder and prediction inverses from cached targets vs recomputing them."""
    torch.manual_seed(0)
    detector = Detector(DetrForObjectDetection(detr_r50_config()), working_size=working_size, name="detr-r50-random")
    stack = InverterStack(InverterConfig.for_detector(detector))
    objective = ModularObjective(stack, CACHED_STAGES)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    images = [_test_image(working_size, seed) for seed in range(batch_size)]
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(write_cache(detector, images_as_dataset(images), folder, batch_size=batch_size, workers=0))
        loader = DataLoader(cache, batch_size=batch_size, collate_fn=collate_features)

        def step(representations):
            sum(objective(representations).values()).backward()
            optimizer.step()
            optimizer.zero_grad()

        def recomputing():
            step(detector.capture(images))

        def from_cache():
            step(cached_representations(next(iter(loader)), torch.device("cpu")))

        recompute_times, cached_times = paired_seconds(recomputing, from_cache, repeats)
    recompute_rate = batch_size / statistics.median(recompute_times)
    cached_rate = batch_size / statistics.median(cached_times)
    return {"recompute_images_per_s": round(recompute_rate, 3), "cached_images_per_s": round(cached_rate, 3),
            "speedup": round(cached_rate / recompute_rate, 2), "batch_size": batch_size}


def backbone_training_speedup(repeats: int = 3) -> dict:
    """A training step of the inverse backbone alone (pixel MSE and the feature term, AdamW), with the detector's
    whole capture against its backbone alone (`Detector.capture_backbone`, what the trainer runs for `--stages
    backbone`): FLOPs, and wall times paired in one run; DETR and Deformable DETR at their ResNet-50 size (one
    480 x 640 image) and the bundled Shapes DETR and Deformable DETR (a batch of 16, as the CPU trains them)."""
    cases = {}
    for model_type in ("detr", "deformable_detr"):
        config = r50_config(model_type)
        detector = Detector(family_for(config).model_class(config).eval(), working_size=DEFAULT_WORKING_SIZE)
        cases[f"{model_type} r50"] = detector, [_test_image(DEFAULT_WORKING_SIZE)]
    for name in ("shapes", "shapes-deformable"):
        cases[name] = load_detector(find_spec(name)), heldout_images(16)
    results = {}
    for name, (detector, images) in cases.items():
        torch.manual_seed(0)
        stack = InverterStack(InverterConfig.for_detector(detector))
        objective = ModularObjective(stack, ("backbone",), recipe.FEATURE_WEIGHT, detector.backbone_levels)
        optimizer = torch.optim.AdamW(stack.backbone.parameters(), lr=1e-4)
        canvas = detector.preprocess(images)

        def step(capture, objective=objective, optimizer=optimizer, canvas=canvas):
            sum(objective(capture(canvas)).values()).backward()
            optimizer.step()
            optimizer.zero_grad()

        whole, alone = functools.partial(step, detector.capture), functools.partial(step, detector.capture_backbone)
        whole_times, alone_times = paired_seconds(whole, alone, repeats)
        results[name] = {
            "flops_ratio": round(count_flops(whole) / count_flops(alone), 3),
            "whole_capture_step_s": round(statistics.median(whole_times), 3),
            "backbone_capture_step_s": round(statistics.median(alone_times), 3),
            "speedup": round(statistics.median(w / a for w, a in zip(whole_times, alone_times)), 2),
        }
    return results


def images_as_dataset(images: list) -> list:
    """(image, id) pairs: the item form the datasets in inversion.data yield."""
    return [(image, index) for index, image in enumerate(images)]


def _test_image(working_size: tuple[int, int], seed: int = 0):
    """A deterministic image of the working size."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    array = (torch.rand(*working_size, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return Image.fromarray(array)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark capture + reconstruction on DETR-R50's architecture.")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--families", action="store_true",
                        help="also measure capture over a plain forward for every family (tiny and ResNet-50 sizes)")
    parser.add_argument("--feature-cache", action="store_true",
                        help="also measure training the transformer inverses from cached targets vs recomputing")
    parser.add_argument("--backbone-training", action="store_true",
                        help="also measure a training step of the inverse backbone alone: whole capture vs backbone")
    parser.add_argument("--backbone-widths", type=int, nargs="+", metavar="N",
                        help="measure this inverse backbone instead of the default (channels per level, grid first)")
    args = parser.parse_args(argv)
    result = run(args.repeats, backbone_widths=args.backbone_widths)
    result["recipe_training_gflops_per_image"] = recipe_training_gflops()
    if args.families:
        result["capture_overhead"] = capture_overhead(args.repeats)
    if args.feature_cache:
        result["feature_cache"] = feature_cache_speedup(repeats=min(args.repeats, 3))
    if args.backbone_training:
        result["backbone_training"] = backbone_training_speedup(min(args.repeats, 3))
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
        print(f"capture + all reconstructions = {result['ratio']}x a plain DETR forward (target <= 2.0); "
              f"inverse backbone = {result['inverse_backbone_flops_fraction']:.1%} of DETR's FLOPs "
              f"(target <= {INVERSE_BACKBONE_BUDGET:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
