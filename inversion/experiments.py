"""What each tab of the app computes, as plain functions returning data (no Gradio here).

Every function takes a loaded `Model` and an RGB PIL image (`inversion.images.load_image`),
runs the detector once per image and sends all reconstructions of the request through the
inverters in one `reconstruct` call; stage reconstructions can also come from optimisation-based
inversion (`inversion.optimise`), which needs no trained inverter. Images come back at the
detector's working resolution (the input fitted inside the canvas, padding cropped), boxes in
those pixels, metrics against the detector's view of the input. Problems the user can fix raise
`ExperimentError`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from .inverters import InverterStack
from .metrics import image_quality
from .models import Model
from .optimise import OptimiseConfig, optimise_inversion
from .perturb import PERTURBATIONS, box_mask, grabcut_mask, perturb
from .reconstruct import STAGE_SOURCES, input_image, layer_sources, reconstruct, to_pil
from .similarity import layer_similarity
from .stages import Detection, Representations, Source

MASK_KINDS = ("grabcut", "box", "image")
ENTRIES = ("backbone", "encoder")  # where encoder layers may enter; decoder layers enter the inverse decoder
MATCH_IOU = 0.5  # a detection of the perturbed image continues a clean one if their boxes overlap this much
OPTIMISE_STEPS = 200  # optimisation steps per stage (the Shapes model on a CPU: a few seconds per stage)
CPU_OPTIMISE_PIXELS = OPTIMISE_STEPS * 128 * 128  # on a CPU, steps x canvas pixels per stage stay within this
MIN_OPTIMISE_STEPS = 10


class ExperimentError(ValueError):
    """A request the user can fix (no inverters, no object to perturb, a bad layer...): the message says how."""


@dataclass
class Panel:
    """One reconstruction with its quality against the input."""

    label: str
    image: Image.Image
    psnr: float
    ssim: float

    @property
    def caption(self) -> str:
        return f"{self.label} · PSNR {self.psnr:.1f} dB · SSIM {self.ssim:.2f}"


@dataclass
class Detected:
    """The detector's view of an image (working resolution) and its detections in those pixels."""

    view: Image.Image
    detections: list[Detection]


@dataclass
class StageResult:
    input: Detected
    panels: list[Panel]  # by the learned inverters, or optimisation-based when the model has none
    optimised_panels: list[Panel]  # optimisation-based, next to learned panels (when asked for)
    note: str = ""  # says which reconstructions are optimisation-based, and with how many steps


@dataclass
class LayerSwapResult:
    input: Detected
    panels: list[Panel]
    encoder_similarity: np.ndarray  # (L+1) x (L+1) linear CKA
    decoder_similarity: np.ndarray  # row and column 0 are NaN (zero queries)
    heat_map: Image.Image


@dataclass
class DetectionChange:
    """A detection of the clean image and what became of it in the perturbed one (None: none)."""

    before: Detection | None
    after: Detection | None

    @property
    def status(self) -> str:
        if self.before is None:
            return "new"
        if self.after is None:
            return "lost"
        return "label changed" if self.after.label != self.before.label else "same label"

    @property
    def score_delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after.score - self.before.score


@dataclass
class PerturbationResult:
    original: Detected
    perturbed: Detected
    mask: np.ndarray  # H x W bool, in view pixels
    object_index: int | None  # the detection the mask came from (None for the whole image)
    changes: list[DetectionChange]
    original_panels: list[Panel]
    perturbed_panels: list[Panel]


def detect(model: Model, image: Image.Image) -> Detected:
    """The detector's view of `image` and its detections (no inverters needed)."""
    return _detected(model.detector.capture([image]), 0)


