"""Train, evaluate and publish inverters as one Hugging Face Job: `python -m inversion train-job`.

    python -m inversion train-job --model detr-resnet-50 --flavor a100-large --push-to ORG/NAME \\
        --code OWNER/SPACE@COMMIT --dry-run

The job (`job_spec`, the keyword arguments of huggingface_hub's `run_job`) runs a pinned CUDA PyTorch
image with two read-only volumes: the deployed Space repo at the commit given (the project, installed
from its requirements.txt) at /project, and the dataset (detection-datasets/coco's parquet files) at
/data; HF_TOKEN is a secret. Its command (`job_steps`) trains with `accelerate launch` across the
flavor's GPUs with the GPU recipe (inversion.training.recipe), evaluates on the first 500 val
images, writes the repo folder with `publish --dry-run` and uploads that folder.

The hours and dollars printed are an estimate (`estimate`): FLOPs per image over a sustained share
of the flavor's peak bf16 rate (or the data loader's rate where that is lower), plus setup and the
evaluation, times the price in `FLAVORS`; the timeout is that estimate with a margin. Nothing here
was measured on a GPU.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass

from huggingface_hub import Volume, fetch_job_logs, get_token, run_job
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..core.errors import UserFacingError
from ..core.registry import find_spec
from ..training import recipe
from ..training.hub_datasets import HUB_DATASET, TRAIN_SPLIT, VAL_SPLIT

IMAGE = "pytorch/pytorch:2.11.0-cuda12.8-cudnn9-runtime"  # torch 2.11.0 as requirements.txt pins it, CUDA 12.8
PROJECT_MOUNT, DATA_MOUNT = "/project", "/data"
COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Flavor:
    """A Jobs hardware flavor: its GPUs, vCPUs and hourly price, and one GPU's peak dense bf16 TFLOP/s."""

    gpus: int
    gpu: str
    vcpus: int
    dollars_per_hour: float
    peak_tflops: float


# Prices and vCPUs: huggingface/hub-docs, docs/hub/jobs-pricing.md (commit 0b8c07f8, read 2026-12-03); the live
# list is `hf jobs hardware`. Peak dense bf16 TFLOP/s per GPU: NVIDIA's data sheets (A100 312, H200 989, L40S 362,
# L4 121); NVIDIA publishes none for the A10G: 70 is taken, a little over half the A10's 125. T4 (no bf16) and
# CPU flavors are left out.
FLAVORS = {
    "a10g-small": Flavor(1, "A10G", 4, 1.00, 70), "a10g-large": Flavor(1, "A10G", 12, 1.50, 70),
    "a10g-largex2": Flavor(2, "A10G", 24, 3.00, 70), "a10g-largex4": Flavor(4, "A10G", 48, 5.00, 70),
    "l4x1": Flavor(1, "L4", 8, 0.80, 121), "l4x4": Flavor(4, "L4", 48, 3.80, 121),
    "l40sx1": Flavor(1, "L40S", 8, 1.80, 362), "l40sx4": Flavor(4, "L40S", 48, 8.30, 362),
    "l40sx8": Flavor(8, "L40S", 192, 23.50, 362),
    "a100-large": Flavor(1, "A100 80 GB", 12, 2.50, 312), "a100x4": Flavor(4, "A100 80 GB", 48, 10.00, 312),
    "a100x8": Flavor(8, "A100 80 GB", 96, 20.00, 312),
    "h200": Flavor(1, "H200", 23, 5.00, 989), "h200x2": Flavor(2, "H200", 46, 10.00, 989),
    "h200x4": Flavor(4, "H200", 92, 20.00, 989), "h200x8": Flavor(8, "H200", 184, 40.00, 989),
}

