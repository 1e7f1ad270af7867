"""Paths resolve against the file that names them: the bundled models and any checkpoint load from any folder."""

import shutil
from pathlib import Path

import pytest

from inversion.core.checkpoints import CheckpointError, load_inverters, save_inverters
from inversion.core.detector import Detector
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.core.registry import CONFIG_VARIABLE, PROJECT_CONFIG, find_spec, load_model

PROJECT = PROJECT_CONFIG.parent


@pytest.mark.shapes
def test_the_bundled_model_loads_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    model = load_model("shapes")
    assert model.inverters is not None and model.detector.name == "checkpoints/shapes/detector"


@pytest.mark.shapes
def test_a_bundled_checkpoint_named_by_its_absolute_path_finds_its_detector_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = load_model(str(PROJECT / "checkpoints" / "shapes" / "inverters"))
    assert model.inverters is not None
    assert model.spec.detector_folder == PROJECT / "checkpoints" / "shapes" / "detector"


def test_a_checkpoint_records_its_detector_folder_relative_to_itself(tmp_path, monkeypatch, tiny_detector):
    work = tmp_path / "work"
    (work / "dets").mkdir(parents=True)
    tiny_detector.model.save_pretrained(work / "dets" / "x")
    monkeypatch.chdir(work)
    named = Detector(tiny_detector.model, tiny_detector.working_size, name="dets/x")  # as `--detector dets/x` names it
    stack, _ = load_inverters(save_inverters(_stack(tiny_detector), "runs/ckpt", named, detector_folder="dets/x"))
    _, config = load_inverters("runs/ckpt")
    assert config["detector"] == {"id": "dets/x", "revision": None, "family": "DETR", "folder": "../../dets/x"}
    moved = tmp_path / "moved"
    shutil.copytree(work, moved)  # both moved together, then loaded from a third folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    model = load_model(str(moved / "runs" / "ckpt"))
    assert model.spec.detector_folder == moved / "dets" / "x"
    assert model.detector.name == "dets/x" and model.inverters is not None


def test_a_named_space_config_that_is_missing_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_VARIABLE, str(tmp_path / "nowhere.yaml"))
    with pytest.raises(CheckpointError, match=rf"No space config at {tmp_path / 'nowhere.yaml'} \(named by \${CONFIG_VARIABLE}\)"):
        find_spec("shapes")


def test_without_a_local_config_the_projects_own_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    spec = find_spec("shapes")
    assert spec.root == PROJECT and Path(spec.detector_location()) == PROJECT / "checkpoints" / "shapes" / "detector"



def _stack(detector):
    return InverterStack(InverterConfig.for_detector(detector))
