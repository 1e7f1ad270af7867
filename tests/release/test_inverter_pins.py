"""`deploy --inverters MODEL=ORG/NAME@COMMIT`: the pin is checked against the model's pinned detector and written
into the space_config.yaml the Space gets (its comments kept), in the dry run and in the one upload commit."""

import json

import pytest
import yaml
from huggingface_hub import constants

from inversion.__main__ import main
from inversion.release import space
from support.detr_r50_cache import COMMIT as DETR_COMMIT
from support.hub_cache import fake_model_repo
from support.paths import REPO

INVERTERS = "myorg/detr-r50-inverters"
INVERTERS_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
PIN = f"detr-resnet-50={INVERTERS}@{INVERTERS_COMMIT}"


def inverter_config(revision: str = DETR_COMMIT, working_size=(480, 640)) -> bytes:
    """An inverters.json as `save_inverters` writes it for DETR-R50 (the fields deploy reads)."""
    return json.dumps({"format_version": 1, "architecture": {"d_model": 256},
                       "detector": {"id": "facebook/detr-resnet-50", "revision": revision, "family": "DETR"},
                       "working_size": list(working_size), "notes": {}}).encode()


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """An offline Hub cache (empty until a test lays an inverter repo in it)."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_the_dry_run_writes_the_pin_into_the_deployed_config(hub, capsys):
    fake_model_repo(hub, INVERTERS, INVERTERS_COMMIT, {"inverters.json": inverter_config(), "inverters.safetensors": b"x"})
    assert main(["deploy", "owner/space", "--root", str(REPO), "--dry-run", "--inverters", PIN]) == 0
    printed = capsys.readouterr().out
    assert (f"space_config.yaml as deployed: detr-resnet-50 serves the inverters {INVERTERS} at {INVERTERS_COMMIT} "
            "(checked: trained for its pinned detector commit)") in printed
    deployed = printed[printed.index("# The models the app"):]
    entry = yaml.safe_load(deployed)["models"]["detr-resnet-50"]
    assert (entry["inverters"], entry["inverters_revision"], entry["revision"]) == (INVERTERS, INVERTERS_COMMIT, DETR_COMMIT)
    original = (REPO / "space_config.yaml").read_text().splitlines()
    changed = [line for line in original if line not in deployed.splitlines()]
    assert changed == ["    inverters: null"]  # every other line (comments too) as it is
    assert yaml.safe_load(deployed)["models"]["shapes"] == yaml.safe_load("\n".join(original))["models"]["shapes"]


@pytest.mark.parametrize("config, message", [
    (inverter_config(revision="0" * 40), "were trained for the detector 'facebook/detr-resnet-50' at revision "
                                         f"'{'0' * 40}' (480x640), but space_config.yaml serves detr-resnet-50 as "
                                         f"'facebook/detr-resnet-50' at revision '{DETR_COMMIT}' (480x640)"),
    (inverter_config(working_size=(800, 1333)), "at revision '1d5f47bd3bdd2c4bbfa585418ffe6da5028b4c0b' (800x1333), but"),
], ids=["another detector commit", "another working size"])
def test_inverters_for_another_detector_are_refused(hub, capsys, config, message):
    fake_model_repo(hub, INVERTERS, INVERTERS_COMMIT, {"inverters.json": config, "inverters.safetensors": b"x"})
    assert main(["deploy", "owner/space", "--root", str(REPO), "--dry-run", "--inverters", PIN]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: The inverters myorg/detr-r50-inverters@89abcdef0123 were trained") and message in error
    assert error.count("\n") == 1


@pytest.mark.parametrize("pin, message", [
    ("detr-resnet-50=myorg/inverters", "write MODEL=ORG/NAME@COMMIT"),
    ("detr-resnet-50=inverters@" + INVERTERS_COMMIT, "write MODEL=ORG/NAME@COMMIT"),
    (f"detr-r101={INVERTERS}@{INVERTERS_COMMIT}", "space_config.yaml has no model 'detr-r101' (it offers shapes, shapes40"),
    (PIN, f"Cannot read the inverters {INVERTERS}@{INVERTERS_COMMIT}: Could not fetch"),
], ids=["no commit", "no org", "unknown model", "not in the cache offline"])
def test_a_bad_pin_gets_one_message(hub, capsys, pin, message):
    assert main(["deploy", "owner/space", "--root", str(REPO), "--dry-run", "--inverters", pin]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1, error


def test_the_upload_is_one_commit_carrying_the_pinned_config(hub, monkeypatch):
    fake_model_repo(hub, INVERTERS, INVERTERS_COMMIT, {"inverters.json": inverter_config(), "inverters.safetensors": b"x"})
    sent = {}

    class Api:
        def create_repo(self, *args, **kwargs):
            pass

        def create_commit(self, repo_id, operations, **kwargs):
            sent.update(repo_id=repo_id, files={op.path_in_repo: op for op in operations}, **kwargs)
            return "https://huggingface.co/spaces/owner/space/commit/1"

    monkeypatch.setattr(space, "HfApi", Api)
    assert space.deploy("owner/space", REPO, pins=[space.InverterPin.parse(PIN)]).endswith("/commit/1")
    assert sent["repo_type"] == "space" and set(sent["files"]) == {file.path for file in space.space_files(REPO)}
    config = yaml.safe_load(sent["files"]["space_config.yaml"].path_or_fileobj)["models"]["detr-resnet-50"]
    assert (config["inverters"], config["inverters_revision"]) == (INVERTERS, INVERTERS_COMMIT)
    assert sent["files"]["app.py"].path_or_fileobj == str(REPO / "app.py")
