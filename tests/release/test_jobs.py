"""`python -m inversion train-job`: a complete run_job spec for the installed huggingface_hub, its estimate, its bad
inputs refused before anything is submitted, and the job's own commands run here on the Shapes model."""

import inspect
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import JobHardware, Volume

from inversion.__main__ import main
from inversion.release import jobs
from inversion.shapes.world import export_coco
from inversion.testing import export_hub_parquet
from inversion.training import recipe
from support.paths import REPO

CODE = "myorg/detr-inversion-lab@0123456789abcdef0123456789abcdef01234567"
COMPLETE = ("image", "command", "env", "secrets", "flavor", "timeout", "volumes")


@pytest.mark.parametrize("flavor", ["a100-large", "h200x8"])
def test_the_spec_binds_to_the_installed_run_job_and_is_complete(flavor):
    spec = jobs.job_spec("detr-resnet-50", flavor, "myorg/detr-r50-inverters", CODE, token="hf_secret")
    inspect.signature(huggingface_hub.run_job).bind(**spec)  # every keyword is one run_job takes, none missing
    assert all(spec[name] for name in COMPLETE)
    assert spec["image"].startswith("pytorch/pytorch:2.11.0-cuda") and spec["secrets"] == {"HF_TOKEN": "hf_secret"}
    assert spec["flavor"] in {hardware.value for hardware in JobHardware}
    gpus = jobs.FLAVORS[flavor].gpus
    cost = jobs.estimate(flavor, recipe.steps(gpus))
    assert spec["timeout"] == cost.timeout_seconds >= cost.hours * 3600 * jobs.TIMEOUT_MARGIN
    mounts = {volume.mount_path: volume for volume in spec["volumes"]}
    assert all(isinstance(volume, Volume) and volume.read_only for volume in mounts.values())
    assert (mounts["/project"].type, mounts["/project"].source, mounts["/project"].revision) == (
        "space", "myorg/detr-inversion-lab", CODE.split("@")[1])
    assert (mounts["/data"].type, mounts["/data"].source) == ("dataset", "detection-datasets/coco")
    script = spec["command"][-1]
    assert spec["command"][:2] == ["bash", "-c"] and "pip install --no-cache-dir --quiet -r /project/requirements.txt" in script
    launch = "accelerate launch --multi_gpu --num_processes 8" if gpus == 8 else "accelerate launch --num_processes 1"
    assert f"{launch} -m inversion train --model detr-resnet-50 --data /data --split train --val-data /data --val-split val" in script
    assert shlex.join(recipe.train_arguments(recipe.steps(gpus))) in script
    assert "evaluate --model runs/inverters --data /data --split val --max-images 500" in script
    assert script.endswith(shlex.join(["hf", "upload", "myorg/detr-r50-inverters", "runs/repo", ".", "--repo-type", "model",
                                       "--commit-message", "Inverters for facebook/detr-resnet-50 trained by a Hugging Face Job"]))


def test_every_priced_flavor_is_a_jobs_flavor_and_more_gpus_cost_less_time():
    assert set(jobs.FLAVORS) <= {hardware.value for hardware in JobHardware}
    one, eight = jobs.estimate("h200", recipe.steps(1)), jobs.estimate("h200x8", recipe.steps(8))
    assert one.images == eight.images == recipe.TRAINING_IMAGES
    assert eight.hours < one.hours and "ESTIMATE" in one.summary() and "not measured" in one.summary()


def test_the_dry_run_prints_the_spec_and_the_estimate_and_submits_nothing(capsys, monkeypatch):
    monkeypatch.setattr(jobs, "run_job", lambda **_: pytest.fail("a dry run submitted a job"))
    assert main(["train-job", "--flavor", "a100-large", "--push-to", "myorg/detr-r50-inverters", "--code", CODE,
                 "--dry-run"]) == 0
    printed = capsys.readouterr().out
    shown = json.loads(printed[: printed.index("\nscript: ")])
    assert shown["flavor"] == "a100-large" and shown["volumes"][1]["mountPath"] == "/data"
    assert "ESTIMATE (from FLOPs and the a100-large price, not measured): 200,000 steps" in printed
    assert printed.rstrip().endswith("dry run: nothing submitted")


