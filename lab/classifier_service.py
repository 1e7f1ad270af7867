"""What the tabs compute for an image classifier (ViT, DeiT, Swin), as plain functions returning data (no Gradio).

A classifier has classes where a detector has detections: each result carries the image as the classifier
sees it (resized to its input size) and its top classes with their probabilities. Reconstructions come from
the classifier's learned inverters (`inversion.core.classifier_inverters`), the embedding also by the exact
analytic inverse of the patch embedding; metrics are against the classifier's input. Problems the user can
fix raise `RequestError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from inversion.core.classifier_inverters import ANALYTIC_LABEL, AnalyticPatchInverse
from inversion.core.classifier_stages import CLASSIFIER_STAGE_SOURCES, ClassifierRepresentations, ClassifierSource, Prediction
from inversion.core.families.classifier_base import ClassifierChanges
from inversion.core.images import to_pil
from inversion.core.metrics import image_quality
from inversion.core.registry import ClassifierModel
from inversion.experiments.classifier_attention import attention_rollout, cls_map
from inversion.experiments.colour import perturb
from inversion.figures import heat_overlay
from lab import text
from lab.service import Panel, RequestError, check_perturbation


@dataclass
class Classified:
    """The classifier's view of an image (its input size) and its top classes, most probable first."""

    view: Image.Image
    classes: list[Prediction]
    present: list[str]  # the classes it gives the image (multi-label: above 0.5; else its most probable)


@dataclass
class ClassifierStageResult:
    input: Classified
    panels: list[Panel]
    note: str = ""  # what is missing (no inverters)


@dataclass
class ClassChange:
    """One class before and after a change of the image."""

    label: str
    before: float
    after: float
    status: str  # kept, lost, gained or absent (given to the image before / after)


@dataclass
class ClassifierPerturbationResult:
    original: Classified
    perturbed: Classified
    changes: list[ClassChange]
    original_panels: list[Panel]
    perturbed_panels: list[Panel]
    note: str = ""


@dataclass
class ClassifierSkipResult:
    """The image's classes with one block skipped (the identity in its place) against the unmodified run's."""

    before: Classified
    after: Classified
    changes: list[ClassChange]
    panels: list[Panel]  # reconstructions of the changed representation (none without inverters)
    note: str = ""


@dataclass
class ClassifierAttentionResult:
    input: Classified
    layer_maps: list[tuple[Image.Image, str]]  # the CLS token's attention in each block, captioned
    rollout: tuple[Image.Image, str]  # the attention rollout through every block


def attention_layers(model: ClassifierModel) -> tuple[int, int]:
    """The blocks whose attention the classifier records and their heads; (0, 0) when it records none (Swin)."""
    if not model.classifier.family.records_attention:
        return 0, 0
    level = model.classifier.family.levels(model.classifier.config)[0]
    return len(level.blocks), level.heads


def block_count(model: ClassifierModel) -> int:
    """The classifier's transformer blocks (Swin: every stage's, in order), as a block skip numbers them from 1."""
    return len(model.classifier.family.blocks(model.classifier.model))


def classify(model: ClassifierModel, image: Image.Image) -> Classified:
    """The classifier's view of `image` and its top classes (no inverters needed)."""
    return classified(model, model.classifier.capture([image]), 0)


def stage_reconstructions(model: ClassifierModel, image: Image.Image, all_layers: bool = False) -> ClassifierStageResult:
    """The image reconstructed from every stage (the embedding by the analytic inverse and the learned one), and
    with all_layers from every encoder entry too; no reconstruction (and a note) for a model without inverters."""
    reps = model.classifier.capture([image])
    if model.inverters is None:
        return ClassifierStageResult(classified(model, reps, 0), [], text.classifier_without_inverters(model.spec.label))
    return ClassifierStageResult(classified(model, reps, 0), reconstructions(model, reps, all_layers)[0])


def colour_perturbation(model: ClassifierModel, image: Image.Image, mask_kind: str, perturbation: str,
                        hue: int | None = None) -> ClassifierPerturbationResult:
    """Recolour the whole of the classifier's view (a classifier finds no objects to mask) and compare its
    classes and reconstructions before and after."""
    check_perturbation(mask_kind, perturbation, hue)
    if mask_kind != "image":
        raise RequestError(text.CLASSIFIER_WHOLE_IMAGE)
    pixels = model.classifier.preprocess([image])
    view = to_pil(pixels[0])
    recoloured = Image.fromarray(perturb(view, np.ones((view.height, view.width), dtype=bool), perturbation, hue))
    both = model.classifier.capture(torch.cat([pixels, model.classifier.preprocess([recoloured])]))
    original, perturbed = classified(model, both, 0), classified(model, both, 1)
    if model.inverters is None:
        panels, note = [[], []], text.classifier_without_inverters(model.spec.label)
    else:
        panels, note = reconstructions(model, both, False), ""
    return ClassifierPerturbationResult(original, perturbed, class_changes(model, both.logits, both.predictions),
                                        panels[0], panels[1], note)


