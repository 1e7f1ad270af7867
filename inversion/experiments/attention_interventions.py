"""Attention and interventions as numbers, for any detector and COCO-format dataset (no inverters).

    python -m inversion interventions --model shapes --data DIR --out OUT

writes OUT/results.json, OUT/transplant_trials.csv and OUT/layer_skip.png:
- attention: the share of each detection's cross-attention (mean over heads) inside its predicted
  box, by decoder layer, overall and per predicted class, next to the share of the image the box
  covers (what uniform attention would give);
- transplant: every correctly detected object of image i moved, by a random non-zero offset, into
  an empty region of image i+1 (no annotated or detected object touches its cells), at the
  backbone map and at the encoder output: how often it is detected at its new place with its
  label, and how many of the receiving image's own detections keep their label;
- layer_skip: the detector's AP with each encoder and decoder layer skipped, against the unmodified run.
"""

from __future__ import annotations

import csv
import json
from itertools import product
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.detector import Detector
from ..core.registry import find_spec, load_detector
from ..core.stages import Detection, Representations
from ..figures import layer_skip_chart
from ..training.data import MAX_UNREADABLE_SHARE
from .attention import capture_attention, detection_queries, share_in_box
from .coco_ap import coco_ap, detections_from_outputs
from .evaluate import Sample, batches, dataset_notes, ground_truth_detections, load_samples, open_coco, subset_ground_truth
from .grid import Box, CellBlock, box_cells, box_coverage, move_box
from .interventions import TRANSPLANT_STAGES, found_at, one_image, skip_layer, transplant
from .matching import match_detections

RECEIVERS = 10  # how many following images are tried, in order, as the receiver of a transplant
TRIAL_FIELDS = ("source", "target", "label", "placement", "offset", "stage", "found_with_label", "found_label", "score",
                "at_source_with_label", "follow", "own", "own_kept")


def attention_in_boxes(detector: Detector, samples: list[Sample], batch_size: int = 16) -> dict:
    """The share of each detection's cross-attention inside its predicted box, and its box's share of the image."""
    shares: dict[int, dict[str, list[float]]] = {}  # decoder layer -> label -> one share per detection
    areas: dict[str, list[float]] = {}
    for part in tqdm(list(batches(samples, batch_size)), desc="attention", leave=False):
        representations, attention = capture_attention(detector, [sample.image for sample in part])
        for image, detections in enumerate(representations.detections):
            for detection, query in zip(detections, detection_queries(detector, representations, image)):
                coverage = box_coverage(representations, image, detection.box)
                areas.setdefault(detection.label, []).append(float(coverage.sum() / representations.grid_mask[image].sum()))
                for layer in attention.cross:
                    share = share_in_box(attention.query_map(image, query, layer), representations, image, detection.box)
                    shares.setdefault(layer, {}).setdefault(detection.label, []).append(share)
    if not shares:
        return {"detections": 0}
    last = shares[max(shares)]
    return {
        "detections": sum(len(values) for values in last.values()),
        "layer": max(shares),
        "in_box": _mean_by_label(last),
        "box_area": _mean_by_label(areas),
        "in_box_by_layer": {layer: _mean([v for values in by_label.values() for v in values]) for layer, by_label in shares.items()},
    }


def transplant_trials(detector: Detector, samples: list[Sample], seed: int = 0, batch_size: int = 16) -> list[dict]:
    """Transplant every correctly detected object of image i into the first of images i+1..i+RECEIVERS where
    its own cells and some other place are empty, at each stage, twice: at its own cells and moved by a random
    non-zero offset (objects without such a receiver are recorded with placement None)."""
    names = {int(key): value for key, value in detector.config.id2label.items()}
    captured = [one_image(part, index) for batch in batches(samples, batch_size)
                for part in [detector.capture([sample.image for sample in batch])] for index in range(len(batch))]
    occupied = [[d.box for d in ground_truth_detections(sample, names)] + [d.box for d in image.detections[0]]
                for sample, image in zip(samples, captured)]
    trials = []
    for index, sample in enumerate(tqdm(samples, desc="transplants", leave=False)):
        source = captured[index]
        for number, detection in enumerate(correct_detections(sample, source.detections[0], names)):
            record = {"source": sample.image_id, "label": detection.label, "placement": None}
            receiver, offsets = _receiver(captured, occupied, index, box_cells(source, 0, detection.box))
            if receiver is None:
                trials.append(record)
                continue
            target, record["target"] = captured[receiver], samples[receiver].image_id
            moved = [offset for offset in offsets if offset != (0, 0)]
            placements = {"same": (0, 0), "moved": moved[np.random.default_rng([seed, index, number]).integers(len(moved))]}
            own_place = move_box(detection.box, 0, 0, (source, 0), (target, 0))
            for (placement, offset), stage in product(placements.items(), TRANSPLANT_STAGES):
                result = transplant(detector, source, target, detection, stage, offset)
                at_source = found_at(result.representations.detections[0], own_place, detection.label)
                own = [change for change in result.changes if change.before is not None]
                newcomers = [change.after for change in result.changes if change.before is None and change.after.label == detection.label]
                follow = (_follow(max(newcomers, key=lambda d: d.score).box, own_place, result.expected_box)
                          if newcomers and placement == "moved" else None)
                trials.append({
                    **record, "placement": placement, "offset": list(offset), "stage": stage,
                    "found_with_label": result.found_with_label,
                    "found_label": result.found.label if result.found else None,
                    "score": result.found.score if result.found else None,
                    "at_source_with_label": at_source is not None and at_source.label == detection.label,
                    "follow": follow, "own": len(own), "own_kept": sum(change.status == "same label" for change in own),
                })
    return trials


