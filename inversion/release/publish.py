"""Publish a trained inverter stack (a detector's or an image classifier's) to a Hugging Face Hub model repo, with a
generated model card (a classifier's: `classifier_card`).

    python -m inversion publish runs/detr-r50-inverters --repo-id lab/detr-r50-inverters --eval runs/eval
    python -m inversion publish runs/detr-r50-inverters --repo-id lab/detr-r50-inverters --dry-run out/folder

The repo holds inverters.json + inverters.safetensors (what `load_inverters` reads), README.md
(the model card: detector, training data, the exact training command, metrics, licence) and,
with --eval, the evaluation's results.json, report and plots. --dry-run writes the folder only.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ..core.checkpoints import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, checkpoint_folder, read_config
from ..core.errors import UserFacingError
from ..core.registry import CLASSIFIER
from ..core.stages import STAGES
from .card_parts import command_and_metrics
from .classifier_card import classifier_card

LICENSE = "apache-2.0"
EVAL_FILES = ("results.json", "report.md", "stages.png", "layer_swap.png", "color.png")


def training_command(train_config: dict) -> str:
    """The `python -m inversion train` command line that reproduces a run's TrainingConfig."""
    words = ["python", "-m", "inversion", "train"]
    for key, value in train_config.items():
        if key in ("resume", "overwrite") or value is None or value is False or value in ([], (), {}):
            continue
        flag = "--" + key.replace("_", "-")
        if key == "learning_rates":
            words += ["--lr", *(f"{stage}={rate}" for stage, rate in value.items())]
        elif key == "architecture":
            for name, setting in value.items():
                words += ["--" + name.replace("_", "-"), *map(str, setting if isinstance(setting, list) else [setting])]
        elif value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def metrics_table(results: dict) -> list[str]:
    """Markdown rows of the per-stage reconstruction metrics of a `python -m inversion evaluate` run."""
    rows = ["| stage | MSE | PSNR (dB) | SSIM | detector AP on reconstructions |", "|---|---|---|---|---|"]
    for stage in STAGES:
        quality = results["stages"]["quality"][stage]
        ap = results["stages"]["ap"][stage]["AP"]
        rows.append(f"| {stage} | {quality['mse']:.4f} | {quality['psnr']:.2f} | {quality['ssim']:.3f} | {ap:.3f} |")
    return rows


def card_header(network_id: str, tag: str) -> list[str]:
    """The card's metadata block: licence, library, tags, and the base model when it is a Hub repo."""
    return ["---", f"license: {LICENSE}", "library_name: pytorch", f"tags: [{tag}, feature-inversion, interpretability, "
            "safetensors]", f"base_model: {network_id}" if "/" in str(network_id) else "", "---", ""]


def licence_section(network: str) -> list[str]:
    return ["## Licence", "", f"{LICENSE}; the {network} keeps its own licence.", ""]


def model_card(config: dict, repo_id: str, results: dict | None) -> str:
    """The README.md of the published repo (a classifier's inverters get `classifier_card`)."""
    notes = config.get("notes", {})
    train_config = notes.get("train_config", {})
    command = training_command(train_config) if train_config else "(not recorded)"
    if config.get("kind") == CLASSIFIER:
        classifier = config["classifier"]
        return classifier_card(config, repo_id, results, card_header(classifier["id"], classifier["family"].lower()),
                               command, licence_section("classifier"))
    detector = config["detector"]
    architecture = config["architecture"]
    lines = [
        *card_header(detector["id"], "detr"),
        f"# {repo_id}",
        "",
        f"Inverse modules for the DETR `{detector['id']}` (revision `{detector['revision']}`), trained with the "
        f"{notes.get('objective', 'modular')} objective of Rathjens et al., *Inverting Visual Representations with "
        "Detection Transformers* (arXiv:2412.06534). They turn the detector's backbone, encoder, decoder and "
        "prediction representations back into images.",
        "",
        "## Use",
        "",
        "```python",
        "from inversion import Detector, load_inverters, reconstruct",
        f"detector = Detector.from_pretrained({detector['id']!r}, {detector['revision']!r}, {tuple(config['working_size'])})",
        f"inverters, _ = load_inverters({repo_id!r}, detector=detector)",
        "images = reconstruct(inverters, detector.capture([image]))  # from every stage",
        "```",
        "",
        "## Training",
        "",
        f"- working size {config['working_size'][0]}x{config['working_size'][1]} (aspect ratio kept, padded), "
        "ImageNet normalisation",
        f"- data: `{train_config.get('data', 'unknown')}`"
        + (f" (split `{train_config['split']}`)" if train_config.get("split") else ""),
        f"- steps: {notes.get('step', 'unknown')}, batch size {train_config.get('batch_size', 'unknown')}, "
        f"seed {train_config.get('seed', 'unknown')}",
        f"- architecture: d_model {architecture['d_model']}, {architecture['encoder_layers']} encoder and "
        f"{architecture['decoder_layers']} decoder layers, inverse backbone widths {architecture['backbone_widths']}",
        f"- inverse backbone loss: {backbone_loss_words(notes.get('backbone_loss'))}",
        "",
        *command_and_metrics(command, None if not results else [
            f"`python -m inversion evaluate` on `{results['data']}` ({results['images']} images); detector AP "
            f"on the clean images {results['detector']['AP']:.3f} (AP50 {results['detector']['AP50']:.3f}).", "",
            *metrics_table(results)]),
    ]
    return "\n".join([*lines, "", *licence_section("detector")])


def backbone_loss_words(loss: dict | None) -> str:
    """The inverse backbone's training loss as recorded in a checkpoint's notes, in words."""
    if loss is None:
        return "not recorded"
    terms = {"pixel_mse": "pixel MSE", "backbone_feature_relative_mse": "the relative feature-matching error through "
             "the detector's backbone", "backbone_feature_mse": "the feature-matching MSE through the detector's backbone",
             "patch_adversarial": "a patch critic's hinge loss"}
    return " + ".join(name if weight == 1 and key == "pixel_mse" else f"{weight:g} x {name}"
                      for key, name in terms.items() if (weight := loss.get(key)))


def build_repo_folder(checkpoint: str | Path, repo_id: str, folder: str | Path, eval_dir: str | Path | None) -> Path:
    """Write everything the Hub repo will hold into `folder`."""
    source = checkpoint_folder(checkpoint)
    config = read_config(source)
    if not (source / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{source} has no {WEIGHTS_FILE} to publish.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copy2(source / name, folder / name)
    results = None
    if eval_dir is not None:
        eval_dir = Path(eval_dir)
        if not (eval_dir / "results.json").is_file():
            raise CheckpointError(f"{eval_dir} has no results.json: run python -m inversion evaluate --out {eval_dir} first.")
        results = json.loads((eval_dir / "results.json").read_text())
        for name in EVAL_FILES:
            if (eval_dir / name).is_file():
                shutil.copy2(eval_dir / name, folder / name)
    (folder / "README.md").write_text(model_card(config, repo_id, results))
    return folder


class UploadError(UserFacingError):
    """An upload to the Hub that failed; the message says what to check."""


def publish(folder: Path, repo_id: str, private: bool = False) -> str:
    """Create the Hub repo if needed and upload the folder; return the commit URL."""
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                   commit_message="Upload inverter stack")
    except (HfHubHTTPError, OSError) as error:
        raise UploadError(f"The upload to {repo_id} failed ({error}); check your token (hf auth login) and "
                          "network, or use --dry-run.") from error
    return str(commit)