def skip_block(model: ClassifierModel, image: Image.Image, block: int) -> ClassifierSkipResult:
    """The classifier run with block `block` (1..block_count) replaced by the identity: its classes against the
    unmodified run's, and the changed representation's reconstructions (against the image)."""
    if not 1 <= block <= block_count(model):
        raise RequestError(f"There is no block {block}: {model.spec.label} has blocks 1 to {block_count(model)}.")
    before = model.classifier.capture([image])
    with torch.no_grad():
        after = model.classifier.forward_stages(before.pixels, ClassifierChanges(skip_blocks=[block]))
    after.predictions = model.classifier.predictions(after.logits)
    logits, predictions = torch.cat([before.logits, after.logits]), [*before.predictions, *after.predictions]
    if model.inverters is None:
        panels, note = [], text.classifier_without_inverters(model.spec.label)
    else:
        panels, note = reconstructions(model, after, False)[0], ""
    return ClassifierSkipResult(classified(model, before, 0), classified(model, after, 0),
                                class_changes(model, logits, predictions), panels, note)


def attention_maps(model: ClassifierModel, image: Image.Image, head: int | None = None) -> ClassifierAttentionResult:
    """The CLS token's attention over the patches in every block (the mean of the heads unless `head`) and the
    attention rollout through all blocks (heads averaged, as rollout defines it), drawn over the image."""
    blocks, heads = attention_layers(model)
    if not blocks:
        raise RequestError(text.classifier_no_attention(model.spec.label))
    if head is not None and not 0 <= head < heads:
        raise RequestError(f"There is no head {head}: {model.spec.label} has heads 0 to {heads - 1}.")
    reps = model.classifier.capture([image], attention=True)
    family, config = model.classifier.family, model.classifier.config
    special, grid = family.special_tokens(config), family.grid(config)
    weights = [reps.attention[block] for block in sorted(reps.attention)]
    view = reps.pixels[0]
    heads_text = "mean of the heads" if head is None else f"head {head}"
    layer_maps = [(heat_overlay(view, cls_map(block_weights, special, grid, head)[0]),
                   f"block {block}, {heads_text}: the CLS token's attention")
                  for block, block_weights in zip(sorted(reps.attention), weights, strict=True)]
    rollout = heat_overlay(view, cls_map(attention_rollout(weights), special, grid)[0])
    return ClassifierAttentionResult(classified(model, reps, 0), layer_maps, (rollout, text.ROLLOUT_CAPTION))


def reconstructions(model: ClassifierModel, reps: ClassifierRepresentations, all_layers: bool) -> list[list[Panel]]:
    """Each captured image's reconstructions as scored panels: the embedding by the analytic inverse, then every
    stage by the learned chain (with all_layers, every encoder entry between the first and the last too)."""
    entries = [ClassifierSource("encoder", entry) for entry in range(1, len(reps.encoder) - 1)] if all_layers else []
    sources = [CLASSIFIER_STAGE_SOURCES[0], *entries, *CLASSIFIER_STAGE_SOURCES[1:]]
    with torch.no_grad():
        images = {ANALYTIC_LABEL: model.inverters.invert(reps, ClassifierSource("embedding"), AnalyticPatchInverse(model.classifier)),
                  **{text.classifier_source_label(source): model.inverters.invert(reps, source) for source in sources}}
    return [[scored(label, batch[index], reps.pixels[index]) for label, batch in images.items()]
            for index in range(reps.batch_size)]


def scored(label: str, image: torch.Tensor, target: torch.Tensor) -> Panel:
    """A reconstruction (clamped to [0, 1]) as a panel scored against its target."""
    image = image.clamp(0, 1)
    quality = image_quality(image, target)
    return Panel(label, to_pil(image), quality["psnr"], quality["ssim"])


def classified(model: ClassifierModel, reps: ClassifierRepresentations, index: int) -> Classified:
    """Image `index`'s view, top classes and the classes given to it."""
    labels = model.classifier.config.id2label
    given = model.classifier.present(reps.logits[index : index + 1])[0].nonzero().flatten().tolist()
    return Classified(to_pil(reps.pixels[index]), reps.predictions[index], [labels.get(i, str(i)) for i in given])


def class_changes(model: ClassifierModel, logits: torch.Tensor, predictions: list[list[Prediction]]) -> list[ClassChange]:
    """The top classes of either run (2 x C logits and their top predictions), before (the first) and after (the
    second), in the first's order."""
    probabilities = model.classifier.class_probabilities(logits).cpu()
    present = model.classifier.present(logits).cpu()
    shown = list(dict.fromkeys(p.label_id for image in predictions for p in image))
    labels = model.classifier.config.id2label
    statuses = {(True, True): "kept", (True, False): "lost", (False, True): "gained", (False, False): "absent"}
    return [ClassChange(labels.get(label, str(label)), float(probabilities[0, label]), float(probabilities[1, label]),
                        statuses[bool(present[0, label]), bool(present[1, label])]) for label in shown]
