"""The paper's experiments as numbers, for any model and COCO-format dataset.

    python -m inversion evaluate --model shapes --data DIR --out OUT

writes OUT/results.json, OUT/report.md and PNG plots:
- detector: the detector's AP and AP50 on the clean images;
- stages: MSE, PSNR, SSIM of reconstructions from every stage and every layer, and the
  detector's AP on the stage reconstructions themselves;
- layer_swap: each encoder layer fed to the inverse backbone and to the inverse encoder, each
  decoder layer to the inverse decoder (PSNR/SSIM per layer and entry), and linear CKA between layers;
- color: per class and perturbation (inside that class's instance masks), the detector's AP for
  the class, and the hue of the object region reconstructed from each stage against the perturbed
  input's hue and the class's prototype hue (the circular mean hue of its clean instances).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..core.images import to_pil
from ..core.metrics import image_quality
from ..core.reconstruct import input_image, reconstruct
from ..core.registry import Model, load_model
from ..core.stages import STAGE_SOURCES, STAGES, Source, layer_sources
from ..figures import evaluation_plots
from ..training.data import CocoDataset, DatasetError, open_dataset
from .coco_ap import coco_ap, coco_from_dict, detections_from_outputs
from .colour import PERTURBATIONS, hue_distance, mean_hue, perturb
from .similarity import layer_similarity

SECTIONS = ("stages", "layer_swap", "color")
LAYER_SWAP_ENTRIES = {"encoder": ("backbone", "encoder"), "decoder": ("decoder",)}


@dataclass
class Sample:
    """One dataset image with its id and its instance annotations."""

    image: Image.Image
    image_id: int
    annotations: list[dict]


def load_samples(dataset: CocoDataset, max_images: int | None) -> list[Sample]:
    """The first `max_images` images of a COCO dataset with their annotations."""
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    samples = []
    for index in tqdm(range(count), desc="loading images", leave=False):
        image, image_id = dataset[index]
        samples.append(Sample(image, image_id, dataset.coco.imgToAnns.get(image_id, [])))
    return samples


def batches(items: list, size: int):
    """Consecutive slices of `items` of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def subset_ground_truth(coco, image_ids: list[int]):
    """A COCO index over only these images (and their annotations)."""
    wanted = set(image_ids)
    return coco_from_dict({
        "images": [coco.imgs[i] for i in image_ids],
        "annotations": [a for a in coco.dataset["annotations"] if a["image_id"] in wanted],
        "categories": coco.dataset["categories"],
    })


def detections_for(model: Model, images: list[Image.Image], image_ids: list[int], batch_size: int) -> list[dict]:
    """Every query's best detection for each image (AP needs the full ranking)."""
    detections = []
    for part in batches(list(zip(images, image_ids)), batch_size):
        reps = model.detector.capture([image for image, _ in part])
        detections += detections_from_outputs(reps.logits, reps.boxes, [i for _, i in part], reps.original_sizes)
    return detections


def evaluate_detector(model: Model, coco, samples: list[Sample], batch_size: int) -> dict:
    """AP and AP50 of the detector on the clean images."""
    detections = detections_for(model, [s.image for s in samples], [s.image_id for s in samples], batch_size)
    return coco_ap(subset_ground_truth(coco, [s.image_id for s in samples]), detections)


def evaluate_stages(model: Model, coco, samples: list[Sample], batch_size: int) -> dict:
    """Quality of reconstructions from every stage and layer; detector AP on stage reconstructions."""
    quality: dict[str, list[dict]] = {}
    stage_images: dict[str, list[Image.Image]] = {stage: [] for stage in STAGES}
    for part in tqdm(list(batches(samples, batch_size)), desc="stages", leave=False):
        reps = model.detector.capture([s.image for s in part])
        sources = [*STAGE_SOURCES, *layer_sources(reps)]
        for source, images in reconstruct(model.inverters, reps, sources).items():
            for index, image in enumerate(images):
                quality.setdefault(source.label, []).append(image_quality(image, input_image(reps, index)))
                if source in STAGE_SOURCES:
                    stage_images[source.stage].append(to_pil(image, reps.original_sizes[index]))
    ids = [s.image_id for s in samples]
    ground_truth = subset_ground_truth(coco, ids)
    return {
        "quality": {label: mean_metrics(values) for label, values in quality.items()},
        "ap": {
            stage: coco_ap(ground_truth, detections_for(model, images, ids, batch_size))
            for stage, images in stage_images.items()
        },
    }


