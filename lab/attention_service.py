"""What the attention tab computes, as plain functions returning data (no Gradio here): where each
detection looks, and what DETR does when its features move (a transplant from another image, a skipped layer).

None of it needs inverters: the maps and detections come from the detector alone. A model with
learned inverters also gets the reconstructions of each changed representation.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from inversion.core.reconstruct import reconstruct
from inversion.core.registry import ClassifierModel, Model
from inversion.core.stages import STAGE_SOURCES, Representations
from inversion.experiments.attention import capture_attention, detection_queries, share_in_box
from inversion.experiments.grid import point_cell
from inversion.experiments.interventions import TRANSPLANT_STAGES, one_image, skip_layer, transplant
from inversion.experiments.matching import DetectionChange
from inversion.figures import attention_overlay
from lab import text
from lab.classifier_service import attention_layers
from lab.service import Detected, Panel, RequestError, detected, needs_inverters, scored_panels

SKIP_STAGES = ("encoder", "decoder")
POINT_RADIUS = 4  # view pixels: the clicked point's marker on the encoder map


@dataclass
class AttentionMap:
    """One attention map blended over the detector's view, and what it shows."""

    image: Image.Image
    caption: str


@dataclass
class AttentionResult:
    input: Detected
    query_maps: list[AttentionMap]  # per detection (same order): its query's cross-attention in `decoder_layer`
    point_map: AttentionMap  # the encoder self-attention from `point` in `encoder_layer`
    point: tuple[int, int]  # (x, y) in view pixels, as used (the view's centre when none was given)
    decoder_layer: int
    encoder_layer: int


@dataclass
class InterventionResult:
    """Image B (or the image) before and after an intervention, and what became of each detection."""

    before: Detected
    after: Detected
    changes: list[DetectionChange]
    summary: str  # one sentence: what was done and what the detector made of it
    panels: list[Panel]  # reconstructions of the changed representation (none without learned inverters)
    note: str = ""  # what needs learned inverters, for a model without them
    source: Detected | None = None  # a transplant's image A, its detections numbered as the object choice


def layer_counts(model: Model | ClassifierModel) -> tuple[int, int, int]:
    """The model's encoder layers with attention, decoder layers and attention heads (a classifier: its blocks whose
    attention it records, no decoder)."""
    if isinstance(model, ClassifierModel):
        blocks, heads = attention_layers(model)
        return blocks, 0, heads
    sizes = model.detector.sizes
    return sizes.encoder_attention_layers, sizes.decoder_layers, sizes.attention_heads


def attention_maps(
    model: Model,
    image: Image.Image,
    decoder_layer: int | None = None,
    encoder_layer: int | None = None,
    head: int | None = None,
    point: tuple[float, float] | None = None,
) -> AttentionResult:
    """Each detection's cross-attention over the feature grid (decoder layer 1..L, default the last) and the
    encoder's self-attention from `point` ((x, y) in view pixels; default the centre; encoder layer default the
    last), averaged over heads unless `head` (0..heads-1). Maps sum to 1 over the grid; shown scaled to their maximum."""
    encoders, decoders, heads = layer_counts(model)
    decoder_layer = decoders if decoder_layer is None else decoder_layer
    encoder_layer = encoders if encoder_layer is None else encoder_layer
    _check("decoder layer", decoder_layer, 1, decoders)
    _check("encoder layer", encoder_layer, 1, encoders)
    if head is not None:
        _check("head", head, 0, heads - 1)
    reps, attention = capture_attention(model.detector, [image])
    shown = detected(reps, 0)
    heads_text = "mean of the heads" if head is None else f"head {head}"
    queries = detection_queries(model.detector, reps, 0)
    query_maps = []
    for index, (query, detection) in enumerate(zip(queries, reps.detections[0], strict=True)):
        weights = attention.query_map(0, query, decoder_layer, head)
        inside = share_in_box(weights, reps, 0, detection.box)
        caption = f"{text.detection_label(index, detection)} · {inside:.0%} inside its box"
        query_maps.append(AttentionMap(attention_overlay(reps, 0, weights), caption))
    point = _view_point(shown, point)
    cell = point_cell(reps, 0, _original_point(reps, point), reps.attention_grid)
    point_image = attention_overlay(reps, 0, attention.point_map(0, cell, encoder_layer, head))
    ImageDraw.Draw(point_image).ellipse([point[0] - POINT_RADIUS, point[1] - POINT_RADIUS, point[0] + POINT_RADIUS,
                                         point[1] + POINT_RADIUS], outline=(0, 255, 255), width=2)
    point_caption = f"encoder layer {encoder_layer}, {heads_text}: attention from the cell at ({point[0]}, {point[1]})"
    return AttentionResult(shown, query_maps, AttentionMap(point_image, point_caption), point, decoder_layer, encoder_layer)


