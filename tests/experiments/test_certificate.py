"""The certificate of any detector's inverters from the evaluations of its 4x neighbours (`python -m inversion
certify`), on evaluation folders written here with chosen numbers."""

import json
from pathlib import Path

import pytest

from inversion.__main__ import main
from inversion.core.errors import UserFacingError
from inversion.core.stages import STAGES
from inversion.experiments.certificate import certify, converged


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the evaluation folders below are named as a user would pass them


def evaluation(name: str, psnr: float, found: float, images: int = 500, threshold: float = 0.7) -> str:
    """An evaluation folder as `evaluate` writes it (stages section), the same numbers at every stage."""
    stages = {"quality": {**{stage: {"psnr": psnr, "ssim": 0.6} for stage in STAGES},
                          "baseline: mean_colour": {"psnr": 19.0, "ssim": 0.6},
                          "baseline: grid_average": {"psnr": 24.0, "ssim": 0.7}},
              "shape_preservation": {stage: {"found": found} for stage in STAGES},
              "ap": {stage: {"AP": 0.4} for stage in STAGES}}
    Path(name).mkdir()
    (Path(name) / "results.json").write_text(json.dumps({"data": "coco/val2017", "images": images, "threshold": threshold,
                                                         "stages": stages}))
    return name


def test_converged_only_when_both_4x_steps_beyond_gain_less_than_the_rule(tmp_path):
    stack = evaluation("r50", 25.0, 0.80)
    wider, longer = evaluation("r50-wide", 25.29, 0.819), evaluation("r50-long", 25.2, 0.81)
    assert {c["verdict"] for c in certify(stack, wider, longer).values()} == {"converged"}
    assert certify(stack, wider)["backbone"]["verdict"] == "undecided"  # 4x the steps not measured
    certificate = certify(stack, wider, evaluation("r50-longer", 25.31, 0.80))["encoder"]
    assert certificate["verdict"] == "not converged" and certificate["why"] == "r50 to r50-longer: +0.31 dB, +0.000 objects found again"
    found = certify(stack, wider, evaluation("r50-more-found", 25.0, 0.821))["decoder"]
    assert found["verdict"] == "not converged" and found["evidence"]["to"] == "r50-more-found"
    assert certificate["margin_over_baselines_db"] == pytest.approx({"mean_colour": 6.0, "grid_average": 1.0})


def test_the_4x_step_up_to_the_stack_says_whether_it_was_still_improving(tmp_path):
    stack = evaluation("r50", 25.0, 0.80)
    certificate = certify(stack, fewer_steps=evaluation("r50-quarter", 24.0, 0.80))["prediction"]
    assert certificate["verdict"] == "still improving" and certificate["evidence"]["from"] == "r50-quarter"
    undecided = certify(stack, less_capacity=evaluation("r50-narrow", 24.9, 0.79))["backbone"]
    assert undecided["verdict"] == "undecided" and undecided["why"] == "r50-narrow to r50: +0.10 dB, +0.010 objects found again"
    assert certify(stack, evaluation("r50-wide", 25.29, 0.819))["backbone"]["why"] == ""  # nothing measured up to it


def test_evaluations_that_cannot_be_compared_are_refused_in_one_line(tmp_path, capsys):
    stack = evaluation("r50", 25.0, 0.80)
    with pytest.raises(UserFacingError, match=r"r50-few \(steps\) was evaluated on 100 images .* the same images"):
        certify(stack, more_steps=evaluation("r50-few", 25.0, 0.80, images=100))
    with pytest.raises(UserFacingError, match=r"r50-at-half \(capacity\) counted detections above 0.5, r50 above 0.7"):
        certify(stack, more_capacity=evaluation("r50-at-half", 25.0, 0.80, threshold=0.5))
    with pytest.raises(UserFacingError, match="needs a neighbour"):
        certify(stack)
    classifier = tmp_path / "vit"
    classifier.mkdir()
    (classifier / "results.json").write_text(json.dumps({"stages": {"quality": {}}}))
    assert main(["certify", str(classifier), "--more-steps", stack]) == 2
    assert "holds no detector's stage evaluation" in capsys.readouterr().err


def test_the_command_prints_the_table_and_writes_the_json(tmp_path, capsys):
    stack = evaluation("r50", 25.0, 0.80)
    longer = evaluation("r50-long", 26.0, 0.85)
    assert main(["certify", stack, "--more-steps", longer, "--json", str(tmp_path / "certificate.json")]) == 0
    printed = capsys.readouterr().out
    assert "| backbone | 25.00 | 0.800 | +6.00 | +1.00 | not converged | r50 to r50-long: +1.00 dB, +0.050 objects found again |" \
        in printed
    assert json.loads((tmp_path / "certificate.json").read_text())["backbone"]["verdict"] == "not converged"


@pytest.mark.parametrize(("psnr_gain", "found_gain", "expected"), [
    (0.29, 0.019, True), (0.31, 0.0, False), (0.0, 0.021, False), (-0.5, -0.1, True)])
def test_the_rule_needs_both_directions_under_both_thresholds(psnr_gain, found_gain, expected):
    small = {"psnr": 0.1, "objects_found": 0.005}
    assert converged({"capacity": small, "steps": {"psnr": psnr_gain, "objects_found": found_gain}}) is expected
    assert converged({"capacity": {"psnr": psnr_gain, "objects_found": found_gain}, "steps": small}) is expected
    assert converged({"capacity": small, "steps": {"psnr": None, "objects_found": 0.0}}) is None
