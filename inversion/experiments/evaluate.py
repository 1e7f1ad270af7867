"""The paper's experiments as numbers, for any model and COCO-format dataset.

    python -m inversion evaluate --model shapes --data DIR --out OUT

writes OUT/results.json, OUT/report.md and PNG plots:
- detector: the detector's AP and AP50 on the clean images;
- stages: MSE, PSNR, SSIM of reconstructions from every stage and every layer, and the
  detector's AP on the stage reconstructions themselves; with judges (other detectors of the same labels),
  each judge's AP and objects found again on them too: scores that an inverse module trained against the
  detector's own features (the feature-matching term) does not optimise;
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

from ..core.errors import UserFacingError
from ..core.images import to_pil
from ..core.metrics import baselines, image_quality
from ..core.reconstruct import input_image, reconstruct
from ..core.registry import ClassifierModel, Model, load_model
from ..core.stages import STAGE_SOURCES, STAGES, Detection, Source, layer_sources
from ..figures import error_gallery, evaluation_plots
from ..training.data import MAX_UNREADABLE_SHARE, CocoDataset, DatasetError, UnreadableImages, first_readable
from ..training.sources import open_dataset
from .classifier_evaluate import CLASSIFIER_SECTIONS, evaluate_classifier
from .coco_ap import coco_ap, coco_from_dict, detections_from_outputs
from .colour import PERTURBATIONS, hue_distance, mean_hue, perturb
from .matching import match_detections, shape_preservation
from .similarity import layer_similarity

SECTIONS = ("stages", "layer_swap", "color")
LAYER_SWAP_ENTRIES = {"encoder": ("backbone", "encoder"), "decoder": ("decoder",)}


@dataclass
class Sample:
    """One dataset image with its id and its instance annotations."""

    image: Image.Image
    image_id: int
    annotations: list[dict]


@dataclass
class ErrorCase:
    """An image on which the detector erred, with its detections and its reconstruction from each stage."""

    image: Image.Image
    detections: list[Detection]
    errors: list[str]
    reconstructions: list[Image.Image]  # one per stage, in STAGES order


def load_samples(dataset: CocoDataset, max_images: int | None, max_unreadable: float = MAX_UNREADABLE_SHARE
                 ) -> tuple[list[Sample], UnreadableImages]:
    """The first `max_images` images of a COCO dataset with their annotations; the images that cannot be read,
    or whose size differs from the one their annotations give, are left out and listed (too many fail)."""
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    samples, unreadable = [], UnreadableImages(count, max_unreadable)
    for index, (image, image_id) in first_readable(dataset, count, unreadable):
        entry = dataset.coco.imgs[image_id]
        if (image.width, image.height) != (entry["width"], entry["height"]):
            unreadable.add([(str(dataset.path(index)), f"it is {image.width}x{image.height} pixels but its annotations "
                                                       f"say {entry['width']}x{entry['height']}")])
            continue
        samples.append(Sample(image, image_id, dataset.coco.imgToAnns.get(image_id, [])))
    if not samples:
        raise DatasetError(f"None of the {count} images could be used: {unreadable.summary()}.")
    return samples, unreadable


def open_coco(data: str, split: str | None, id2label: dict[int, str], skip_unknown_categories: bool,
              max_images: int | None = None) -> CocoDataset:
    """A checked COCO dataset whose categories are the detector's labels (see CocoDataset.use_labels); of a
    streamed Hub dataset, its first `max_images` images."""
    dataset = open_dataset(data, split, needs_annotations=True, max_images=max_images)
    dataset.use_labels(id2label, skip_unknown_categories)
    return dataset


def dataset_notes(dataset: CocoDataset, unreadable: UnreadableImages) -> dict:
    """What a results file says about its data: categories matched, skipped, and images left out."""
    return {"categories": dataset.categories, "skipped_categories": dataset.skipped_categories,
            "unreadable_images": dict(unreadable.found)}


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


@dataclass
class DetectorRun:
    """The detector's output on a list of images: every query's best class (for AP) and the detections."""

    ranked: list[dict]
    found: list[list[Detection]]


def run_detector(model: Model, images: list[Image.Image], image_ids: list[int], batch_size: int) -> DetectorRun:
    """Run the detector on images in batches; detections are in each image's own pixels."""
    run = DetectorRun([], [])
    for part in batches(list(zip(images, image_ids)), batch_size):
        reps = model.detector.capture([image for image, _ in part])
        probabilities = model.detector.class_probabilities(reps.logits)
        run.ranked += detections_from_outputs(probabilities, reps.boxes, [i for _, i in part], reps.original_sizes)
        run.found += reps.detections
    return run


