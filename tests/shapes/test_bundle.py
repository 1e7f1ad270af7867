"""A training run made a bundled model's inverters (into a copy's place: the test never writes tracked files)."""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from inversion.core.checkpoints import read_config, recorded_detector_folder
from inversion.core.errors import CheckpointError, UserFacingError
from inversion.core.registry import find_spec
from inversion.shapes.bundle import bundle, bundled_folder
from inversion.shapes.world import export_coco
from inversion.training.trainer import TrainingConfig, train

MODEL = "shapes-conditional"


@pytest.mark.shapes
def test_a_run_bundled_as_a_models_inverters_finds_its_detector_and_says_where_it_started(tmp_path):
    data = tmp_path / "data"
    export_coco(data, 8, 10)
    run = tmp_path / "run"
    train(TrainingConfig(data=str(data), val_data=str(data), out=str(run), model=MODEL, init=str(bundled_folder(MODEL)),
                         stages=("backbone",), steps=2, batch_size=4, warmup_steps=1, val_every=2, save_every=2,
                         val_images=4, workers=0))
    into = bundle(MODEL, run, tmp_path / "bundled", {"why": "a test"})

    ran, bundled = (load_file(folder / "inverters.safetensors") for folder in (run, into))
    assert ran.keys() == bundled.keys() and all(torch.equal(ran[name], bundled[name]) for name in ran)
    config = read_config(into)
    assert recorded_detector_folder(config, into) == Path(find_spec(MODEL).detector_location()).resolve()
    assert config["notes"]["step"] == 2 and config["notes"]["why"] == "a test"
    assert config["notes"]["init_notes"] == read_config(bundled_folder(MODEL))["notes"]
    assert (into / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    assert (into / "train_config.json").read_text() == (run / "train_config.json").read_text()

    with pytest.raises(CheckpointError, match="stride"):  # another model's detector: its inverters do not fit
        bundle("shapes-deformable", run, tmp_path / "elsewhere")
    weights_only = tmp_path / "weights-only"
    weights_only.mkdir()
    for name in ("inverters.json", "inverters.safetensors"):
        shutil.copyfile(run / name, weights_only / name)
    with pytest.raises(UserFacingError, match="has no metrics.jsonl or train_config.json: bundle the --out folder"):
        bundle(MODEL, weights_only, tmp_path / "elsewhere")
