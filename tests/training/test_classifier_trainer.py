"""The one trainer trains an image classifier's inverse modules (ViT, DeiT, Swin): through `train()` on tiny random
classifiers, and through `python -m inversion train --model shapes-vit` on a tiny Shapes export, the result loading
with load_model; settings a classifier cannot train with are refused in one line, before anything is written."""

from __future__ import annotations

import json

import pytest
import torch

from inversion.__main__ import main
from inversion.core.classifier import Classifier
from inversion.core.classifier_checkpoints import load_classifier_inverters
from inversion.core.classifier_stages import ClassifierSource
from inversion.core.families.classifiers import classifier_family_for
from inversion.core.metrics import image_quality
from inversion.core.registry import ClassifierModel, load_model
from inversion.shapes.world import export_coco
from inversion.testing import random_image, tiny_classifier_config
from inversion.training.classifier_objectives import ClassifierModularObjective
from inversion.training.sources import open_dataset
from inversion.training.trainer import TrainingConfig, train

RATES = {"embedding": 3e-3, "encoder": 1e-3, "pooled": 1e-3, "logits": 3e-3}


@pytest.fixture(scope="module", params=["vit", "deit", "swin"])
def classifier_folder(request, tmp_path_factory):
    """A tiny random classifier of each family saved as a local folder (the patch bias far from zero, so that the
    Swin's embedding keeps the patches' contrast)."""
    config = tiny_classifier_config(request.param)
    torch.manual_seed(0)
    model = classifier_family_for(config).model_class(config)(config)
    torch.nn.init.uniform_(model.base_model.embeddings.patch_embeddings.projection.bias, -0.5, 0.5)
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def four_images(tmp_path_factory):
    """Four images to train on (one batch: every step sees the same images) and two held out."""
    root = tmp_path_factory.mktemp("classifier-data")
    for name, seeds in (("train", range(4)), ("held", range(50, 52))):
        (root / name).mkdir()
        for seed in seeds:
            random_image(40, 48, seed=seed).save(root / name / f"{seed}.png")
    return root


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes") / "data"
    export_coco(folder, 8, 5)
    return folder


def losses(run) -> list[dict]:
    return [entry["loss"] for entry in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if entry["split"] == "train"]


def test_thirty_trainer_steps_lower_every_inverse_modules_loss(classifier_folder, four_images, tmp_path):
    out = tmp_path / "run"
    result = train(TrainingConfig(data=str(four_images / "train"), val_data=str(four_images / "held"), out=str(out),
                                  classifier=str(classifier_folder), steps=30, batch_size=4, warmup_steps=1, log_every=1,
                                  val_every=30, save_every=30, val_images=2, workers=0, learning_rates=RATES))
    logged = losses(out)
    first, last = logged[0], logged[-1]
    assert len(logged) == 30 and set(first) == {"embedding", "encoder", "pooled", "logits"}
    at_most = {"embedding": 0.85, "encoder": 0.5, "pooled": 0.2, "logits": 0.15}
    for stage, ratio in at_most.items():
        assert last[stage] < first[stage] * ratio, (classifier_folder.name, stage, first[stage], last[stage])
    assert {stage for stage, scores in result["stages"].items() if scores["trained"]} == set(at_most)
    assert all(5 < scores["psnr"] < 60 for scores in result["stages"].values())
    classifier = Classifier.from_pretrained(str(classifier_folder))
    stack, config = load_classifier_inverters(out, classifier)
    assert config["kind"] == "classifier" and config["notes"]["step"] == 30
    with torch.no_grad():  # the last step's losses were those of the training images (the schedule ends near lr 0)
        train_images = open_dataset(four_images / "train")
        again = ClassifierModularObjective(stack)(classifier.capture([train_images[i][0] for i in range(4)]))
        held = classifier.capture([open_dataset(four_images / "held")[i][0] for i in range(2)])
        for stage in at_most:
            assert float(again[stage]) == pytest.approx(last[stage], rel=0.05), stage
            psnr = image_quality(stack.invert(held, ClassifierSource(stage)), held.pixels)["psnr"]  # validation's chains
            assert result["stages"][stage]["psnr"] == pytest.approx(psnr, abs=1e-3), stage
    assert config["notes"]["train_config"]["stages"] == ["embedding", "encoder", "pooled", "logits"]
    model = load_model(str(out))
    assert isinstance(model, ClassifierModel) and model.inverters is not None


def test_the_command_line_trains_the_shapes_vits_inverters_and_load_model_reads_them(shapes_data, tmp_path, monkeypatch):
    out = tmp_path / "runs" / "vit"
    common = ["--data", str(shapes_data), "--out", str(out), "--batch-size", "4", "--workers", "0", "--val-images", "2",
              "--warmup-steps", "1"]
    assert main(["train", "--model", "shapes-vit", *common, "--steps", "2"]) == 0
    assert main(["train", "--model", "shapes-vit", *common, "--steps", "3", "--resume"]) == 0
    monkeypatch.chdir(tmp_path)  # the checkpoint finds its classifier from any folder
    model = load_model(str(out))
    assert isinstance(model, ClassifierModel) and model.classifier.family.name == "ViT"
    assert model.classifier.config.id2label[3] == "star"
    _, config = load_classifier_inverters(out, model.classifier)
    assert config["notes"]["step"] == 3 and config["notes"]["train_config"]["learning_rates"]["pooled"] == 5e-4
    reps = model.classifier.capture([random_image(64, 64)])
    assert model.inverters.invert(reps, ClassifierSource("logits")).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("flags, named", [
    (["--working-size", "64", "64"], "working_size is a detector's canvas"),
    (["--stages", "backbone"], "stages must be some of embedding, encoder, pooled, logits (a classifier's)"),
    (["--objective", "end_to_end"], "modular objective, not end_to_end"),
    (["--lr", "decoder=0.1"], "learning rates name stages a classifier lacks (decoder)"),
    (["--backbone-widths", "8"], "the architecture settings backbone_widths shape a detector's inverters"),
    (["--feature-weight", "1"], "feature_weight is a detector's"),
    (["--detector", "x", "--classifier", "y"], "--detector and --classifier exclude each other"),
])
def test_settings_a_classifier_cannot_train_with_are_refused_in_one_line(flags, named, shapes_data, tmp_path, capsys):
    model = [] if "--classifier" in flags else ["--model", "shapes-vit"]
    assert main(["train", *model, "--data", str(shapes_data), "--out", str(tmp_path / "run"), "--steps", "1", *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and named in error, error
    assert not (tmp_path / "run").exists()