def transplant_object(
    model: Model,
    source: Image.Image,
    target: Image.Image,
    object_index: int,
    stage: str = "encoder",
    offset: tuple[int, int] = (0, 0),
) -> InterventionResult:
    """Copy the tokens of the first image's detection `object_index` (its box's grid cells) into the second
    image's representation at `stage` ("backbone" or "encoder"), moved by `offset` (rows, columns) cells,
    and run the rest of DETR on the second image."""
    if stage not in TRANSPLANT_STAGES:
        raise RequestError(f"Transplant at {stage!r}? Choose one of {', '.join(TRANSPLANT_STAGES)}.")
    both = model.detector.capture([source, target])
    a, b = one_image(both, 0), one_image(both, 1)
    objects = a.detections[0]
    if not objects:
        raise RequestError("The detector found no object in the first image, so there is nothing to transplant: "
                           "choose another first image.")
    if not 0 <= object_index < len(objects):
        raise RequestError(f"There is no object {object_index} in the first image: the detector found {len(objects)} "
                           f"(numbered 0 to {len(objects) - 1}).")
    moved = transplant(model.detector, a, b, objects[object_index], stage, offset)
    where = "at the same place" if offset == (0, 0) else f"moved {offset[0]:+d} rows and {offset[1]:+d} columns of cells"
    outcome = (f"found there as {text.detection_label(None, moved.found)}" if moved.found is not None
               else "not found there")
    summary = (f"The first image's {text.detection_label(object_index, objects[object_index])}, transplanted into the "
               f"second at the {'backbone map' if stage == 'backbone' else 'encoder output'} {where}: {outcome}.")
    return _intervention(model, b, moved.representations, moved.changes, summary, source=detected(a, 0))


def skip_one_layer(model: Model, image: Image.Image, stage: str, layer: int) -> InterventionResult:
    """Run DETR on `image` with encoder or decoder `layer` (1..L) replaced by the identity, and compare its detections."""
    if stage not in SKIP_STAGES:
        raise RequestError(f"Only encoder and decoder layers can be skipped; got {stage!r}.")
    encoders, decoders, _ = layer_counts(model)
    _check(f"{stage} layer", layer, 1, encoders if stage == "encoder" else decoders)
    base = model.detector.capture([image])
    skipped = skip_layer(model.detector, base, stage, layer)
    counts = {status: sum(change.status == status for change in skipped.changes[0])
              for status in ("same label", "label changed", "lost", "new")}
    summary = (f"Without {stage} layer {layer}: " + ", ".join(f"{count} {status}" for status, count in counts.items())
               + " (the unmodified run's detections matched to the new ones by box).")
    return _intervention(model, base, skipped.representations, skipped.changes[0], summary)


def _intervention(model: Model, before: Representations, after: Representations, changes: list[DetectionChange],
                  summary: str, source: Detected | None = None) -> InterventionResult:
    """The result of an intervention, with the changed representation's reconstructions when the model has inverters."""
    panels = [] if model.inverters is None else scored_panels(after, reconstruct(model.inverters, after, STAGE_SOURCES), 0)
    note = needs_inverters(model, "The detections before and after are the detector's; reconstructions of the "
                                  "changed representation")
    return InterventionResult(detected(before, 0), detected(after, 0), changes, summary, panels, note, source)


def _check(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise RequestError(f"There is no {name} {value}: this model has {low} to {high}.")


def _view_point(view: Detected, point: tuple[float, float] | None) -> tuple[int, int]:
    """A point in view pixels (the centre when None), clamped to the view."""
    width, height = view.view.size
    x, y = (width / 2, height / 2) if point is None else point
    return min(width - 1, max(0, round(x))), min(height - 1, max(0, round(y)))


def _original_point(reps: Representations, point: tuple[int, int]) -> tuple[float, float]:
    """A view pixel's centre in the original image's pixels (where `point_cell` expects it)."""
    (content_height, content_width), (height, width) = reps.content_sizes[0], reps.original_sizes[0]
    return (point[0] + 0.5) * width / content_width, (point[1] + 0.5) * height / content_height