# The cost model's assumptions (estimates, none measured: these machines have no GPU).
EVALUATION_GFLOPS_PER_IMAGE = 100 * 57  # about 100 detector passes' worth per evaluated image (stages, layer swap, colour)
SUSTAINED_SHARE = 0.3  # of the peak bf16 rate, for a convolution-heavy mixed-precision step (100 of an A100's 312)
IMAGES_PER_VCPU_SECOND = 100  # JPEG decoding and fitting to 480 x 640 by one data-loader core
SETUP_HOURS = 0.5  # image pull, pip install, the detector's download, the parquet files read into Arrow
TIMEOUT_MARGIN = 1.5  # the job is stopped at this multiple of the estimate


@dataclass(frozen=True)
class Estimate:
    """The estimated hours and dollars of a job (from FLOPs and the price table, not measured)."""

    flavor: str
    steps: int
    images: int
    hours: float
    dollars: float
    timeout_seconds: int
    bound: str  # what limits the training rate: "GPU" or "data loading"

    def summary(self) -> str:
        return (f"ESTIMATE (from FLOPs and the {self.flavor} price, not measured): {self.steps:,} steps, "
                f"{self.images:,} training images, about {self.hours:.1f} h and ${self.dollars:,.0f} "
                f"({self.bound}-bound; timeout {self.timeout_seconds / 3600:.1f} h)")


def flavor_named(name: str) -> Flavor:
    """The flavor called `name`, or one message listing those priced here."""
    if name not in FLAVORS:
        raise UserFacingError(f"--flavor {name!r} is not a GPU flavor with bf16 priced here: choose one of "
                              f"{', '.join(FLAVORS)} (prices: `hf jobs hardware`).")
    return FLAVORS[name]


def estimate(flavor_name: str, steps: int, evaluation_images: int = recipe.VAL_IMAGES) -> Estimate:
    """Hours and dollars of training `steps` steps (batch recipe.BATCH_PER_GPU per GPU) and evaluating on a flavor."""
    flavor = flavor_named(flavor_name)
    images = steps * recipe.BATCH_PER_GPU * flavor.gpus
    gpu_rate = flavor.gpus * flavor.peak_tflops * 1e12 * SUSTAINED_SHARE / (recipe.TRAINING_GFLOPS_PER_IMAGE * 1e9)
    data_rate = flavor.vcpus * IMAGES_PER_VCPU_SECOND
    rate, bound = (gpu_rate, "GPU") if gpu_rate <= data_rate else (data_rate, "data loading")
    evaluation_hours = evaluation_images * EVALUATION_GFLOPS_PER_IMAGE * 1e9 / (
        flavor.peak_tflops * 1e12 * SUSTAINED_SHARE) / 3600  # on one GPU
    hours = SETUP_HOURS + images / rate / 3600 + evaluation_hours
    return Estimate(flavor_name, steps, images, hours, hours * flavor.dollars_per_hour,
                    math.ceil(hours * TIMEOUT_MARGIN * 3600), bound)


def repo_id(name: str, flag: str) -> str:
    """`name` if it is ORG/NAME, else one message naming the flag."""
    try:
        if name.count("/") != 1:
            raise HFValidationError("not ORG/NAME")
        validate_repo_id(name)
    except HFValidationError:
        raise UserFacingError(f"{flag} {name!r} is not a Hub repo id: write ORG/NAME (letters, digits, '-', '_', '.').") from None
    return name


def code_source(text: str) -> tuple[str, str]:
    """(Space id, commit) of `--code OWNER/SPACE@COMMIT`, or one message."""
    space, _, commit = text.partition("@")
    if not COMMIT.fullmatch(commit):
        raise UserFacingError(f"--code {text!r}: write OWNER/SPACE@COMMIT with the 40-hex commit of the deployed Space "
                              "(`python -m inversion deploy` prints it) whose code the job runs.")
    return repo_id(space, "--code"), commit