def stage_reconstructions(
    model: Model,
    image: Image.Image,
    all_layers: bool = False,
    optimised: bool = False,
    optimise_steps: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> StageResult:
    """The image reconstructed from every stage (and, with all_layers, every encoder and decoder layer).

    With `optimised`, also by optimisation-based inversion from the four stages; a model without
    learned inverters always gets those instead. optimise_steps: per stage (default: the model's
    budget); progress(fraction, text) follows the optimisation.
    """
    reps = model.detector.capture([image])
    steps = optimised_stage_steps(model, optimised, optimise_steps)
    optimised_panels = _optimised_panels(model, reps, steps, progress) if steps else []
    if model.inverters is None:
        note = (f"{model.spec.label} has no trained inverters yet, so these reconstructions are optimisation-based: "
                f"{steps} steps of gradient descent on the pixels per stage, until DETR's representation of them "
                "matches (Mahendran and Vedaldi, 2015).")
        if all_layers:
            note += " Reconstructions from every encoder and decoder layer need trained inverters."
        return StageResult(_detected(reps, 0), optimised_panels, [], note)
    sources = STAGE_SOURCES + (layer_sources(reps) if all_layers else [])
    panels = _panels(reps, reconstruct(model.inverters, reps, sources), 0)
    note = (f"The second row is optimisation-based: {steps} steps of gradient descent on the pixels per stage, "
            "no trained inverter." if optimised_panels else "")
    return StageResult(_detected(reps, 0), panels, optimised_panels, note)


def optimise_budget(model: Model) -> int:
    """Optimisation steps per stage: OPTIMISE_STEPS, fewer on a CPU for a big canvas (DETR-R50: 10)."""
    if model.detector.device.type != "cpu":
        return OPTIMISE_STEPS
    height, width = model.detector.working_size
    return max(MIN_OPTIMISE_STEPS, min(OPTIMISE_STEPS, CPU_OPTIMISE_PIXELS // (height * width)))


def optimised_stage_steps(model: Model, optimised: bool, optimise_steps: int | None = None) -> int:
    """Optimisation steps per stage a stage request makes: none if learned inverters suffice, else
    `optimise_steps` or the model's budget (asked for, or the model has no learned inverters)."""
    if not optimised and model.inverters is not None:
        return 0
    return optimise_steps or optimise_budget(model)


def layer_choices(model: Model) -> list[str]:
    """Every layer a layer swap can start from: 'encoder 0'.., 'decoder 0'.."""
    config = model.detector.config
    return [f"encoder {layer}" for layer in range(config.encoder_layers + 1)] + [
        f"decoder {layer}" for layer in range(config.decoder_layers + 1)
    ]


def layer_swap(model: Model, image: Image.Image, layers: list[str], entry: str = "backbone") -> LayerSwapResult:
    """Feed chosen layers to an inverse made for another stage, plus the layers' CKA similarity.

    layers: names from `layer_choices`. Encoder layers enter the inverse `entry` ("backbone":
    as if they were the backbone map; "encoder": as if they were the final encoder output);
    decoder layers enter the inverse decoder as if they were the final decoder output.
    """
    stack = require_inverters(model)
    sources = [_layer_source(name, entry, layer_choices(model)) for name in layers]
    if not sources:
        raise ExperimentError("Choose at least one encoder or decoder layer to reconstruct from.")
    reps = model.detector.capture([image])
    images = reconstruct(stack, reps, sources)
    encoder = layer_similarity(reps, "encoder").numpy()
    decoder = layer_similarity(reps, "decoder").numpy()
    return LayerSwapResult(_detected(reps, 0), _panels(reps, images, 0), encoder, decoder, heat_map(encoder, decoder))


def colour_perturbation(
    model: Model,
    image: Image.Image,
    object_index: int | None,
    mask_kind: str,
    perturbation: str,
    hue: int | None = None,
) -> PerturbationResult:
    """Recolour one detected object (or the whole image) and compare detections and reconstructions.

    mask_kind: "grabcut" (the object segmented inside its box), "box" or "image".
    perturbation: a name in `inversion.perturb.PERTURBATIONS`, or "hue" with `hue` in 0..179.
    The perturbation is applied to the detector's view, so both images share one resolution.
    """
    stack = require_inverters(model)
    if mask_kind not in MASK_KINDS:
        raise ExperimentError(f"Unknown mask {mask_kind!r}: choose one of {', '.join(MASK_KINDS)}.")
    if perturbation not in (*PERTURBATIONS, "hue"):
        raise ExperimentError(f"Unknown perturbation {perturbation!r}: choose one of {', '.join(PERTURBATIONS)} or hue.")
    if perturbation == "hue" and (hue is None or not 0 <= hue <= 179):
        raise ExperimentError(f"A free hue must be between 0 and 179 (OpenCV units, degrees / 2); got {hue}.")
    clean = model.detector.capture([image])
    original = _detected(clean, 0)
    mask, object_index = _mask(original, object_index, mask_kind)
    recoloured = Image.fromarray(perturb(original.view, mask, perturbation, hue))
    after = model.detector.capture([recoloured])
    both = Representations.concat([clean, after])
    images = reconstruct(stack, both, STAGE_SOURCES)
    perturbed = _detected(both, 1)
    return PerturbationResult(
        original=original,
        perturbed=perturbed,
        mask=mask,
        object_index=object_index,
        changes=match_detections(original.detections, perturbed.detections),
        original_panels=_panels(both, images, 0),
        perturbed_panels=_panels(both, images, 1),
    )


def require_inverters(model: Model) -> InverterStack:
    """The model's inverters, or an ExperimentError saying plainly that it has none."""
    if model.inverters is None:
        raise ExperimentError(
            f"The model {model.spec.label!r} has no trained inverters yet, which this experiment needs: choose "
            "another model. Its stage reconstructions still work, by optimisation-based inversion."
        )
    return model.inverters


def match_detections(before: list[Detection], after: list[Detection]) -> list[DetectionChange]:
    """Pair each clean detection with the best-overlapping perturbed one (IoU >= MATCH_IOU, greedy by score)."""
    unmatched = list(after)
    changes = []
    for detection in before:
        overlaps = [iou(detection.box, other.box) for other in unmatched]
        best = int(np.argmax(overlaps)) if overlaps else -1
        match = unmatched.pop(best) if best >= 0 and overlaps[best] >= MATCH_IOU else None
        changes.append(DetectionChange(detection, match))
    return changes + [DetectionChange(None, detection) for detection in unmatched]


def iou(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    intersection = width * height
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return intersection / (area - intersection) if area > intersection else 0.0


def heat_map(encoder: np.ndarray, decoder: np.ndarray) -> Image.Image:
    """The encoder and decoder CKA matrices side by side, annotated, as an image."""
    figure = Figure(figsize=(8.4, 3.6), dpi=100, layout="constrained")
    for axis, matrix, stage in zip(figure.subplots(1, 2), (encoder, decoder), ("encoder", "decoder")):
        shown = axis.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=1, cmap="viridis")
        for (row, column), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                          color="black" if value > 0.6 else "white")
        axis.set_xticks(range(len(matrix)))
        axis.set_yticks(range(len(matrix)))
        axis.set_xlabel(f"{stage} layer")
        axis.set_ylabel(f"{stage} layer")
        axis.set_title(f"{stage}: linear CKA between layers", fontsize=10)
    figure.colorbar(shown, ax=figure.axes, shrink=0.8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return Image.open(buffer).convert("RGB")


def _detected(reps: Representations, index: int) -> Detected:
    """Image `index`'s view and its detections with boxes scaled from original to view pixels."""
    height, width = reps.content_sizes[index]
    original_height, original_width = reps.original_sizes[index]
    sx, sy = width / original_width, height / original_height
    detections = [
        replace(d, box=(d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy)) for d in reps.detections[index]
    ]
    return Detected(to_pil(input_image(reps, index)), detections)


def _panels(reps: Representations, images: dict[Source, list[torch.Tensor]], index: int) -> list[Panel]:
    """Image `index`'s reconstructions as captioned panels, scored against its input."""
    target = input_image(reps, index)
    panels = []
    for source, batch in images.items():
        quality = image_quality(batch[index], target)
        panels.append(Panel(source.label, to_pil(batch[index]), quality["psnr"], quality["ssim"]))
    return panels


def _optimised_panels(
    model: Model, reps: Representations, steps: int, progress: Callable[[float, str], None] | None
) -> list[Panel]:
    """The first image reconstructed from each stage by optimisation, progress reported over all stages."""
    config = OptimiseConfig(steps=steps)
    images = {}
    for done, source in enumerate(STAGE_SOURCES):
        report = _share(progress, done, len(STAGE_SOURCES))
        images[source] = [optimise_inversion(model.detector, reps, source, config=config, progress=report).image]
    return _panels(reps, images, 0)


def _share(progress: Callable[[float, str], None] | None, done: int, total: int) -> Callable[[float, str], None] | None:
    """One of `total` parts' progress reported as progress of the whole, `done` parts being finished."""
    if progress is None:
        return None
    return lambda fraction, text: progress((done + fraction) / total, text)


def _layer_source(name: str, entry: str, choices: list[str]) -> Source:
    """A layer name ('encoder 3') as the Source that feeds it to the chosen inverse."""
    if name not in choices:
        raise ExperimentError(f"Unknown layer {name!r}: this model has {choices[0]} to {choices[-1]}.")
    if entry not in ENTRIES:
        raise ExperimentError(f"Encoder layers can enter the inverse backbone or encoder, not {entry!r}.")
    stage, layer = name.split()
    return Source("encoder", int(layer), entry=entry) if stage == "encoder" else Source("decoder", int(layer))


def _mask(image: Detected, object_index: int | None, mask_kind: str) -> tuple[np.ndarray, int | None]:
    """The region to recolour and the object it belongs to."""
    shape = (image.view.height, image.view.width)
    if mask_kind == "image":
        return np.ones(shape, dtype=bool), None
    count = len(image.detections)
    if count == 0:
        raise ExperimentError(
            "The detector found no object in this image, so there is no box to recolour: "
            "choose the mask 'the whole image', or another image."
        )
    index = 0 if object_index is None else int(object_index)
    if not 0 <= index < count:
        raise ExperimentError(f"There is no object {index}: the detector found {count} (numbered 0 to {count - 1}).")
    box = image.detections[index].box
    mask = box_mask(shape, box) if mask_kind == "box" else grabcut_mask(image.view, box)
    return mask, index
