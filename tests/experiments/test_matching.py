"""Detections of two images are paired one-to-one by box overlap; shape preservation counts what survives."""

import pytest

from inversion.core.stages import Detection
from inversion.experiments.matching import match_detections, shape_preservation


def box(label: str, x0: float, x1: float, score: float = 0.9) -> Detection:
    return Detection(label, 0, score, (x0, 0.0, x1, 10.0))


def test_changes_name_label_changes_losses_new_objects_and_score_deltas():
    square, circle = Detection("square", 2, 0.9, (10, 10, 50, 50)), Detection("circle", 1, 0.8, (60, 60, 100, 100))
    after = [Detection("circle", 1, 0.6, (12, 11, 50, 49)), Detection("star", 4, 0.7, (0, 80, 20, 100))]
    changes = match_detections([square, circle], after)
    assert [change.status for change in changes] == ["label changed", "lost", "new"]
    assert changes[0].score_delta == pytest.approx(-0.3) and changes[1].score_delta is None


def test_pairs_are_chosen_together_not_greedily():
    # a greedy matcher gives `first` its best box (IoU .67) and leaves `second` nothing above 0.5
    first, second = box("a", 0, 10), box("b", 4, 14)
    changes = match_detections([first, second], [box("a", 2, 12), box("b", -3, 7)])
    assert [change.after.box[0] for change in changes] == [-3, 2]


def test_shape_preservation_counts_objects_found_again_with_their_label():
    original = [box("circle", 0, 10), box("star", 20, 30), box("star", 40, 50)]
    reconstruction = [box("circle", 1, 10), box("square", 20, 30)]  # one star relabelled, one lost
    result = shape_preservation([(original, reconstruction)])
    assert result["objects"] == 3 and result["found"] == pytest.approx(1 / 3) and result["iou"] == pytest.approx(0.9)
    assert result["per_class"]["star"] == {"found": 0.0, "iou": None, "objects": 2}
    assert result["per_class"]["circle"]["found"] == 1.0
