"""`python -m inversion evaluate` on the bundled Shapes ViT: the stages section for a classifier (PSNR, SSIM, agreement
of its classes, every encoder entry, the analytic embedding, the baselines), and one-line refusals of the detection
experiments."""

from __future__ import annotations

import json

import pytest

from inversion.__main__ import main
from inversion.core.classifier_inverters import ANALYTIC_LABEL
from inversion.experiments.evaluate import evaluate
from inversion.shapes.world import export_coco


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes-eval") / "data"
    export_coco(folder, 12, 7)
    return folder


@pytest.fixture(scope="module")
def results(shapes_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    assert main(["evaluate", "--model", "shapes-vit", "--data", str(shapes_data), "--out", str(out), "--batch-size", "5"]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_the_stages_section_scores_every_stage_entry_and_baseline(results):
    out, found = results
    quality = found["stages"]["quality"]
    assert found["images"] == 12 and found["family"] == "ViT" and found["input_size"] == [64, 64]
    assert list(quality) == ["embedding", "encoder", "pooled", "logits", "encoder 0", "encoder 1", "encoder 2", "encoder 3",
                             ANALYTIC_LABEL, "baseline: mean_colour", "baseline: grid_average"]
    assert quality[ANALYTIC_LABEL]["psnr"] > 100 and quality[ANALYTIC_LABEL]["agreement"] == 1.0
    # the bundled inverters, on held-out Shapes images (docs/classifiers.md: 28.9 / 22.7 / 16.4 / 16.5 dB)
    assert quality["embedding"]["psnr"] > 26 and quality["embedding"]["agreement"] >= 0.9
    assert quality["encoder"]["psnr"] > quality["pooled"]["psnr"] + 3 and quality["encoder"]["agreement"] >= 0.6
    assert quality["pooled"]["agreement"] <= 0.5 and quality["logits"]["agreement"] <= 0.5
    assert quality["encoder 0"] == quality["embedding"]  # entry 0 is the embedding's tokens: the same chain
    assert quality["baseline: mean_colour"]["psnr"] < quality["embedding"]["psnr"]
    assert all(0 <= metrics["ssim"] <= 1 + 1e-6 and 0 <= metrics["agreement"] <= 1 for metrics in quality.values())
    report = (out / "report.md").read_text()
    assert "| embedding (analytic) | 0.0000 |" in report and "agreement" in report


def test_the_same_evaluation_runs_from_the_checkpoint_folder_and_a_plain_image_folder(shapes_data, results, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((shapes_data / "images").iterdir())[:3]:
        (images / path.name).write_bytes(path.read_bytes())
    found = evaluate("checkpoints/shapes/classifier-vit-inverters", str(images), str(tmp_path / "out"), layers=False)
    assert found["images"] == 3 and list(found["stages"]["quality"])[:4] == ["embedding", "encoder", "pooled", "logits"]
    assert ANALYTIC_LABEL not in found["stages"]["quality"]


@pytest.mark.parametrize("flags, named", [
    (["--sections", "stages", "color"], "The color section measures a detector"),
    (["--sections", "layer_swap"], "an image classifier is evaluated with --sections stages"),
    (["--skip-unknown-categories"], "a classifier's evaluation reads no labels"),
])
def test_detection_experiments_are_refused_in_one_line(flags, named, shapes_data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", "--model", "shapes-vit", "--data", str(shapes_data), "--out", str(out), *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and named in error, error
    assert not out.exists()


def test_a_classifier_without_inverters_is_refused_in_one_line(shapes_data, tmp_path, capsys):
    assert main(["evaluate", "--classifier", "checkpoints/shapes/classifier-vit", "--data", str(shapes_data),
                 "--out", str(tmp_path / "out")]) == 2
    assert "has no trained inverters yet" in capsys.readouterr().err and not (tmp_path / "out").exists()