def _follow(box: Box, old: Box, new: Box) -> float:
    """How far a box's centre went along the move from `old` to `new`: 0 stayed, 1 followed the whole way."""
    centre = [np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) for b in (box, old, new)]
    move = centre[2] - centre[1]
    return float((centre[0] - centre[1]) @ move / (move @ move))


def _receiver(captured: list[Representations], occupied: list[list[Box]], index: int,
              block: CellBlock) -> tuple[int | None, list[tuple[int, int]]]:
    """The first image after `index` (at most RECEIVERS on) where `block` and some other place are free, with its free offsets."""
    for step in range(1, RECEIVERS + 1):
        receiver = (index + step) % len(captured)
        offsets = free_offsets(captured[receiver], block, occupied[receiver])
        if receiver != index and (0, 0) in offsets and len(offsets) > 1:
            return receiver, offsets
    return None, []


def transplant_shares(trials: list[dict]) -> dict:
    """Per stage and placement: how often the object is detected at its new place with its label (and, when
    moved, at the place it came from instead); when moved, how far the best new detection with its label
    followed the move (median; 0 stayed where the tokens came from, 1 went all the way); and the share of
    B's own detections that keep their label."""
    summary: dict = {"objects": sum(t["placement"] is None or (t["placement"], t["stage"]) == ("same", "backbone") for t in trials),
                     "without_receiver": sum(t["placement"] is None for t in trials)}
    for stage, placement in product(TRANSPLANT_STAGES, ("same", "moved")):
        done = [t for t in trials if t.get("stage") == stage and t["placement"] == placement]
        summary[f"{stage}, {placement} place"] = {
            "trials": len(done),
            "found_with_label": _mean([t["found_with_label"] for t in done]),
            "per_class": {label: _mean(hits) for label, hits in sorted(_group(done, "found_with_label").items())},
            "score": _mean([t["score"] for t in done if t["found_with_label"]]),
            "at_source_with_label": _mean([t["at_source_with_label"] for t in done]),
            "follow_median": _median([t["follow"] for t in done if t["follow"] is not None]),
            "own_kept": sum(t["own_kept"] for t in done) / max(1, sum(t["own"] for t in done)),
        }
    return summary


def layer_skip_ap(detector: Detector, coco, samples: list[Sample], batch_size: int = 16) -> dict:
    """AP and AP50 with each encoder and decoder layer skipped, and the unmodified run's detections kept."""
    sizes = detector.family.sizes(detector.config)
    layers = {"encoder": sizes.encoder_layers, "decoder": sizes.decoder_layers}
    keys = [(stage, layer) for stage, count in layers.items() for layer in range(1, count + 1)]
    ranked: dict[tuple[str, int] | None, list[dict]] = {key: [] for key in [None, *keys]}
    kept = {key: [] for key in keys}
    for part in tqdm(list(batches(samples, batch_size)), desc="layer skip", leave=False):
        ids = [sample.image_id for sample in part]
        base = detector.capture([sample.image for sample in part])
        ranked[None] += detections_from_outputs(detector.class_probabilities(base.logits), base.boxes, ids, base.original_sizes)
        for key in keys:
            skipped = skip_layer(detector, base, *key)
            after = skipped.representations
            ranked[key] += detections_from_outputs(detector.class_probabilities(after.logits), after.boxes, ids,
                                                   base.original_sizes)
            kept[key] += [change.status == "same label" for changes in skipped.changes for change in changes if change.before]
    truth = subset_ground_truth(coco, [sample.image_id for sample in samples])
    unmodified = coco_ap(truth, ranked[None])
    skipped = {}
    for (stage, layer) in keys:
        ap = coco_ap(truth, ranked[(stage, layer)])
        skipped[f"{stage} {layer}"] = {"AP": ap["AP"], "AP50": ap["AP50"], "AP_change": ap["AP"] - unmodified["AP"],
                                       "detections_kept": _mean(kept[(stage, layer)])}
    return {"unmodified": {"AP": unmodified["AP"], "AP50": unmodified["AP50"]}, "skipped": skipped}