def job_steps(model: str, push_to: str, gpus: int, steps: int, data: str = DATA_MOUNT) -> list[list[str]]:
    """The job's commands after installation, in order: train across `gpus` GPUs, evaluate, write the repo
    folder (`publish --dry-run`) and upload it; `data` is where the dataset's parquet files are."""
    spec = find_spec(model)
    widths = recipe.BACKBONE_WIDTHS if (spec.detector, spec.revision) == (recipe.DETECTOR, recipe.REVISION) else None
    launch = ["accelerate", "launch", *(["--multi_gpu"] if gpus > 1 else []), "--num_processes", str(gpus)]
    return [
        [*launch, "-m", "inversion", "train", "--model", model, "--data", data, "--split", TRAIN_SPLIT,
         "--val-data", data, "--val-split", VAL_SPLIT, *recipe.train_arguments(steps, widths), "--out", "runs/inverters"],
        ["python", "-m", "inversion", "evaluate", "--model", "runs/inverters", "--data", data, "--split", VAL_SPLIT,
         "--max-images", str(recipe.VAL_IMAGES), "--out", "runs/evaluation"],
        ["python", "-m", "inversion", "publish", "runs/inverters", "--repo-id", push_to, "--eval", "runs/evaluation",
         "--dry-run", "runs/repo"],
        ["hf", "upload", push_to, "runs/repo", ".", "--repo-type", "model", "--commit-message",
         f"Inverters for {spec.detector} trained by a Hugging Face Job"],
    ]


INSTALL = ["pip", "install", "--no-cache-dir", "--quiet", "-r", f"{PROJECT_MOUNT}/requirements.txt"]


def training_steps(flavor_name: str, steps: int | None = None) -> int:
    """The job's training steps: `steps`, else the GPU recipe's for the flavor's GPUs."""
    return steps or recipe.steps(flavor_named(flavor_name).gpus)


def job_spec(model: str, flavor_name: str, push_to: str, code: str, steps: int | None = None,
             dataset: str = HUB_DATASET, token: str | None = None) -> dict:
    """The keyword arguments of `huggingface_hub.run_job` for the whole job (see the module docstring)."""
    flavor = flavor_named(flavor_name)
    space, commit = code_source(code)
    repo_id(push_to, "--push-to")
    find_spec(model)
    total = training_steps(flavor_name, steps)
    script = " && ".join(shlex.join(words) for words in [INSTALL, *job_steps(model, push_to, flavor.gpus, total)])
    return {
        "image": IMAGE,
        "command": ["bash", "-c", f"set -eu; mkdir -p /tmp/job && cd /tmp/job && {script}"],
        "env": {"PYTHONPATH": PROJECT_MOUNT},  # the project runs from the mounted Space repo
        "secrets": {"HF_TOKEN": token},
        "flavor": flavor_name,
        "timeout": estimate(flavor_name, total).timeout_seconds,
        "volumes": [Volume(type="space", source=space, mount_path=PROJECT_MOUNT, revision=commit, read_only=True),
                    Volume(type="dataset", source=dataset, mount_path=DATA_MOUNT, read_only=True)],
        "labels": {"project": "detr-inversion-lab", "model": model},
    }


def shown_spec(spec: dict) -> dict:
    """The spec as printed: the token hidden, the volumes as the Hub API receives them."""
    return {**spec, "secrets": {name: "<hidden>" if value else None for name, value in spec["secrets"].items()},
            "volumes": [volume.to_dict() for volume in spec["volumes"]]}


def job_token() -> str:
    """The Hugging Face token the job is submitted with and gets as HF_TOKEN, or one message."""
    token = get_token()
    if not token:
        raise UserFacingError("No Hugging Face token: run `hf auth login` (or set HF_TOKEN) with a token that may run "
                              "Jobs and write to --push-to, then try again.")
    return token


def submit(spec: dict, namespace: str | None = None, out=print) -> str:
    """Submit the job and follow its logs to the end; return its URL."""
    try:
        job = run_job(**spec, namespace=namespace)
        out(f"submitted job {job.id}: {job.url}")
        for line in fetch_job_logs(job_id=job.id, namespace=namespace, follow=True):
            out(line)
    except (HfHubHTTPError, OSError) as error:
        raise UserFacingError(f"The Hub refused or lost the job ({error}); check the token's permissions, your credit "
                              "balance and `hf jobs ps`.") from error
    return job.url
