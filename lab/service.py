"""The app's service layer: what each tab computes, as plain functions returning data (no Gradio here).

Every function takes a loaded `Model` and an RGB PIL image (`inversion.core.images.load_image`),
runs the detector once per image and sends all reconstructions of the request through the
inverters in one `reconstruct` call; reconstructions can also come from optimisation-based
inversion (`inversion.optimisation`, every stage and image of a request in one batch), which needs
no trained inverter. Images come back at the
detector's working resolution (the input fitted inside the canvas, padding cropped), boxes in
those pixels, metrics against the detector's view of the input. Problems the user can fix raise
`RequestError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from inversion.core.errors import UserFacingError
from inversion.core.images import to_pil
from inversion.core.metrics import image_quality
from inversion.core.reconstruct import input_image, reconstruct
from inversion.core.registry import Model
from inversion.core.stages import STAGE_SOURCES, Detection, Representations, Source, layer_sources
from inversion.experiments.colour import PERTURBATIONS, box_mask, grabcut_mask, perturb
from inversion.experiments.matching import DetectionChange, match_detections
from inversion.experiments.similarity import layer_similarity
from inversion.figures import similarity_heat_map
from inversion.optimisation import OptimisationConfig, optimise_inversions

MASK_KINDS = ("grabcut", "box", "image")
ENTRIES = ("backbone", "encoder")  # where encoder layers may enter; decoder layers enter the inverse decoder
OPTIMISE_STEPS = OptimisationConfig().steps  # optimisation steps of a request (all its stages and images at once)
CPU_OPTIMISE_PIXELS = OPTIMISE_STEPS * 128 * 128  # on a CPU, steps x canvas pixels of a request stay within this
MIN_OPTIMISE_STEPS = 10


class RequestError(UserFacingError):
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
    note: str = ""  # says what needs learned inverters, for a model without them


@dataclass
class PerturbationResult:
    original: Detected
    perturbed: Detected
    mask: np.ndarray  # H x W bool, in view pixels
    object_index: int | None  # the detection the mask came from (None for the whole image)
    changes: list[DetectionChange]
    original_panels: list[Panel]
    perturbed_panels: list[Panel]
    note: str = ""  # says what needs learned inverters, for a model without them


def detect(model: Model, image: Image.Image) -> Detected:
    """The detector's view of `image` and its detections (no inverters needed)."""
    return detected(model.detector.capture([image]), 0)


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
    learned inverters always gets those instead. optimise_steps: the optimisation's steps (default:
    the model's budget); progress(fraction, text) follows the optimisation.
    """
    reps = model.detector.capture([image])
    steps = optimised_stage_steps(model, optimised, optimise_steps)
    optimised_panels = _optimised_panels(model, reps, steps, progress)[0] if steps else []
    if model.inverters is None:
        note = optimised_note(model, steps)
        if all_layers:
            note += " Reconstructions from every encoder and decoder layer need trained inverters."
        return StageResult(detected(reps, 0), optimised_panels, [], note)
    panels = _learned_stage_panels(model, reps, all_layers)[0]
    note = (f"The second row is optimisation-based: {steps} steps of L-BFGS on a Laplacian pyramid of the image, "
            "all four stages at once, no trained inverter." if optimised_panels else "")
    return StageResult(detected(reps, 0), panels, optimised_panels, note)


def learned_stages(model: Model, images: list[Image.Image], all_layers: bool = False) -> list[StageResult]:
    """Stage reconstructions of several images by the learned inverters, with one detector forward and one
    inverter cascade for all of them (the app batches concurrent requests so); one result per image."""
    if model.inverters is None:
        raise RequestError(f"{model.spec.label} has no trained inverters: its reconstructions are optimisation-based.")
    reps = model.detector.capture(images)
    panels = _learned_stage_panels(model, reps, all_layers)
    return [StageResult(detected(reps, index), panels[index], []) for index in range(len(images))]


def _learned_stage_panels(model: Model, reps: Representations, all_layers: bool) -> list[list[Panel]]:
    """Each image's reconstructions from every stage (and with all_layers, every layer), in one inverter cascade."""
    sources = [*STAGE_SOURCES, *(layer_sources(reps) if all_layers else [])]
    images = reconstruct(model.inverters, reps, sources)
    return [scored_panels(reps, images, index) for index in range(len(reps.detections))]


