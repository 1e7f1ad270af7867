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
from PIL import Image, ImageDraw

from inversion.core.classifier_inverters import ANALYTIC_LABEL, AnalyticPatchInverse
from inversion.core.classifier_stages import CLASSIFIER_STAGE_SOURCES, ClassifierRepresentations, ClassifierSource, Prediction
from inversion.core.families.classifier_base import ClassifierChanges
from inversion.core.images import to_pil
from inversion.core.metrics import image_quality
from inversion.core.registry import ClassifierModel
from inversion.experiments.classifier_attention import attention_rollout, cls_map, point_map, received_map
from inversion.experiments.colour import perturb
from inversion.experiments.similarity import layer_similarity
from inversion.figures import heat_overlay, layer_similarity_map
from lab import text
from lab.service import ENTRIES, Panel, RequestError, check_perturbation


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
    layer_maps: list[tuple[Image.Image, str]]  # per block: the CLS token's attention, or what each patch receives
    map: tuple[Image.Image, str]  # the attention rollout (a CLS token), or the attention from a point in one block
    block: int | None = None  # the point map's block and point ((x, y), view pixels): without a CLS token only
    point: tuple[int, int] | None = None


@dataclass
class ClassifierLayerSwapResult:
    input: Classified
    panels: list[Panel]  # the chosen entries through the chosen inverse (none without inverters)
    similarity: np.ndarray  # linear CKA between every entry and the final norm's tokens
    heat_map: Image.Image
    note: str = ""  # entries that do not fit the chosen inverse; no inverters


def has_cls_token(model: ClassifierModel) -> bool:
    """Whether the classifier's tokens begin with a CLS token (ViT, DeiT), which its head reads."""
    return model.classifier.family.special_tokens(model.classifier.config) > 0


def attention_layers(model: ClassifierModel) -> tuple[int, int]:
    """The blocks whose attention the classifier records (all) and the heads every block has."""
    levels = model.classifier.family.levels(model.classifier.config)
    return block_count(model), min(level.heads for level in levels)


def block_grids(model: ClassifierModel) -> list[tuple[int, int]]:
    """Each block's patch grid, in block order."""
    return [level.grid for level in model.classifier.family.levels(model.classifier.config) for _ in level.blocks]


def swap_layers(model: ClassifierModel) -> list[tuple[str, str]]:
    """Every encoder entry a layer swap can start from, (label, value): the embedding ('block 0', the first
    block's input, as a detector's 'encoder 0'), each block ('block 1'.., over all stages), each merging."""
    layers, blocks, mergings = [(text.EMBEDDING_LAYER, "block 0")], 0, 0
    for level in model.classifier.family.levels(model.classifier.config):
        for _ in level.blocks:
            blocks += 1
            layers.append((f"block {blocks}", f"block {blocks}"))
        if level.merged:
            mergings += 1
            layers.append((f"merging {mergings}", f"merging {mergings}"))
    return layers


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


def layer_swap(model: ClassifierModel, image: Image.Image, layers: list[str], entry: str = "backbone") -> ClassifierLayerSwapResult:
    """Feed chosen encoder entries (values of `swap_layers`) to the inverse of another: "backbone", the inverse
    patch embedding alone (as if they were the embedding); "encoder", the whole inverse encoder (as if they were
    its output). An entry whose tokens do not fit that inverse is left out (the note names it). Plus the linear
    CKA between all layers for this image."""
    names = {value: label for label, value in swap_layers(model)}  # in entry order
    entries = {value: index for index, value in enumerate(names)}
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise RequestError(text.unknown_swap_layer(unknown[0], names))
    if not layers:
        raise RequestError(text.CLASSIFIER_NO_SWAP_LAYER)
    if entry not in ENTRIES:
        raise RequestError(f"Blocks can enter the inverse patch embedding or the inverse encoder, not {entry!r}.")
    reps = model.classifier.capture([image])
    target = 0 if entry == "backbone" else len(reps.encoder) - 1
    fits = [name for name in layers if reps.encoder[entries[name]].shape == reps.encoder[target].shape]
    similarity = layer_similarity(reps).numpy()
    heat = layer_similarity_map(similarity, [*names.values(), text.POOLED_LAYER], text.CLASSIFIER_SIMILARITY)
    if model.inverters is None:
        return ClassifierLayerSwapResult(classified(model, reps, 0), [], similarity, heat,
                                         text.classifier_without_inverters(model.spec.label))
    with torch.no_grad():
        panels = [scored(text.swap_label(names[name], entry),
                         model.inverters.invert(reps, ClassifierSource("encoder", entries[name], enters=target))[0],
                         reps.pixels[0]) for name in fits]
    left_out = [names[name] for name in layers if name not in fits]
    note = text.swap_left_out(left_out, entry) if left_out else ""
    return ClassifierLayerSwapResult(classified(model, reps, 0), panels, similarity, heat, note)