def evaluate_detector(model: Model, coco, samples: list[Sample], batch_size: int) -> dict:
    """AP and AP50 of the detector on the clean images."""
    run = run_detector(model, [s.image for s in samples], [s.image_id for s in samples], batch_size)
    return coco_ap(subset_ground_truth(coco, [s.image_id for s in samples]), run.ranked)


def ground_truth_detections(sample: Sample, names: dict[int, str]) -> list[Detection]:
    """A sample's annotated objects as detections (score 1) with (x0, y0, x1, y1) boxes."""
    return [Detection(names[a["category_id"]], a["category_id"], 1.0,
                      (a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]))
            for a in sample.annotations]


def detection_errors(truth: list[Detection], found: list[Detection]) -> list[str]:
    """The annotated objects the detector missed or mislabelled, in words."""
    errors = []
    for change in match_detections(truth, found):
        if change.before is not None and change.status == "lost":
            errors.append(f"missed {change.before.label}")
        elif change.status == "label changed":
            errors.append(f"{change.before.label} taken for {change.after.label}")
    return errors


def evaluate_stages(model: Model, coco, samples: list[Sample], batch_size: int,
                    gallery_size: int = 6, layers: bool = True, judges: dict[str, Model] | None = None
                    ) -> tuple[dict, list[ErrorCase]]:
    """Quality of reconstructions from every stage and (with `layers`) every layer against the baselines;
    the detector's AP and shape preservation on the stage reconstructions (and each of the `judges`', by name);
    and the first images with detection errors, with their reconstructions (for the gallery)."""
    quality: dict[str, list[dict]] = {}
    stage_images: dict[str, list[Image.Image]] = {stage: [] for stage in STAGES}
    originals: list[list[Detection]] = []
    for part in tqdm(list(batches(samples, batch_size)), desc="stages", leave=False):
        reps = model.detector.capture([s.image for s in part])
        originals += reps.detections
        sources = [*STAGE_SOURCES, *(layer_sources(reps) if layers else [])]
        for source, images in reconstruct(model.inverters, reps, sources).items():
            for index, image in enumerate(images):
                quality.setdefault(source.label, []).append(image_quality(image, input_image(reps, index)))
                if source in STAGE_SOURCES:
                    stage_images[source.stage].append(to_pil(image, reps.original_sizes[index]))
        for index in range(len(part)):
            view = input_image(reps, index)
            for name, baseline in baselines(view, model.detector.stride).items():
                quality.setdefault(f"baseline: {name}", []).append(image_quality(baseline, view))
    ids = [s.image_id for s in samples]
    ground_truth = subset_ground_truth(coco, ids)
    runs = {stage: run_detector(model, images, ids, batch_size) for stage, images in stage_images.items()}
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    gallery = []
    for index, sample in enumerate(samples):
        errors = detection_errors(ground_truth_detections(sample, names), originals[index])
        if errors and len(gallery) < gallery_size:
            gallery.append(ErrorCase(sample.image, originals[index], errors, [stage_images[s][index] for s in STAGES]))
    section = {
        "quality": {label: mean_metrics(values) for label, values in quality.items()},
        "ap": {stage: coco_ap(ground_truth, run.ranked) for stage, run in runs.items()},
        "shape_preservation": {stage: shape_preservation(list(zip(originals, run.found))) for stage, run in runs.items()},
    }
    if judges:
        section["judged"] = {name: judged_stages(judge, ground_truth, samples, stage_images, batch_size)
                             for name, judge in judges.items()}
    return section, gallery


