"""Checkpoints round-trip exactly, refuse what does not fit, and load through the Hub path offline."""

import json

import pytest
import torch
from huggingface_hub import constants
from transformers import DetrForObjectDetection

from inversion.core.checkpoints import CheckpointError, load_inverters, read_config, save_inverters
from inversion.core.detector import Detector
from inversion.core.hub import WeightsNotFound
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.core.reconstruct import reconstruct
from inversion.core.stages import STAGE_SOURCES
from inversion.testing import random_image, tiny_detr_config
from support.hub_cache import fake_hub_cache


def test_round_trip_gives_identical_reconstructions(tmp_path, tiny_detector, tiny_stack):
    save_inverters(tiny_stack, tmp_path / "ckpt", tiny_detector)
    loaded, config = load_inverters(tmp_path / "ckpt", detector=tiny_detector)
    reps = tiny_detector.capture([random_image(64, 96)])
    before = reconstruct(tiny_stack.eval(), reps, STAGE_SOURCES)
    after = reconstruct(loaded, reps, STAGE_SOURCES)
    for source in STAGE_SOURCES:
        assert torch.equal(before[source][0], after[source][0])
    assert config["detector"] == {"id": "tiny-detr", "revision": None, "family": "DETR"}
    assert config["working_size"] == [64, 96]
    assert config["normalisation"]["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_a_checkpoint_for_another_config_is_refused_naming_the_mismatch(tmp_path, tiny_detector):
    other = Detector(DetrForObjectDetection(tiny_detr_config(d_model=64, num_queries=8)), (64, 96), name="tiny-detr")
    stack = InverterStack(InverterConfig.for_detector(other))
    save_inverters(stack, tmp_path / "other", other)
    with pytest.raises(CheckpointError) as error:
        load_inverters(tmp_path / "other", detector=tiny_detector)
    assert "d_model is 64 in the checkpoint but 32 in the detector" in str(error.value)
    assert "num_queries is 8" in str(error.value)
    with pytest.raises(CheckpointError, match="d_model is 64 in the checkpoint"):
        load_inverters(tmp_path / "other", detector=tiny_detector, warm_start=True)


def test_a_checkpoint_for_another_family_is_refused(tmp_path, tiny_detector):
    from inversion.core.families import family_for
    from inversion.testing import tiny_config

    config = tiny_config("table-transformer")  # DETR's sizes and layout: only the family tells them apart
    table = Detector(family_for(config).model_class(config), (64, 96), name="tiny-detr")
    save_inverters(InverterStack(InverterConfig.for_detector(table)), tmp_path / "table", table)
    assert read_config(tmp_path / "table")["detector"]["family"] == "Table Transformer"
    with pytest.raises(CheckpointError, match="trained for a Table Transformer, not a DETR"):
        load_inverters(tmp_path / "table", detector=tiny_detector)
    with pytest.raises(CheckpointError, match="trained for a Table Transformer, not a DETR"):
        load_inverters(tmp_path / "table", detector=tiny_detector, warm_start=True)


def test_a_checkpoint_for_another_detector_is_refused(tmp_path, tiny_detector, tiny_stack):
    save_inverters(tiny_stack, tmp_path / "ckpt", tiny_detector)
    stranger = Detector(tiny_detector.model, (64, 96), name="someone/else", revision="abc123")
    with pytest.raises(CheckpointError, match="trained for detector 'tiny-detr'.*not 'someone/else' at revision 'abc123'"):
        load_inverters(tmp_path / "ckpt", detector=stranger)
    warm, _ = load_inverters(tmp_path / "ckpt", detector=stranger, warm_start=True)  # a start for a fine-tune of it
    assert all(torch.equal(warm.state_dict()[name], weights) for name, weights in tiny_stack.state_dict().items())


def test_wrong_version_shapes_and_corruption_are_named(tmp_path, tiny_detector, tiny_stack):
    folder = save_inverters(tiny_stack, tmp_path / "ckpt", tiny_detector)
    config = json.loads((folder / "inverters.json").read_text())

    (folder / "inverters.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_inverters(folder)

    widened = {**config, "architecture": {**config["architecture"], "prediction_hidden": [64, 32]}}
    (folder / "inverters.json").write_text(json.dumps(widened))
    with pytest.raises(CheckpointError, match=r"prediction\.mlp\.0\.weight has shape"):
        load_inverters(folder)

    (folder / "inverters.json").write_text(json.dumps(config))
    (folder / "inverters.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_inverters(folder)

    (folder / "inverters.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_inverters(folder)


def test_a_folder_that_is_not_a_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="has no inverters.json"):
        load_inverters(tmp_path)
    with pytest.raises(CheckpointError, match="not a Hub repo id"):
        load_inverters(tmp_path / "missing" / "deeper")


def test_hub_path_loads_detector_and_inverters_offline(tmp_path, monkeypatch, tiny_detector, tiny_stack):
    cache = tmp_path / "hub"
    tiny_detector.model.save_pretrained(tmp_path / "detector")
    fake_hub_cache(cache, "lab/tiny-detr", "main", tmp_path / "detector")
    hub_detector = Detector(tiny_detector.model, (64, 96), name="lab/tiny-detr", revision="main")
    save_inverters(tiny_stack, tmp_path / "inverters", hub_detector)
    fake_hub_cache(cache, "lab/tiny-inverters", "v1", tmp_path / "inverters")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    detector = Detector.from_pretrained("lab/tiny-detr", "main", (64, 96))
    assert detector.name == "lab/tiny-detr"
    stack, _ = load_inverters("lab/tiny-inverters", detector=detector, revision="v1")
    reps = detector.capture([random_image(64, 96)])
    expected = reconstruct(tiny_stack.eval(), reps, [STAGE_SOURCES[0]])
    assert torch.equal(reconstruct(stack, reps, [STAGE_SOURCES[0]])[STAGE_SOURCES[0]][0], expected[STAGE_SOURCES[0]][0])

    with pytest.raises(WeightsNotFound, match="not in the local cache"):
        load_inverters("lab/never-published", revision="main")