def attention_and_interventions(detector: Detector, coco, samples: list[Sample], batch_size: int = 16, seed: int = 0) -> dict:
    """All three studies on one detector and dataset."""
    trials = transplant_trials(detector, samples, seed, batch_size)
    return {
        "images": len(samples),
        "attention": attention_in_boxes(detector, samples, batch_size),
        "transplant": transplant_shares(trials),
        "layer_skip": layer_skip_ap(detector, coco, samples, batch_size),
        "transplant_trials": trials,
    }


def run(detector: Detector | str, data: str, out: str, split: str | None = None, max_images: int | None = None,
        batch_size: int = 16, seed: int = 0, skip_unknown_categories: bool = False,
        max_unreadable: float = MAX_UNREADABLE_SHARE) -> dict:
    """On a detector (or a model name's detector: no inverters needed) and a checked COCO-format dataset (its
    categories matched to the detector's labels), run the three studies and write the results."""
    detector = load_detector(find_spec(detector)) if isinstance(detector, str) else detector
    dataset = open_coco(data, split, detector.config.id2label, skip_unknown_categories, max_images)
    samples, unreadable = load_samples(dataset, max_images, max_unreadable)
    results = {"detector": detector.name, "family": detector.family.name, "revision": detector.revision, "data": str(data),
               "seed": seed, **dataset_notes(dataset, unreadable),
               **attention_and_interventions(detector, dataset.coco, samples, batch_size, seed)}
    write_results(results, out)
    return results


def write_results(results: dict, out: str | Path) -> list[Path]:
    """OUT/results.json (without the trials), OUT/transplant_trials.csv (one trial a row) and OUT/layer_skip.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {key: value for key, value in results.items() if key != "transplant_trials"}
    (out / "results.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    with open(out / "transplant_trials.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, TRIAL_FIELDS)
        writer.writeheader()
        writer.writerows({key: _cell(value) for key, value in trial.items()} for trial in results["transplant_trials"])
    layer_skip_chart(results["layer_skip"]).savefig(out / "layer_skip.png", dpi=120)
    return [out / "results.json", out / "transplant_trials.csv", out / "layer_skip.png"]


def _cell(value) -> str | int | float | None:
    """A trial's value as a CSV cell: offsets as 'rows columns', floats to 4 decimals."""
    if isinstance(value, list):
        return " ".join(map(str, value))
    return round(value, 4) if isinstance(value, float) else value


def correct_detections(sample: Sample, detections: list[Detection], names: dict[int, str]) -> list[Detection]:
    """The detections that match an annotated object (IoU >= 0.5) with its label."""
    return [change.after for change in match_detections(ground_truth_detections(sample, names), detections)
            if change.status == "same label"]


def free_offsets(target: Representations, block: CellBlock, occupied: list[Box]) -> list[tuple[int, int]]:
    """Every (rows, columns) move of `block`, (0, 0) included, that keeps it on the target image (a batch of one)
    and off the cells of the `occupied` boxes."""
    taken = ~target.grid_mask[0].cpu()
    for box in occupied:
        taken[box_cells(target, 0, box).slices()] = True
    rows, columns = target.grid_size
    return [(down, across)
            for down in range(-block.top, rows - block.bottom + 1)
            for across in range(-block.left, columns - block.right + 1)
            if not taken[block.moved(down, across).slices()].any()]


def _group(items: list[dict], key: str) -> dict[str, list]:
    """The `key` values of items, grouped by their label."""
    grouped: dict[str, list] = {}
    for item in items:
        grouped.setdefault(item["label"], []).append(item[key])
    return grouped


def _mean(values: list) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _median(values: list) -> float | None:
    return float(np.median(values)) if len(values) else None


def _mean_by_label(values: dict[str, list[float]]) -> dict:
    return {"mean": _mean([v for group in values.values() for v in group]),
            "per_class": {label: _mean(group) for label, group in sorted(values.items())}}