def judged_stages(judge: Model, ground_truth, samples: list[Sample], stage_images: dict[str, list[Image.Image]],
                  batch_size: int) -> dict:
    """Another detector's view of the stage reconstructions: its AP on them against the annotations, and the share
    of the objects it finds on the originals that it finds again on them (detections: scores above its threshold)."""
    ids = [s.image_id for s in samples]
    originals = run_detector(judge, [s.image for s in samples], ids, batch_size)
    runs = {stage: run_detector(judge, images, ids, batch_size) for stage, images in stage_images.items()}
    return {"threshold": judge.detector.threshold, "clean": coco_ap(ground_truth, originals.ranked),
            "ap": {stage: coco_ap(ground_truth, run.ranked) for stage, run in runs.items()},
            "shape_preservation": {stage: shape_preservation(list(zip(originals.found, run.found)))
                                   for stage, run in runs.items()}}


def load_judges(names: tuple[str, ...], model: Model) -> dict[str, Model]:
    """The judge detectors by name (space-config names or checkpoint folders), each checked to know the
    model's labels (it must score the same classes)."""
    judges = {}
    for name in names:
        judge = load_model(name)
        if not isinstance(judge, Model):
            raise UserFacingError(f"The judge {name!r} is an image classifier: a judge must be a detector.")
        missing = set(model.detector.config.id2label.values()) - set(judge.detector.config.id2label.values())
        if missing:
            raise UserFacingError(f"The judge {name!r} does not know the labels {', '.join(sorted(missing))} of "
                                  f"{model.spec.name!r}: choose a detector of the same classes.")
        judges[name] = judge
    return judges


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


COLOUR_PERTURBATIONS = (*PERTURBATIONS, "grey_image")  # grey_image: the whole image grey, as in the paper


def evaluate_color(model: Model, coco, samples: list[Sample], batch_size: int) -> dict:
    """Per class and perturbation (inside that class's masks; grey_image: the whole image): the class's
    AP, and where the reconstructed hue of its objects goes stage by stage, measured against the
    class's prototype and against the prototype of the class the detector sees on the perturbed image
    (the hue only when the model has inverters)."""
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    prototypes = prototype_hues(coco, samples)
    results: dict = {}
    for category_id, name in tqdm(names.items(), desc="colour", leave=False):
        holding = [s for s in samples if any(a["category_id"] == category_id for a in s.annotations)]
        if not holding:
            continue
        masks = [instance_mask(coco, s.annotations, category_id, (s.image.height, s.image.width)) for s in holding]
        objects = [[d for d in ground_truth_detections(s, names) if d.label_id == category_id] for s in holding]
        ids = [s.image_id for s in holding]
        ground_truth = subset_ground_truth(coco, ids)
        clean = coco_ap(ground_truth, run_detector(model, [s.image for s in holding], ids, batch_size).ranked)
        entry = {"images": len(holding), "prototype_hue": prototypes.get(category_id),
                 "clean_ap": clean["per_class"][name], "perturbations": {}}
        for kind in COLOUR_PERTURBATIONS:
            perturbed = [Image.fromarray(perturb(s.image, np.ones_like(m) if kind == "grey_image" else m,
                                                 "grey" if kind == "grey_image" else kind))
                         for s, m in zip(holding, masks)]
            run = run_detector(model, perturbed, ids, batch_size)
            seen_as = [predicted_category(truth, found) for truth, found in zip(objects, run.found)]
            entry["perturbations"][kind] = {
                "ap": coco_ap(ground_truth, run.ranked)["per_class"][name],
                "seen_as_other_class": float(np.mean([seen not in (None, category_id) for seen in seen_as])),
                **(hue_drift(model, perturbed, masks, prototypes.get(category_id),
                             [prototypes.get(seen) for seen in seen_as], batch_size) if model.inverters else {}),
            }
        results[name] = entry
    return results


def predicted_category(objects: list[Detection], found: list[Detection]) -> int | None:
    """The category the detector gives the best-scored of these objects it finds (None: it finds none)."""
    matched = [change.after for change in match_detections(objects, found) if change.before and change.after]
    return max(matched, key=lambda detection: detection.score).label_id if matched else None


