"""Optimisation-based inversion against learned inverters (and the previous optimiser, and a baseline).

    python -m inversion optimise --model shapes --shapes 32 --legacy --out checkpoints/shapes/optimisation
    python -m inversion optimise --model shapes --shapes 32 --out checkpoints/shapes/optimisation --keep-earlier-rows

Every image is a request of its own, as in the app: one capture, then all four stages. Per method
and stage: mean PSNR and SSIM against the detector's view of the input, and shape preservation
(the evaluation harness's Hungarian matching: the share of the objects the detector finds on the
original that it finds again, same label, IoU >= 0.5, on the reconstruction); per method: seconds
per request on this machine. The methods:

- learned: the model's trained inverters, all stages in one cascade;
- optimised: `inversion.optimisation` with a config (all stages in one batch);
- legacy: what the app ran before, raw pixels under Adam, 200 steps per stage, one stage at a time;
- mean colour: a flat image of each input's own mean colour, which no stage tells (a baseline).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from PIL import Image
from tqdm import tqdm

from ..core.errors import UserFacingError
from ..core.images import to_pil
from ..core.metrics import image_quality
from ..core.reconstruct import input_image, reconstruct
from ..core.registry import Model
from ..core.stages import STAGE_SOURCES, Representations, Source
from ..optimisation import OptimisationConfig, optimise_inversions
from .matching import shape_preservation

# The app's optimiser until inversion.optimisation replaced it: Adam on raw pixels from flat grey,
# relative feature error + TV + range penalty, 200 steps per stage, one stage after another.
LEGACY = OptimisationConfig(steps=200, parameterisation="pixel", image_options={"noise": 0.02}, squash="none",
                            init_colour=(0.5, 0.5, 0.5), optimiser="adam", learning_rate=0.03, schedule="cosine",
                            tv_weight=10.0, range_weight=10.0, neutral_weight=0.0)

# Reconstructions of one capture from every stage: per source, one image per captured image.
Method = Callable[[Model, Representations], dict[Source, list[torch.Tensor]]]


def learned(model: Model, representations: Representations) -> dict[Source, list[torch.Tensor]]:
    """The model's trained inverters, all stages in one cascade."""
    return reconstruct(model.require_inverters(), representations, STAGE_SOURCES)


def mean_colour(model: Model, representations: Representations) -> dict[Source, list[torch.Tensor]]:
    """A flat image of each input's own mean colour, for every stage (not from the features)."""
    flats = []
    for index in range(representations.batch_size):
        view = input_image(representations, index)
        flats.append(view.mean((1, 2), keepdim=True).expand_as(view))
    return {source: flats for source in STAGE_SOURCES}


def optimised(config: OptimisationConfig, one_stage_at_a_time: bool = False) -> Method:
    """Optimisation-based inversion from every stage: all stages in one batch, or one after another."""

    def method(model: Model, representations: Representations) -> dict[Source, list[torch.Tensor]]:
        if not one_stage_at_a_time:
            return optimise_inversions(model.detector, representations, list(STAGE_SOURCES), config).images
        images = {}
        for source in STAGE_SOURCES:
            images.update(optimise_inversions(model.detector, representations, [source], config).images)
        return images

    return method


def compare(model: Model, images: list[Image.Image], methods: dict[str, Method], shown: int = 0) -> dict:
    """Per method and stage: mean PSNR, SSIM and shape preservation; per method: seconds per request.

    The first `shown` images' views and reconstructions come back too, under "shown" (not JSON)."""
    detector = model.detector
    sums = {name: {source.stage: {"psnr": 0.0, "ssim": 0.0} for source in STAGE_SOURCES} for name in methods}
    pairs = {name: {source.stage: [] for source in STAGE_SOURCES} for name in methods}
    seconds = dict.fromkeys(methods, 0.0)
    views, pictures = [], {name: [] for name in methods}
    for number, image in enumerate(tqdm(images, desc="optimised vs learned")):
        representations = detector.capture([image])
        target = input_image(representations)
        if number < shown:
            views.append(to_pil(target))
        original = detector.capture([to_pil(target)]).detections[0]  # in the view's pixels, as the reconstructions
        for name, method in methods.items():
            start = time.perf_counter()
            reconstructions = method(model, representations)
            seconds[name] += time.perf_counter() - start
            redrawn = [to_pil(reconstructions[source][0]) for source in STAGE_SOURCES]
            if number < shown:
                pictures[name].append({source.stage: picture for source, picture in zip(STAGE_SOURCES, redrawn)})
            found = detector.capture(redrawn).detections
            for source, detections in zip(STAGE_SOURCES, found):
                for metric, value in image_quality(reconstructions[source][0], target).items():
                    if metric in sums[name][source.stage]:
                        sums[name][source.stage][metric] += value
                pairs[name][source.stage].append((original, detections))
    count = len(images)
    return {
        "images": count,
        "methods": {
            name: {
                "seconds_per_request": seconds[name] / count,
                "stages": {stage: {"psnr": values["psnr"] / count, "ssim": values["ssim"] / count,
                                   **_found(pairs[name][stage])} for stage, values in sums[name].items()},
            }
            for name in methods
        },
        "shown": {"inputs": views, "methods": pictures},
    }


def _found(pairs: list) -> dict:
    preserved = shape_preservation(pairs)
    return {"found": preserved["found"], "objects": preserved["objects"]}


def keep_earlier_rows(results: dict, earlier: dict) -> dict:
    """`results` with the rows of `earlier` (the results.json of an earlier run on the same images) for the methods
    this run did not run, in the earlier order and named under "kept_from_earlier_run": after a new stack ships, the
    learned row is measured again without the previous optimiser's half hour."""
    if earlier["images"] != results["images"]:
        raise UserFacingError(f"The earlier results compare {earlier['images']} images and this run {results['images']}: "
                              "run on the same images to keep their rows, or leave out --keep-earlier-rows.")
    kept = [name for name in earlier["methods"] if name not in results["methods"]]
    return {**results, "methods": {**earlier["methods"], **results["methods"]}, "kept_from_earlier_run": kept}


def markdown_table(results: dict) -> str:
    """The comparison as a markdown table: one row per method and stage (a row kept from an earlier run says so)."""
    lines = ["| method | stage | PSNR (dB) | SSIM | objects found again | s / request (CPU) |", "|---|---|---|---|---|---|"]
    kept = results.get("kept_from_earlier_run", [])
    for name, row in results["methods"].items():
        label = f"{name}, an earlier run's row" if name in kept else name
        for stage, values in row["stages"].items():
            found = "n/a" if values["found"] is None else f"{values['found']:.0%} of {values['objects']}"
            lines.append(f"| {label} | {stage} | {values['psnr']:.2f} | {values['ssim']:.3f} | {found} "
                         f"| {row['seconds_per_request']:.1f} |")
    return "\n".join(lines)