def optimised_note(model: Model, steps: int, what: str = "these reconstructions") -> str:
    """The note of optimisation-based reconstructions standing in for missing inverters."""
    return (f"{model.spec.label} has no trained inverters yet, so {what} are optimisation-based: "
            f"{steps} steps of L-BFGS on the image (a Laplacian pyramid), all four stages at once, until DETR's "
            "representation of it matches (Mahendran and Vedaldi, 2015).")


def optimise_budget(model: Model) -> int:
    """Optimisation steps of a request: OPTIMISE_STEPS, fewer on a CPU for a big canvas (DETR-R50: 10).

    Where the model runs is what was decided at load (`Model.on_gpu`): on ZeroGPU its parameters report "cpu"
    in a request's thread, although the optimisation runs on the GPU."""
    if model.on_gpu:
        return OPTIMISE_STEPS
    height, width = model.detector.working_size
    return max(MIN_OPTIMISE_STEPS, min(OPTIMISE_STEPS, CPU_OPTIMISE_PIXELS // (height * width)))


def optimised_stage_steps(model: Model, optimised: bool, optimise_steps: int | None = None) -> int:
    """Optimisation steps a stage request makes: none if learned inverters suffice, else
    `optimise_steps` or the model's budget (asked for, or the model has no learned inverters)."""
    if not optimised and model.inverters is not None:
        return 0
    return optimise_steps or optimise_budget(model)


def perturbation_steps(model: Model, optimised: bool, optimise_steps: int | None = None) -> int:
    """Optimisation steps a colour-perturbation request makes: only for a model without inverters, when asked."""
    return optimise_steps or optimise_budget(model) if optimised and model.inverters is None else 0


def layer_choices(model: Model) -> list[str]:
    """Every layer a detector's layer swap can start from: 'encoder 0'.., 'decoder 0'.."""
    sizes = model.detector.sizes
    return [f"encoder {layer}" for layer in range(sizes.encoder_layers + 1)] + [
        f"decoder {layer}" for layer in range(sizes.decoder_layers + 1)
    ]


def layer_swap(model: Model, image: Image.Image, layers: list[str], entry: str = "backbone") -> LayerSwapResult:
    """Feed chosen layers to an inverse made for another stage, plus the layers' CKA similarity.

    layers: names from `layer_choices`. Encoder layers enter the inverse `entry` ("backbone":
    as if they were the backbone map; "encoder": as if they were the final encoder output);
    decoder layers enter the inverse decoder as if they were the final decoder output.
    """
    sources = [_layer_source(name, entry, layer_choices(model)) for name in layers]
    if not sources:
        raise RequestError("Choose at least one encoder or decoder layer to reconstruct from.")
    reps = model.detector.capture([image])
    panels = [] if model.inverters is None else scored_panels(reps, reconstruct(model.inverters, reps, sources), 0)
    encoder = layer_similarity(reps, "encoder").numpy()
    decoder = layer_similarity(reps, "decoder").numpy()
    return LayerSwapResult(detected(reps, 0), panels, encoder, decoder, similarity_heat_map(encoder, decoder),
                           needs_inverters(model, "The similarity map is this image's; reconstructions from layers"))


def colour_perturbation(
    model: Model,
    image: Image.Image,
    object_index: int | None,
    mask_kind: str,
    perturbation: str,
    hue: int | None = None,
    optimised: bool = False,
    optimise_steps: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> PerturbationResult:
    """Recolour one detected object (or the whole image) and compare detections and reconstructions.

    mask_kind: "grabcut" (the object segmented inside its box), "box" or "image".
    perturbation: a name in `inversion.perturb.PERTURBATIONS`, or "hue" with `hue` in 0..179.
    The perturbation is applied to the detector's view, so both images share one resolution.
    A model without learned inverters reconstructs both images by optimisation when `optimised`
    (all stages of both in one batch; optimise_steps as in `stage_reconstructions`).
    """
    check_perturbation(mask_kind, perturbation, hue)
    clean = model.detector.capture([image])
    original = detected(clean, 0)
    mask, object_index = _mask(original, object_index, mask_kind)
    recoloured = Image.fromarray(perturb(original.view, mask, perturbation, hue))
    after = model.detector.capture([recoloured])
    both = Representations.concat([clean, after])
    perturbed = detected(both, 1)
    result = PerturbationResult(
        original=original,
        perturbed=perturbed,
        mask=mask,
        object_index=object_index,
        changes=match_detections(original.detections, perturbed.detections),
        original_panels=[],
        perturbed_panels=[],
    )
    if model.inverters is not None:
        images = reconstruct(model.inverters, both, STAGE_SOURCES)
        return replace(result, original_panels=scored_panels(both, images, 0), perturbed_panels=scored_panels(both, images, 1))
    steps = perturbation_steps(model, optimised, optimise_steps)
    if not steps:
        note = needs_inverters(model, "The detections before and after are the detector's; learned reconstructions "
                               "of both images") + " Tick the optimisation box for optimisation-based reconstructions of both."
        return replace(result, note=note)
    original_panels, perturbed_panels = _optimised_panels(model, both, steps, progress)
    return replace(result, original_panels=original_panels, perturbed_panels=perturbed_panels,
                   note=optimised_note(model, steps, "the reconstructions of both images"))


def check_perturbation(mask_kind: str, perturbation: str, hue: int | None) -> None:
    """Refuse an unknown mask or perturbation, or a free hue outside 0..179, with what to choose instead."""
    if mask_kind not in MASK_KINDS:
        raise RequestError(f"Unknown mask {mask_kind!r}: choose one of {', '.join(MASK_KINDS)}.")
    if perturbation not in (*PERTURBATIONS, "hue"):
        raise RequestError(f"Unknown perturbation {perturbation!r}: choose one of {', '.join(PERTURBATIONS)} or hue.")
    if perturbation == "hue" and (hue is None or not 0 <= hue <= 179):
        raise RequestError(f"A free hue must be between 0 and 179 (OpenCV units, degrees / 2); got {hue}.")


def needs_inverters(model: Model, what_works: str) -> str:
    """For a model without learned inverters, what its result holds and what needs them; else nothing."""
    if model.inverters is not None:
        return ""
    return f"{what_works} need trained inverters, which {model.spec.label} does not have yet."


def detected(reps: Representations, index: int) -> Detected:
    """Image `index`'s view and its detections with boxes scaled from original to view pixels."""
    height, width = reps.content_sizes[index]
    original_height, original_width = reps.original_sizes[index]
    sx, sy = width / original_width, height / original_height
    detections = [
        replace(d, box=(d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy)) for d in reps.detections[index]
    ]
    return Detected(to_pil(input_image(reps, index)), detections)


def scored_panels(reps: Representations, images: dict[Source, list[torch.Tensor]], index: int) -> list[Panel]:
    """Image `index`'s reconstructions as captioned panels, scored against its input."""
    target = input_image(reps, index)
    panels = []
    for source, batch in images.items():
        quality = image_quality(batch[index], target)
        panels.append(Panel(source.label, to_pil(batch[index]), quality["psnr"], quality["ssim"]))
    return panels


def _optimised_panels(
    model: Model, reps: Representations, steps: int, progress: Callable[[float, str], None] | None
) -> list[list[Panel]]:
    """Every captured image reconstructed from each stage by optimisation, all in one batch: panels per image."""
    config = OptimisationConfig(steps=steps)
    images = optimise_inversions(model.detector, reps, list(STAGE_SOURCES), config, progress=progress).images
    return [scored_panels(reps, images, index) for index in range(reps.batch_size)]


def _layer_source(name: str, entry: str, choices: list[str]) -> Source:
    """A layer name ('encoder 3') as the Source that feeds it to the chosen inverse."""
    if name not in choices:
        raise RequestError(f"Unknown layer {name!r}: this model has {choices[0]} to {choices[-1]}.")
    if entry not in ENTRIES:
        raise RequestError(f"Encoder layers can enter the inverse backbone or encoder, not {entry!r}.")
    stage, layer = name.split()
    return Source("encoder", int(layer), entry=entry) if stage == "encoder" else Source("decoder", int(layer))


def _mask(image: Detected, object_index: int | None, mask_kind: str) -> tuple[np.ndarray, int | None]:
    """The region to recolour and the object it belongs to."""
    shape = (image.view.height, image.view.width)
    if mask_kind == "image":
        return np.ones(shape, dtype=bool), None
    count = len(image.detections)
    if count == 0:
        raise RequestError(
            "The detector found no object in this image, so there is no box to recolour: "
            "choose the mask 'the whole image', or another image."
        )
    index = 0 if object_index is None else int(object_index)
    if not 0 <= index < count:
        raise RequestError(f"There is no object {index}: the detector found {count} (numbered 0 to {count - 1}).")
    box = image.detections[index].box
    mask = box_mask(shape, box) if mask_kind == "box" else grabcut_mask(image.view, box)
    return mask, index