def hue_drift(model: Model, images: list[Image.Image], masks: list[np.ndarray], prototype: float | None,
              predicted_prototypes: list[float | None], batch_size: int) -> dict:
    """Mean hue distance of the object region, reconstructed from each stage, to the input's hue, to the
    class's prototype, and to the prototype of the class predicted on each image."""
    to_input: dict[str, list[float]] = {stage: [] for stage in STAGES}
    to_prototype: dict[str, list[float]] = {stage: [] for stage in STAGES}
    to_predicted: dict[str, list[float]] = {stage: [] for stage in STAGES}
    input_to_prototype: list[float] = []
    for start, part in zip(range(0, len(images), batch_size), batches(list(zip(images, masks)), batch_size)):
        reps = model.detector.capture([image for image, _ in part])
        reconstructions = reconstruct(model.inverters, reps, STAGE_SOURCES)
        for index, (_, mask) in enumerate(part):
            height, width = reps.content_sizes[index]
            small_mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))
            input_hue = mean_hue(np.asarray(to_pil(input_image(reps, index))), small_mask)
            predicted = predicted_prototypes[start + index]
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
                if predicted is not None:
                    to_predicted[source.stage].append(hue_distance(hue, predicted))
    mean = lambda values: float(np.mean(values)) if values else None  # noqa: E731
    return {
        "input_to_prototype": mean(input_to_prototype),
        "hue_distance_to_input": {stage: mean(values) for stage, values in to_input.items()},
        "hue_distance_to_prototype": {stage: mean(values) for stage, values in to_prototype.items()},
        "hue_distance_to_predicted_prototype": {stage: mean(values) for stage, values in to_predicted.items()},
    }


def mean_metrics(values: list[dict]) -> dict:
    """The mean of each metric over a list of metric dicts."""
    return {key: float(np.mean([v[key] for v in values])) for key in values[0]}