@pytest.mark.parametrize("arguments, message", [
    (["--flavor", "a100-huge"], "--flavor 'a100-huge' is not a GPU flavor with bf16 priced here: choose one of a10g-small"),
    (["--flavor", "t4-small"], "--flavor 't4-small' is not a GPU flavor"),
    (["--push-to", "inverters"], "--push-to 'inverters' is not a Hub repo id: write ORG/NAME"),
    (["--push-to", "my org/inverters"], "--push-to 'my org/inverters' is not a Hub repo id"),
    (["--code", "myorg/space"], "--code 'myorg/space': write OWNER/SPACE@COMMIT with the 40-hex commit"),
    (["--model", "nonesuch"], "'nonesuch' is neither a model in the space config"),
    ([], "No Hugging Face token: run `hf auth login`"),
], ids=["unknown flavor", "flavor without bf16", "push-to without org", "push-to with a space", "code without commit",
        "unknown model", "no token"])
def test_bad_input_gets_one_message_before_anything_is_submitted(capsys, monkeypatch, arguments, message):
    monkeypatch.setattr(jobs, "run_job", lambda **_: pytest.fail("submitted despite bad input"))
    monkeypatch.setattr(jobs, "get_token", lambda: None if message.startswith("No Hugging Face token") else "hf_x")
    given = {"--flavor": "a100-large", "--push-to": "myorg/inverters", "--code": CODE}
    given.update(zip(arguments[::2], arguments[1::2]))
    assert main(["train-job", *[word for pair in given.items() for word in pair]]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1, error


def test_a_submitted_job_is_followed_to_the_end_of_its_logs(capsys, monkeypatch):
    submitted = {}

    class Job:
        id, url = "job-1", "https://huggingface.co/jobs/myorg/job-1"

    def fake_run_job(**spec):
        inspect.signature(huggingface_hub.run_job).bind(**spec)
        submitted.update(spec)
        return Job()

    monkeypatch.setattr(jobs, "get_token", lambda: "hf_x")
    monkeypatch.setattr(jobs, "run_job", fake_run_job)
    monkeypatch.setattr(jobs, "fetch_job_logs", lambda job_id, namespace, follow: iter([f"{job_id} step 1", "uploaded"]))
    assert main(["train-job", "--flavor", "h200", "--push-to", "myorg/inverters", "--code", CODE, "--steps", "10"]) == 0
    printed = capsys.readouterr().out
    assert submitted["secrets"] == {"HF_TOKEN": "hf_x"} and "--steps 10 " in submitted["command"][-1]
    assert "job-1 step 1\nuploaded\njob finished: https://huggingface.co/jobs/myorg/job-1" in printed


def job_commands(spec: dict) -> list[list[str]]:
    """The commands of a spec's script, in order."""
    script = spec["command"][-1].split("; ", 1)[1]
    return [shlex.split(command) for command in script.split(" && ")]


@pytest.mark.slow
@pytest.mark.shapes
def test_the_jobs_commands_train_evaluate_and_leave_the_folder_to_upload(tmp_path):
    """The job's commands exactly as its spec holds them, on the Shapes model and a parquet dataset at the job's
    /data (here a local folder in its place); all but the install and the upload, which need the network."""
    data = tmp_path / "data"
    export_coco(tmp_path / "train", 40, seed=10)
    export_coco(tmp_path / "val", 8, seed=11)
    export_hub_parquet(tmp_path / "train", data, "train")
    export_hub_parquet(tmp_path / "val", data, "val")
    spec = jobs.job_spec("shapes", "a10g-small", "myorg/shapes-inverters", CODE, steps=2)
    commands = job_commands(spec)
    assert [command[0] for command in commands] == ["mkdir", "cd", "pip", "accelerate", "python", "python", "hf"]
    work = tmp_path / "job"
    work.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands[3:6]:
        command = [str(data) if word == jobs.DATA_MOUNT else word for word in command]  # the volume's mount point
        done = subprocess.run(command, cwd=work, env=environment, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (command, done.stderr[-3000:])
    lines = [json.loads(line) for line in (work / "runs/inverters/metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line["split"] == "train"] == [2]
    assert [line["images"] for line in lines if line["split"] == "val"] == [8]
    results = json.loads((work / "runs/evaluation/results.json").read_text())
    assert results["images"] == 8
    folder = work / "runs/repo"
    assert {path.name for path in folder.iterdir()} == {"inverters.json", "inverters.safetensors", "README.md",
                                                        "results.json", "report.md", "stages.png", "layer_swap.png",
                                                        "color.png"}
    card = (folder / "README.md").read_text()
    assert "# myorg/shapes-inverters" in card and "--steps 2" in card and "--split train" in card
