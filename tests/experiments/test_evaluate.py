"""`inversion.evaluate` runs end to end on a 20-image Shapes dataset and writes every section."""

import json

import pytest
import torch
from transformers import DetrForObjectDetection

from inversion.__main__ import main
from inversion.core.checkpoints import save_inverters
from inversion.core.detector import DEFAULT_THRESHOLD, Detector
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.shapes.world import CLASS_NAMES, export_coco
from inversion.testing import tiny_shapes_detr_config


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes20")
    export_coco(folder, n=20, seed=123)
    return folder


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    """A tiny random DETR with the Shapes label ids (1..4), and random inverters naming it."""
    folder = tmp_path_factory.mktemp("model")
    config = tiny_shapes_detr_config()
    torch.manual_seed(0)
    detector = Detector(DetrForObjectDetection(config), working_size=(128, 128), name=str(folder / "detector"))
    detector.model.save_pretrained(folder / "detector")
    stack = InverterStack(InverterConfig.for_detector(detector))
    return save_inverters(stack, folder / "inverters", detector)


def reject(constant: str):
    raise ValueError(f"results.json holds {constant}, which is not JSON")


def test_evaluate_writes_every_section(shapes_data, random_model, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(random_model), "--data", str(shapes_data), "--out", str(out), "--batch-size", "8"]) == 0
    results = json.loads((out / "results.json").read_text(), parse_constant=reject)  # strict JSON: no NaN
    assert results["images"] == 20 and results["threshold"] == DEFAULT_THRESHOLD  # a checkpoint folder's detector
    assert "a query scoring above 0.7" in (out / "report.md").read_text()
    assert set(results["detector"]) >= {"AP", "AP50", "per_class"}
    quality = results["stages"]["quality"]
    assert {"backbone", "encoder", "decoder", "prediction", "encoder 0", "decoder 2"} <= set(quality)
    assert all(0 < m["psnr"] < 60 and -1 <= m["ssim"] <= 1 for m in quality.values())
    assert {"baseline: mean_colour", "baseline: grid_average"} <= set(quality)
    assert set(results["stages"]["ap"]) == set(results["stages"]["shape_preservation"]) == {"backbone", "encoder", "decoder", "prediction"}
    swap = results["layer_swap"]
    assert set(swap["matrices"]["encoder"]["psnr"]) == {"backbone", "encoder"}
    assert len(swap["matrices"]["encoder"]["psnr"]["backbone"]) == 3  # layers 0..2 of the tiny encoder
    assert len(swap["cka"]["encoder"]) == 3 and swap["cka"]["encoder"][1][1] == pytest.approx(1.0)
    color = results["color"]
    assert set(color) <= set(CLASS_NAMES) and color
    for entry in color.values():
        assert set(entry["perturbations"]) == {"red", "green", "blue", "rotate120", "rotate240", "grey", "grey_image"}
        for values in entry["perturbations"].values():
            assert 0 <= values["ap"] <= 1 and 0 <= values["seen_as_other_class"] <= 1
            for distances in ("hue_distance_to_prototype", "hue_distance_to_predicted_prototype"):
                assert set(values[distances]) == {"backbone", "encoder", "decoder", "prediction"}
    for name in ("report.md", "stages.png", "layer_swap.png", "color.png"):
        assert (out / name).stat().st_size > 0
    assert "## Colour perturbations" in (out / "report.md").read_text()


def test_evaluate_names_a_missing_dataset(tmp_path, random_model, capsys):
    assert main(["evaluate", "--model", str(random_model), "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
