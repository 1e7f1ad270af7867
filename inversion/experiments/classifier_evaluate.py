"""The stages section of `python -m inversion evaluate` for an image classifier (ViT, DeiT, Swin).

    python -m inversion evaluate --model shapes-vit --data DIR --out OUT

writes OUT/results.json and OUT/report.md: for every stage (and, with `layers`, every encoder entry, and the
embedding through the exact analytic patch inverse) the MSE, PSNR and SSIM of the reconstructions against the
classifier's input, and the agreement: the share of images to whose reconstruction the classifier gives the same
classes as to the original (multi-label: every class present or absent alike; else the same top class). The
baselines are the detectors' (the input's mean colour, its average over the patch grid), scored alike. Labels are
not needed: any folder of images will do. Detection experiments (AP, layer swap, colour) are refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm import tqdm

from ..core.classifier import Classifier
from ..core.classifier_inverters import ANALYTIC_LABEL, AnalyticPatchInverse, ClassifierInverterStack
from ..core.classifier_stages import CLASSIFIER_STAGE_SOURCES, ClassifierSource
from ..core.errors import CheckpointError, DatasetError, UserFacingError
from ..core.metrics import baselines, image_quality
from ..core.registry import ClassifierModel
from ..training.data import MAX_UNREADABLE_SHARE, UnreadableImages, first_readable
from ..training.sources import open_dataset

CLASSIFIER_SECTIONS = ("stages",)


@torch.no_grad()
def stage_quality(classifier: Classifier, stack: ClassifierInverterStack, pixels: torch.Tensor, layers: bool = True,
                  baseline_stride: int | None = None) -> dict[str, dict[str, float]]:
    """Per source (every stage's output through the learned chain; with `layers`, every encoder entry and the
    embedding by the analytic patch inverse; with `baseline_stride`, the baselines at that grid), the mean MSE, PSNR,
    SSIM and agreement of a batch of [0, 1] `pixels` at the classifier's input size."""
    reps = classifier.capture(pixels)
    sources = [*CLASSIFIER_STAGE_SOURCES]
    if layers:
        sources += [ClassifierSource("encoder", entry) for entry in range(len(reps.encoder) - 1)]
    reconstructions = {source.label: stack.invert(reps, source) for source in sources}
    if layers:
        reconstructions[ANALYTIC_LABEL] = stack.invert(reps, ClassifierSource("embedding"), AnalyticPatchInverse(classifier))
    if baseline_stride:
        for name in ("mean_colour", "grid_average"):
            reconstructions[f"baseline: {name}"] = torch.stack([baselines(view, baseline_stride)[name] for view in pixels])
    classes = classifier.present(reps.logits)
    quality = {}
    for label, images in reconstructions.items():
        again = classifier.present(classifier.capture(images.clamp(0, 1)).logits)
        quality[label] = {**image_quality(images, pixels), "agreement": float((again == classes).all(-1).float().mean())}
    return quality


def load_pixels(classifier: Classifier, data: str, split: str | None, max_images: int | None,
                max_unreadable: float) -> tuple[torch.Tensor, UnreadableImages]:
    """The first `max_images` readable images of a dataset (labels not needed) at the classifier's input, and the
    images left out (too many fail)."""
    dataset = open_dataset(data, split, max_images=max_images)
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    unreadable = UnreadableImages(count, max_unreadable)
    images = [image for _, (image, _) in first_readable(dataset, count, unreadable)]
    if not images:
        raise DatasetError(f"None of the {count} images could be used: {unreadable.summary()}.")
    return classifier.preprocess(images), unreadable


def check_sections(sections: tuple[str, ...]) -> None:
    """Refuse, in one line, the sections that are a detector's experiments."""
    foreign = [section for section in sections if section not in CLASSIFIER_SECTIONS]
    if foreign:
        plural = len(foreign) > 1
        raise UserFacingError(f"The {' and '.join(foreign)} section{'s measure' if plural else ' measures'} a detector "
                              "(its AP, decoder layers and boxes): an image classifier is evaluated with --sections "
                              f"{' '.join(CLASSIFIER_SECTIONS)}.")


def evaluate_classifier(model: ClassifierModel, data: str, out: str, split: str | None = None,
                        max_images: int | None = None, batch_size: int = 16, sections: tuple[str, ...] = CLASSIFIER_SECTIONS,
                        max_unreadable: float = MAX_UNREADABLE_SHARE, layers: bool = True) -> dict:
    """Run the classifier's stages section and write results.json and report.md into `out` (nothing is written when
    a section, the inverters or the data cannot be used)."""
    check_sections(sections)
    if model.inverters is None:
        reason = f": {model.inverters_problem}" if model.inverters_problem else " yet"
        raise CheckpointError(f"The model {model.spec.label!r} has no trained inverters{reason}.")
    classifier = model.classifier
    pixels, unreadable = load_pixels(classifier, data, split, max_images, max_unreadable)
    stride = classifier.family.patch_size(classifier.config)
    totals: dict[str, dict[str, float]] = {}
    for start in tqdm(range(0, len(pixels), batch_size), desc="stages", leave=False):
        part = pixels[start : start + batch_size].to(model.device)
        for label, metrics in stage_quality(classifier, model.inverters, part, layers, stride).items():
            for metric, value in metrics.items():
                totals.setdefault(label, {}).setdefault(metric, 0.0)
                totals[label][metric] += value * len(part)
    quality = {label: {metric: value / len(pixels) for metric, value in metrics.items()} for label, metrics in totals.items()}
    results = {"model": model.spec.name, "kind": "classifier", "family": classifier.family.name, "data": str(data),
               "images": len(pixels), "input_size": list(classifier.image_size),
               "unreadable_images": dict(unreadable.found), "stages": {"quality": quality}}
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    (folder / "report.md").write_text(report(results))
    return results


def report(results: dict) -> str:
    """A markdown report of a classifier's evaluation."""
    height, width = results["input_size"]
    lines = [f"# Evaluation of `{results['model']}` ({results['family']}) on `{results['data']}` "
             f"({results['images']} images at {height} x {width})", ""]
    if results.get("unreadable_images"):
        lines += [f"Images left out ({len(results['unreadable_images'])}):", ""]
        lines += [f"- `{path}`: {reason}" for path, reason in results["unreadable_images"].items()] + [""]
    lines += ["## Reconstruction by stage", "",
              "Against the classifier's input. Agreement: the share of images to whose reconstruction the classifier "
              "gives the same classes as to the original. Baselines: the input's mean colour, and the input averaged "
              "over the patch grid.", "",
              "| source | MSE | PSNR (dB) | SSIM | agreement |", "|---|---|---|---|---|"]
    for label, metrics in results["stages"]["quality"].items():
        lines.append(f"| {label} | {metrics['mse']:.4f} | {metrics['psnr']:.2f} | {metrics['ssim']:.3f} | "
                     f"{metrics['agreement']:.2f} |")
    return "\n".join(lines) + "\n"