def attention_maps(model: ClassifierModel, image: Image.Image, head: int | None = None, block: int | None = None,
                   point: tuple[int, int] | None = None) -> ClassifierAttentionResult:
    """Where the classifier looks, drawn over its view. With a CLS token: its attention over the patches in every
    block (the mean of the heads unless `head`) and the attention rollout through all blocks (heads averaged, as
    rollout defines it). Without one (a windowed model): the attention each patch receives in every block, and
    the attention from `point` ((x, y) in view pixels; default the centre) in `block` (default the last)."""
    blocks, heads = attention_layers(model)
    if head is not None and not 0 <= head < heads:
        raise RequestError(f"There is no head {head}: {model.spec.label} has heads 0 to {heads - 1}.")
    block = blocks if block is None else block
    if not 1 <= block <= blocks:
        raise RequestError(f"There is no block {block}: {model.spec.label} has blocks 1 to {blocks}.")
    reps = model.classifier.capture([image], attention=True)
    weights = [reps.attention[number] for number in range(1, blocks + 1)]
    view, heads_text = reps.pixels[0], text.heads_caption(head)
    if not has_cls_token(model):
        return _windowed_maps(model, reps, weights, head, block, point)
    special, grid = model.classifier.family.special_tokens(model.classifier.config), model.classifier.family.grid(model.classifier.config)
    layer_maps = [(heat_overlay(view, cls_map(block_weights, special, grid, head)[0]), text.cls_caption(number, heads_text))
                  for number, block_weights in enumerate(weights, start=1)]
    rollout = heat_overlay(view, cls_map(attention_rollout(weights), special, grid)[0])
    return ClassifierAttentionResult(classified(model, reps, 0), layer_maps, (rollout, text.ROLLOUT_CAPTION))


def _windowed_maps(model: ClassifierModel, reps: ClassifierRepresentations, weights: list[torch.Tensor], head: int | None,
                   block: int, point: tuple[int, int] | None) -> ClassifierAttentionResult:
    """A model without a CLS token: each block's received attention, and one block's attention from a point."""
    view, grids, heads_text = reps.pixels[0], block_grids(model), text.heads_caption(head)
    layer_maps = [(heat_overlay(view, received_map(block_weights, grid, head)[0]), text.received_caption(number, heads_text))
                  for number, (block_weights, grid) in enumerate(zip(weights, grids, strict=True), start=1)]
    height, width = view.shape[-2:]
    x, y = (width // 2, height // 2) if point is None else (min(max(point[0], 0), width - 1), min(max(point[1], 0), height - 1))
    grid = grids[block - 1]
    cell = (y * grid[0] // height, x * grid[1] // width)
    shown = heat_overlay(view, point_map(weights[block - 1], grid, cell, head)[0])
    top, left = cell[0] * height / grid[0], cell[1] * width / grid[1]
    ImageDraw.Draw(shown).rectangle([left, top, left + width / grid[1] - 1, top + height / grid[0] - 1], outline=(0, 255, 255))
    caption = text.point_caption(block, heads_text, (x, y))
    return ClassifierAttentionResult(classified(model, reps, 0), layer_maps, (shown, caption), block, (x, y))


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
