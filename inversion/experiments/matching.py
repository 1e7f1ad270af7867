"""Which detections of one image are the same objects as those of another (clean vs perturbed,
original vs reconstruction): pairs by box overlap, and what became of each object."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    """Pair each clean detection with the best-overlapping perturbed one (IoU >= MATCH_IOU, greedy by score)."""
    unmatched = list(after)
    changes = []
    for detection in before:
        overlaps = [iou(detection.box, other.box) for other in unmatched]
        best = int(np.argmax(overlaps)) if overlaps else -1
        match = unmatched.pop(best) if best >= 0 and overlaps[best] >= MATCH_IOU else None
        changes.append(DetectionChange(detection, match))
    return changes + [DetectionChange(None, detection) for detection in unmatched]


def iou(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    intersection = width * height
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return intersection / (area - intersection) if area > intersection else 0.0
