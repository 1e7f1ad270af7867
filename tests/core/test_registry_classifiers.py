"""The registry's classifier kind: the bundled Shapes classifiers load with their inverters (by name, or by
load_model from their checkpoint folder), and nothing that needs a detector takes one (the command-line tools
that invert detectors only refuse a classifier's name in one line)."""

import pytest

from inversion.__main__ import main
from inversion.core.errors import CheckpointError
from inversion.core.registry import CLASSIFIER, DETECTOR, build_classifier_model, build_model, find_spec, model_specs
from inversion.testing import random_image, write_space_config
from support.paths import REPO

CONFIG = REPO / "space_config.yaml"


@pytest.mark.parametrize("name, family", [("shapes-vit", "ViT"), ("shapes-swin", "Swin")])
def test_the_bundled_classifiers_load_with_their_inverters(name, family):
    spec = model_specs(CONFIG)[name]
    assert spec.kind == CLASSIFIER and spec.working_size == ()
    model = build_classifier_model(spec)
    assert model.classifier.family.name == family and model.inverters is not None and model.inverters_problem is None
    assert model.classifier.multi_label and model.classifier.config.id2label[2] == "triangle"
    with pytest.raises(CheckpointError, match="not a detector: load it with build_classifier_model"):
        build_model(spec)


def test_the_detectors_are_unchanged():
    specs = model_specs(CONFIG)
    detectors = [name for name, spec in specs.items() if spec.kind == DETECTOR]
    assert detectors == ["shapes", "shapes40", "shapes-conditional", "shapes-deformable", "detr-resnet-50"]
    assert find_spec("shapes", CONFIG).working_size == (128, 128)
    with pytest.raises(CheckpointError, match="is a detector, not an image classifier"):
        build_classifier_model(specs["shapes"])


def test_a_command_line_tool_refuses_a_classifier_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("INVERSION_SPACE_CONFIG", str(CONFIG))
    random_image(20, 20).save(tmp_path / "ok.png")
    assert main(["reconstruct", str(tmp_path / "ok.png"), "--model", "shapes-vit", "--out", str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert error == ("error: 'shapes-vit' is an image classifier, not a detector: this command takes a detector "
                     "(shapes, shapes40, shapes-conditional, shapes-deformable, detr-resnet-50); train, cache-features, "
                     "evaluate and publish take either, and the app serves both (python app.py).\n")
    assert not (tmp_path / "x.png").exists()


def test_an_entry_naming_both_a_detector_and_a_classifier_is_refused(tmp_path):
    config = write_space_config(tmp_path / "space_config.yaml", {"both": {"detector": "a", "classifier": "b"}},
                                default_model="both", limits={})
    with pytest.raises(CheckpointError, match="names both a detector and a classifier"):
        model_specs(config)


def test_load_model_reads_a_classifier_checkpoint_folder_and_find_spec_a_classifiers_name():
    from inversion.core.registry import NETWORK_KINDS, ClassifierModel, load_model

    model = load_model(str(REPO / "checkpoints/shapes/classifier-swin-inverters"))
    assert isinstance(model, ClassifierModel) and model.classifier.family.name == "Swin" and model.inverters is not None
    assert find_spec("shapes-vit", CONFIG, NETWORK_KINDS).kind == CLASSIFIER
    with pytest.raises(CheckpointError, match="is an image classifier, not a detector: this command takes a detector"):
        find_spec(str(REPO / "checkpoints/shapes/classifier-vit-inverters"), CONFIG)
