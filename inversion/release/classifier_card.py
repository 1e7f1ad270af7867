"""The model card of a classifier's published inverters (ViT, DeiT, Swin): what `publish` writes as README.md
when the checkpoint is of the classifier kind (`inverters.json` with `"kind": "classifier"`)."""

from __future__ import annotations

from ..core.classifier_stages import CLASSIFIER_STAGES
from .card_parts import command_and_metrics


def classifier_metrics_table(results: dict) -> list[str]:
    """Markdown rows of the per-stage metrics of a classifier's `python -m inversion evaluate` run."""
    rows = ["| stage | MSE | PSNR (dB) | SSIM | agreement of the classes |", "|---|---|---|---|---|"]
    for stage in CLASSIFIER_STAGES:
        quality = results["stages"]["quality"][stage]
        rows.append(f"| {stage} | {quality['mse']:.4f} | {quality['psnr']:.2f} | {quality['ssim']:.3f} | "
                    f"{quality['agreement']:.2f} |")
    return rows


def classifier_card(config: dict, repo_id: str, results: dict | None, header: list[str], command: str,
                    licence: list[str]) -> str:
    """The README.md of a classifier's published inverters; `header` is the card's metadata block, `command` the
    training command line, `licence` the closing section (the detectors' card shares them)."""
    classifier = config["classifier"]
    notes = config.get("notes", {})
    train_config = notes.get("train_config", {})
    architecture = config["architecture"]
    height, width = config["input_size"]
    lines = [
        *header,
        f"# {repo_id}",
        "",
        f"Inverse modules for the image classifier `{classifier['id']}` (revision `{classifier['revision']}`, a "
        f"{classifier['family']}), trained with the {notes.get('objective', 'modular')} objective of Rathjens et al., "
        "*Inverting Visual Representations with Detection Transformers* (arXiv:2412.06534). They turn the classifier's "
        "embedding, encoder, pooled and logits representations back into images.",
        "",
        "## Use",
        "",
        "```python",
        "from inversion.core.classifier import Classifier",
        "from inversion.core.classifier_checkpoints import load_classifier_inverters",
        "from inversion.core.classifier_stages import ClassifierSource",
        f"classifier = Classifier.from_pretrained({classifier['id']!r}, {classifier['revision']!r})",
        f"inverters, _ = load_classifier_inverters({repo_id!r}, classifier)",
        "images = inverters.invert(classifier.capture([image]), ClassifierSource('encoder'))  # or any stage",
        "```",
        "",
        "## Training",
        "",
        f"- input {height}x{width} (images resized, as the classifier's image processor does), normalisation "
        f"mean {config['normalisation']['mean']}, std {config['normalisation']['std']}",
        f"- data: `{train_config.get('data', 'unknown')}`"
        + (f" (split `{train_config['split']}`)" if train_config.get("split") else ""),
        f"- steps: {notes.get('step', 'unknown')}, batch size {train_config.get('batch_size', 'unknown')}, "
        f"seed {train_config.get('seed', 'unknown')}",
        f"- architecture: {architecture['architecture']} inverse levels ({len(architecture['levels'])}), "
        f"{architecture['pooled_layers']} inverse pooling blocks, head MLP {architecture['head_hidden']}",
        "",
        *command_and_metrics(command, None if not results else [
            f"`python -m inversion evaluate` on `{results['data']}` ({results['images']} images): reconstructions "
            "from each stage against the input; agreement, the share of images to whose reconstruction the "
            "classifier gives the same classes as to the original.", "", *classifier_metrics_table(results)]),
    ]
    return "\n".join([*lines, "", *licence])
