"""Which detections of one image are the same objects as those of another (clean vs perturbed,
original vs reconstruction): pairs by box overlap, and what became of each object."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..core.stages import Detection

MATCH_IOU = 0.5  # two detections are the same object if their boxes overlap at least this much


@dataclass
class DetectionChange:
    """A detection of the clean image and what became of it in the perturbed one (None: none)."""

    before: Detection | None
    after: Detection | None

    @property
    def status(self) -> str:
        if self.before is None:
            return "new"
        if self.after is None:
            return "lost"
        return "label changed" if self.after.label != self.before.label else "same label"

    @property
    def score_delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after.score - self.before.score


def match_detections(before: list[Detection], after: list[Detection]) -> list[DetectionChange]:
    """Pair the detections of two images one-to-one by box overlap (Hungarian matching on IoU; a pair
    needs IoU >= MATCH_IOU, whatever the labels): every detection of `before` in order, then the new ones."""
    overlaps = np.array([[iou(first.box, second.box) for second in after] for first in before]).reshape(len(before), len(after))
    rows, columns = linear_sum_assignment(overlaps, maximize=True)
    partner = {row: column for row, column in zip(rows, columns) if overlaps[row, column] >= MATCH_IOU}
    changes = [DetectionChange(detection, after[partner[row]] if row in partner else None) for row, detection in enumerate(before)]
    matched = set(partner.values())
    return changes + [DetectionChange(None, detection) for column, detection in enumerate(after) if column not in matched]


def shape_preservation(pairs: list[tuple[list[Detection], list[Detection]]]) -> dict:
    """How many objects found in originals are found again, with the same label, in their reconstructions.

    pairs: (detections on an original, detections on its reconstruction), in the same pixels.
    Returns the share found ("found"), their mean IoU ("iou") and the number of objects ("objects"),
    overall and per label ("per_class").
    """
    found: dict[str, list[float]] = {}  # label -> IoU of each original object (0 when not found again)
    for original, reconstruction in pairs:
        for change in match_detections(original, reconstruction):
            if change.before is None:
                continue
            kept = change.after is not None and change.after.label == change.before.label
            found.setdefault(change.before.label, []).append(iou(change.before.box, change.after.box) if kept else 0.0)

    def summary(values: list[float]) -> dict:
        hits = [value for value in values if value > 0]
        return {"found": len(hits) / len(values) if values else None, "iou": float(np.mean(hits)) if hits else None,
                "objects": len(values)}

    return {**summary([value for values in found.values() for value in values]),
            "per_class": {label: summary(values) for label, values in sorted(found.items())}}


def iou(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    intersection = width * height
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return intersection / (area - intersection) if area > intersection else 0.0