def evaluate_layer_swap(model: Model, samples: list[Sample], batch_size: int) -> dict:
    """Every layer fed to the inverses of its stage's neighbours; linear CKA between layers."""
    quality: dict[tuple[str, int, str], list[dict]] = {}
    similarity: dict[str, list[torch.Tensor]] = {"encoder": [], "decoder": []}
    for part in tqdm(list(batches(samples, batch_size)), desc="layer swap", leave=False):
        reps = model.detector.capture([s.image for s in part])
        sources = [
            Source(stage, layer, entry)
            for stage, entries in LAYER_SWAP_ENTRIES.items()
            for layer in range(len(reps.encoder if stage == "encoder" else reps.decoder))
            for entry in entries
        ]
        for source, images in reconstruct(model.inverters, reps, sources).items():
            for index, image in enumerate(images):
                key = (source.stage, source.layer, source.inverse)
                quality.setdefault(key, []).append(image_quality(image, input_image(reps, index)))
        for stage in similarity:
            similarity[stage] += [layer_similarity(reps, stage, index) for index in range(len(part))]
    result: dict = {"matrices": {}, "cka": {}}
    for stage, entries in LAYER_SWAP_ENTRIES.items():
        layers = sorted({layer for (s, layer, _) in quality if s == stage})
        for metric in ("psnr", "ssim"):
            result["matrices"].setdefault(stage, {})[metric] = {
                entry: [mean_metrics(quality[(stage, layer, entry)])[metric] for layer in layers] for entry in entries
            }
        result["cka"][stage] = torch.stack(similarity[stage]).nanmean(0).tolist()
    return result


def instance_mask(coco, annotations: list[dict], category_id: int, shape: tuple[int, int]) -> np.ndarray:
    """The union of the instance masks of one category in one image."""
    mask = np.zeros(shape, dtype=bool)
    for annotation in annotations:
        if annotation["category_id"] == category_id:
            mask |= coco.annToMask(annotation).astype(bool)
    return mask


def prototype_hues(coco, samples: list[Sample]) -> dict[int, float]:
    """Each category's prototype hue: the saturation-weighted circular mean hue of its clean instances."""
    angles: dict[int, list[complex]] = {}
    for sample in samples:
        array = np.asarray(sample.image)
        for category_id in {a["category_id"] for a in sample.annotations}:
            mask = instance_mask(coco, sample.annotations, category_id, array.shape[:2])
            hue = mean_hue(array, mask)
            if not math.isnan(hue):
                angles.setdefault(category_id, []).append(np.exp(1j * hue * 2 * np.pi / 180))
    return {c: float((np.angle(np.mean(v)) % (2 * np.pi)) * 180 / (2 * np.pi)) for c, v in angles.items()}


def evaluate_color(model: Model, coco, samples: list[Sample], batch_size: int) -> dict:
    """Per class and perturbation: the class's AP, and where the reconstructed hue goes stage by stage."""
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    prototypes = prototype_hues(coco, samples)
    results: dict = {}
    for category_id, name in tqdm(names.items(), desc="colour", leave=False):
        holding = [s for s in samples if any(a["category_id"] == category_id for a in s.annotations)]
        if not holding:
            continue
        masks = [instance_mask(coco, s.annotations, category_id, (s.image.height, s.image.width)) for s in holding]
        ids = [s.image_id for s in holding]
        ground_truth = subset_ground_truth(coco, ids)
        clean = coco_ap(ground_truth, detections_for(model, [s.image for s in holding], ids, batch_size))
        entry = {"images": len(holding), "prototype_hue": prototypes.get(category_id),
                 "clean_ap": clean["per_class"][name], "perturbations": {}}
        for kind in PERTURBATIONS:
            perturbed = [Image.fromarray(perturb(s.image, m, kind)) for s, m in zip(holding, masks)]
            ap = coco_ap(ground_truth, detections_for(model, perturbed, ids, batch_size))["per_class"][name]
            entry["perturbations"][kind] = {"ap": ap, **hue_drift(model, perturbed, masks, prototypes.get(category_id), batch_size)}
        results[name] = entry
    return results


def hue_drift(model: Model, images: list[Image.Image], masks: list[np.ndarray], prototype: float | None,
              batch_size: int) -> dict:
    """Mean hue distance of the object region, reconstructed from each stage, to the input's and the prototype's hue."""
    to_input: dict[str, list[float]] = {stage: [] for stage in STAGES}
    to_prototype: dict[str, list[float]] = {stage: [] for stage in STAGES}
    input_to_prototype: list[float] = []
    for part in batches(list(zip(images, masks)), batch_size):
        reps = model.detector.capture([image for image, _ in part])
        reconstructions = reconstruct(model.inverters, reps, STAGE_SOURCES)
        for index, (_, mask) in enumerate(part):
            height, width = reps.content_sizes[index]
            small_mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))
            input_hue = mean_hue(np.asarray(to_pil(input_image(reps, index))), small_mask)
            if prototype is not None and not math.isnan(input_hue):
                input_to_prototype.append(hue_distance(input_hue, prototype))
            for source in STAGE_SOURCES:
                hue = mean_hue(np.asarray(to_pil(reconstructions[source][index])), small_mask)
                if math.isnan(hue):
                    continue
                if not math.isnan(input_hue):
                    to_input[source.stage].append(hue_distance(hue, input_hue))
                if prototype is not None:
                    to_prototype[source.stage].append(hue_distance(hue, prototype))
    mean = lambda values: float(np.mean(values)) if values else None  # noqa: E731
    return {
        "input_to_prototype": mean(input_to_prototype),
        "hue_distance_to_input": {stage: mean(values) for stage, values in to_input.items()},
        "hue_distance_to_prototype": {stage: mean(values) for stage, values in to_prototype.items()},
    }


