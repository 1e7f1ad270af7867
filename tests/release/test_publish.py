"""A dry-run publish writes a repo folder the loader accepts as a Hub repo, with metrics in its card."""

import pytest
import torch
from huggingface_hub import constants
from transformers import DetrForObjectDetection

from inversion.__main__ import main, parser, training_config
from inversion.core.checkpoints import load_inverters, save_inverters
from inversion.core.classifier import Classifier
from inversion.core.classifier_checkpoints import load_classifier_inverters
from inversion.core.classifier_stages import ClassifierSource
from inversion.core.detector import Detector
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.experiments.evaluate import evaluate
from inversion.release.publish import training_command
from inversion.shapes.world import export_coco
from inversion.testing import random_image, tiny_shapes_detr_config
from inversion.training.trainer import TrainingConfig
from support.hub_cache import fake_hub_cache
from support.paths import REPO


@pytest.fixture()
def evaluated_checkpoint(tmp_path):
    """A tiny Shapes-labelled detector on a fake Hub, inverters for it, and an evaluation of them."""
    config = tiny_shapes_detr_config()
    torch.manual_seed(0)
    detector = Detector(DetrForObjectDetection(config), (128, 128), name=str(tmp_path / "detector"))
    detector.model.save_pretrained(tmp_path / "detector")
    notes = {"objective": "modular", "step": 10, "backbone_loss": {"pixel_mse": 1.0, "backbone_feature_relative_mse": 1.65,
                                                                    "patch_adversarial": 0.0},
             "train_config": {"data": "data/shapes-train", "steps": 10, "batch_size": 8, "seed": 3,
                              "learning_rates": {"backbone": 0.002}, "resume": False}}
    save_inverters(InverterStack(InverterConfig.for_detector(detector)),
                   tmp_path / "inverters", detector, notes)
    export_coco(tmp_path / "data", n=6, seed=5)
    evaluate(str(tmp_path / "inverters"), str(tmp_path / "data"), str(tmp_path / "eval"), sections=("stages",))
    return tmp_path


def test_dry_run_folder_loads_as_a_hub_repo_and_its_card_names_the_metrics(evaluated_checkpoint, monkeypatch):
    root = evaluated_checkpoint
    out = root / "repo"
    assert main(["publish", str(root / "inverters"), "--repo-id", "lab/tiny-inverters", "--eval", str(root / "eval"),
                 "--dry-run", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0")
    for words in ("| backbone |", "| prediction |", "PSNR (dB)", "SSIM", "detector AP", "--batch-size 8", "--seed 3",
                  "inverse backbone loss: pixel MSE + 1.65 x the relative feature-matching error through the detector's "
                  "backbone\n"):
        assert words in card
    assert (out / "results.json").is_file() and (out / "stages.png").is_file()

    fake_hub_cache(root / "hub", "lab/tiny-inverters", "main", out)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root / "hub"))
    detector = Detector.from_pretrained(str(root / "detector"), None, (128, 128))
    stack, config = load_inverters("lab/tiny-inverters", detector=detector, revision="main")
    assert config["notes"]["step"] == 10
    reps = detector.capture([random_image(128, 128)])
    assert stack.backbone(reps.backbone).shape == (1, 3, 128, 128)


def test_the_training_command_round_trips_through_the_cli():
    config = TrainingConfig(data="coco", split="train2017", steps=1000, stages=("encoder", "decoder"),
                         learning_rates={"backbone": 0.003, "encoder": 0.001, "decoder": 0.0001, "prediction": 0.001},
                         architecture={"backbone_widths": [64, 32]}, working_size=(480, 640))
    command = training_command(config.__dict__).split()
    assert command[:4] == ["python", "-m", "inversion", "train"]
    assert training_config(parser().parse_args(command[3:])) == config


def test_publishing_a_folder_without_a_checkpoint_is_named(tmp_path, capsys):
    assert main(["publish", str(tmp_path), "--repo-id", "lab/x", "--dry-run", str(tmp_path / "out")]) == 2
    assert "has no inverters.json" in capsys.readouterr().err


def test_a_classifiers_dry_run_lists_its_files_and_its_card_loads_as_a_hub_repo(tmp_path, monkeypatch, capsys):
    """The Shapes ViT's inverters, trained two steps by the trainer, evaluated, then published as a dry run."""
    export_coco(tmp_path / "data", n=6, seed=5)
    run, out = tmp_path / "run", tmp_path / "repo"
    assert main(["train", "--model", "shapes-vit", "--data", str(tmp_path / "data"), "--out", str(run), "--steps", "2",
                 "--batch-size", "4", "--workers", "0", "--val-images", "2", "--seed", "3"]) == 0
    assert main(["evaluate", "--model", str(run), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "eval")]) == 0
    capsys.readouterr()
    assert main(["publish", str(run), "--repo-id", "lab/shapes-vit-inverters", "--eval", str(tmp_path / "eval"),
                 "--dry-run", str(out)]) == 0
    assert "dry run: nothing uploaded" in capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "inverters.json", "inverters.safetensors",
                                                           "report.md", "results.json"]
    card = (out / "README.md").read_text()
    for words in ("tags: [vit,", "image classifier `checkpoints/shapes/classifier-vit`", "| embedding |", "| logits |",
                  "agreement of the classes", "--model shapes-vit", "--seed 3", "the classifier keeps its own licence"):
        assert words in card, words
    assert "detector" not in card.lower()

    fake_hub_cache(tmp_path / "hub", "lab/shapes-vit-inverters", "main", out)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    classifier = Classifier.from_pretrained(str(REPO / "checkpoints/shapes/classifier-vit"),
                                            name="checkpoints/shapes/classifier-vit")
    stack, config = load_classifier_inverters("lab/shapes-vit-inverters", classifier, revision="main")
    assert config["notes"]["step"] == 2
    assert stack.invert(classifier.capture([random_image(64, 64)]), ClassifierSource("pooled")).shape == (1, 3, 64, 64)