def report(results: dict, plots: list[str]) -> str:
    """A markdown report of the results."""
    lines = [f"# Evaluation of `{results['model']}` on `{results['data']}` ({results['images']} images)", ""]
    detector = results["detector"]
    lines += [f"Detector on clean images: AP {detector['AP']:.3f}, AP50 {detector['AP50']:.3f}.", ""]
    if results.get("skipped_categories"):
        lines += ["Categories the detector has no label for, left out: " + ", ".join(results["skipped_categories"]) + ".", ""]
    if results.get("unreadable_images"):
        lines += [f"Images left out ({len(results['unreadable_images'])}):", ""]
        lines += [f"- `{path}`: {reason}" for path, reason in results["unreadable_images"].items()] + [""]
    if "stages" in results:
        stages = results["stages"]
        lines += ["## Reconstruction by stage", "",
                  "Baselines: the input's mean colour, and the input averaged over the detector's feature grid. "
                  "Shape preservation: the share of the objects detected on the input that the detector finds again, "
                  "with the same label, on the reconstruction, and their mean IoU (a detection: a query scoring above "
                  f"{results['threshold']}).", "",
                  "| source | MSE | PSNR (dB) | SSIM | detector AP | AP50 | objects found again | their IoU |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, metrics in stages["quality"].items():
            ap, kept = stages["ap"].get(label), stages["shape_preservation"].get(label)
            ap_text = f"{ap['AP']:.3f} | {ap['AP50']:.3f}" if ap else " | "
            kept_text = " | ".join("-" if kept is None or kept[key] is None else f"{kept[key]:.2f}" for key in ("found", "iou"))
            lines.append(f"| {label} | {metrics['mse']:.4f} | {metrics['psnr']:.2f} | {metrics['ssim']:.3f} | {ap_text} | {kept_text} |")
        classes = list(stages["shape_preservation"]["backbone"]["per_class"])
        lines += ["", "Objects found again with their label, by class:", "",
                  "| stage | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
        for stage, kept in stages["shape_preservation"].items():
            cells = ["-" if kept["per_class"][c]["found"] is None else f"{kept['per_class'][c]['found']:.2f}" for c in classes]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        lines.append("")
        for name, judged in stages.get("judged", {}).items():
            lines += [f"Judged by `{name}` (clean images: AP {judged['clean']['AP']:.3f}, AP50 {judged['clean']['AP50']:.3f}):",
                      "", "| stage | its AP | AP50 | objects it finds again |", "|---|---|---|---|"]
            for stage, ap in judged["ap"].items():
                found = judged["shape_preservation"][stage]["found"]
                lines.append(f"| {stage} | {ap['AP']:.3f} | {ap['AP50']:.3f} | {'-' if found is None else f'{found:.2f}'} |")
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
                  "Class AP (clean, then under each perturbation inside that class's masks; grey_image: the whole "
                  "image grey); hue distance (OpenCV units, 0..90) of the reconstructed object to the class's prototype, "
                  "backbone -> prediction, and in brackets to the prototype of the class the detector saw.", "",
                  "| class | prototype hue | clean AP | " + " | ".join(COLOUR_PERTURBATIONS) + " |",
                  "|---|---|---|" + "---|" * len(COLOUR_PERTURBATIONS)]

        def drift(distances: dict) -> str:
            return " -> ".join("-" if distances[stage] is None else f"{distances[stage]:.0f}" for stage in STAGES)

        for name, entry in results["color"].items():
            cells = []
            for kind in COLOUR_PERTURBATIONS:
                p = entry["perturbations"][kind]
                hue = (f"; {drift(p['hue_distance_to_prototype'])} ({drift(p['hue_distance_to_predicted_prototype'])})"
                       if "hue_distance_to_prototype" in p else "")
                cells.append(f"AP {p['ap']:.2f}{hue}")
            prototype = entry["prototype_hue"]
            lines.append(f"| {name} | {prototype:.0f} | {entry['clean_ap']:.2f} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def evaluate(model: Model | ClassifierModel | str, data: str, out: str, split: str | None = None,
             max_images: int | None = None, batch_size: int = 16, sections: tuple[str, ...] | None = None,
             skip_unknown_categories: bool = False, max_unreadable: float = MAX_UNREADABLE_SHARE, layers: bool = True,
             judges: tuple[str, ...] = ()) -> dict:
    """Run the chosen sections (None: all a detector's, or a classifier's stages: `classifier_evaluate`) and write
    results.json, report.md and plots into `out`.

    `model`: a Model or ClassifierModel, or a name in the space config or an inverter checkpoint folder. The dataset is checked
    before any work; its categories are matched to the detector's labels by name (`skip_unknown_categories`
    leaves out the objects of categories the detector does not know); images that cannot be read are left out
    and listed, up to `max_unreadable` of them. `layers`: the stages section reconstructs from every layer too,
    not only from each stage's output. `judges`: other detectors (names or folders) that score the stage
    reconstructions too.
    """
    model = load_model(model) if isinstance(model, str) else model
    if isinstance(model, ClassifierModel):
        if judges:
            raise UserFacingError("Judges are detectors that score a detector's reconstructions: a classifier's "
                                  "evaluation takes none, drop --judge.")
        if skip_unknown_categories:
            raise UserFacingError("--skip-unknown-categories matches a dataset's categories to a detector's labels: "
                                  "a classifier's evaluation reads no labels, drop it.")
        return evaluate_classifier(model, data, out, split, max_images, batch_size, sections or CLASSIFIER_SECTIONS,
                                   max_unreadable, layers)
    sections = sections or SECTIONS
    if judges and "stages" not in sections:
        raise UserFacingError("Judges score the stage reconstructions: add the stages section, or drop --judge.")
    judging = load_judges(judges, model)
    dataset = open_coco(data, split, model.detector.config.id2label, skip_unknown_categories, max_images)
    if set(sections) - {"color"}:  # the colour section's APs need only the detector (its hue drift, the inverters)
        model.require_inverters()
    samples, unreadable = load_samples(dataset, max_images, max_unreadable)
    results: dict = {"model": model.spec.name, "family": model.detector.family.name, "data": str(data),
                     "images": len(samples), "threshold": model.detector.threshold, **dataset_notes(dataset, unreadable)}
    results["detector"] = evaluate_detector(model, dataset.coco, samples, batch_size)
    gallery: list[ErrorCase] = []
    with torch.no_grad():
        if "stages" in sections:
            results["stages"], gallery = evaluate_stages(model, dataset.coco, samples, batch_size, layers=layers,
                                                         judges=judging)
        if "layer_swap" in sections:
            results["layer_swap"] = evaluate_layer_swap(model, samples, batch_size)
        if "color" in sections:
            results["color"] = evaluate_color(model, dataset.coco, samples, batch_size)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    results = strict_json(results)
    (folder / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    plots = evaluation_plots(results, folder)
    if gallery:
        error_gallery([(case.image, case.detections, case.errors, case.reconstructions) for case in gallery], STAGES).savefig(
            folder / "errors.png", dpi=110)
        plots.append("errors.png")
    (folder / "report.md").write_text(report(results, plots))
    return results


def strict_json(value):
    """`value` with every NaN or infinite float replaced by None, so that it is valid JSON."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