def mean_metrics(values: list[dict]) -> dict:
    """The mean of each metric over a list of metric dicts."""
    return {key: float(np.mean([v[key] for v in values])) for key in values[0]}


def report(results: dict, plots: list[str]) -> str:
    """A markdown report of the results."""
    lines = [f"# Evaluation of `{results['model']}` on `{results['data']}` ({results['images']} images)", ""]
    detector = results["detector"]
    lines += [f"Detector on clean images: AP {detector['AP']:.3f}, AP50 {detector['AP50']:.3f}.", ""]
    if "stages" in results:
        lines += ["## Reconstruction by stage", "", "| source | MSE | PSNR (dB) | SSIM | detector AP | AP50 |",
                  "|---|---|---|---|---|---|"]
        for label, metrics in results["stages"]["quality"].items():
            ap = results["stages"]["ap"].get(label)
            ap_text = f"{ap['AP']:.3f} | {ap['AP50']:.3f}" if ap else "|"
            lines.append(f"| {label} | {metrics['mse']:.4f} | {metrics['psnr']:.2f} | {metrics['ssim']:.3f} | {ap_text} |")
        lines.append("")
    if "layer_swap" in results:
        lines += ["## Layer swap (PSNR, dB)", "", "| layer | " + " | ".join(
            f"{stage} -> inverse {entry}" for stage, m in results["layer_swap"]["matrices"].items() for entry in m["psnr"]) + " |"]
        columns = [values for m in results["layer_swap"]["matrices"].values() for values in m["psnr"].values()]
        lines.append("|---|" + "---|" * len(columns))
        for layer in range(max(len(c) for c in columns)):
            cells = [f"{c[layer]:.2f}" if layer < len(c) else "" for c in columns]
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        lines.append("")
    if results.get("color"):
        lines += ["## Colour perturbations", "",
                  "Class AP (clean, then under each perturbation inside that class's masks); hue distance "
                  "(OpenCV units, 0..90) of the reconstructed object to the class prototype, backbone -> prediction.", "",
                  "| class | prototype hue | clean AP | " + " | ".join(PERTURBATIONS) + " |",
                  "|---|---|---|" + "---|" * len(PERTURBATIONS)]
        for name, entry in results["color"].items():
            cells = []
            for kind in PERTURBATIONS:
                p = entry["perturbations"][kind]
                drift = " -> ".join("-" if p["hue_distance_to_prototype"][s] is None else f"{p['hue_distance_to_prototype'][s]:.0f}"
                                    for s in STAGES)
                cells.append(f"AP {p['ap']:.2f}; {drift}")
            prototype = entry["prototype_hue"]
            lines.append(f"| {name} | {prototype:.0f} | {entry['clean_ap']:.2f} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def evaluate(model_name: str, data: str, out: str, split: str | None = None, max_images: int | None = None,
             batch_size: int = 16, sections: tuple[str, ...] = SECTIONS) -> dict:
    """Run the chosen sections and write results.json, report.md and plots into `out`."""
    dataset = open_dataset(data, split)
    if not isinstance(dataset, CocoDataset):
        raise DatasetError(f"{data} is a plain image folder; the evaluation needs a COCO-format dataset with annotations.")
    model = load_model(model_name)
    if sections:
        model.require_inverters()
    samples = load_samples(dataset, max_images)
    results: dict = {"model": model_name, "data": str(data), "images": len(samples)}
    results["detector"] = evaluate_detector(model, dataset.coco, samples, batch_size)
    with torch.no_grad():
        if "stages" in sections:
            results["stages"] = evaluate_stages(model, dataset.coco, samples, batch_size)
        if "layer_swap" in sections:
            results["layer_swap"] = evaluate_layer_swap(model, samples, batch_size)
        if "color" in sections:
            results["color"] = evaluate_color(model, dataset.coco, samples, batch_size)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    (folder / "report.md").write_text(report(results, evaluation_plots(results, folder)))
    return results
