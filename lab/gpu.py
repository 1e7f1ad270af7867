"""The app's GPU work: one @spaces.GPU call per user action, each asking ZeroGPU for the seconds its request needs.

Off ZeroGPU the decorator does nothing, so the same calls run on a laptop's CPU. A call takes the
model's name, not the model (only the name, the image and the settings travel to ZeroGPU's
worker), and returns the service's results: PIL images and numpy arrays, never CUDA tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import spaces

from inversion.core.registry import Model
from lab import service
from lab.catalogue import Catalogue
from lab.components import user_errors

STAGE_COUNT = 4  # backbone, encoder, decoder, prediction
EVERY_LAYER_COUNT = 20  # reconstructions budgeted for a stage request with every layer (DETR-R50: 4 stages + 7 + 7 layers)


def gpu_seconds(model: Model, images: int, reconstructions: int, optimisation_steps: int = 0) -> int:
    """A generous ZeroGPU budget for one request: grows with the canvas and the work asked for.

    At 480x640, a second per image and reconstruction and a tenth of one per optimisation step.
    """
    height, width = model.spec.working_size
    return int(5 + (images * (1 + reconstructions) + optimisation_steps / 10) * height * width / (480 * 640))


def stage_seconds(model: Model, all_layers: bool, optimised: bool, optimise_steps: int | None = None) -> int:
    """The budget of a stage-reconstruction request: its learned reconstructions and its optimisation steps."""
    learned = 0 if model.inverters is None else EVERY_LAYER_COUNT if all_layers else STAGE_COUNT
    steps = service.optimised_stage_steps(model, optimised, optimise_steps)
    return gpu_seconds(model, 1, learned, STAGE_COUNT * steps)


@dataclass(frozen=True)
class GpuCalls:
    """The GPU calls of one page, each (model name, image, settings...) -> the service's result."""

    detect: Callable
    stages: Callable  # (..., progress): a gr.Progress the optimisation reports to
    layer_swap: Callable
    perturb: Callable


def gpu_calls(catalogue: Catalogue, optimise_steps: int | None = None) -> GpuCalls:
    """The GPU calls over a catalogue's models (optimise_steps: per stage; None: each model's budget).

    Build them at import (app.py does, through build_demo): ZeroGPU wants its functions decorated then.
    """
    models = catalogue.models

    @spaces.GPU(duration=lambda model_name, image: gpu_seconds(models[model_name], 1, 0))
    def detect(model_name, image):
        with user_errors():
            return service.detect(models[model_name], image)

    @spaces.GPU(duration=lambda model_name, image, all_layers, optimised, progress:
                stage_seconds(models[model_name], all_layers, optimised, optimise_steps))
    def stages(model_name, image, all_layers, optimised, progress):
        with user_errors():
            return service.stage_reconstructions(
                models[model_name], image, all_layers, optimised, optimise_steps,
                progress=lambda fraction, text: progress(fraction, desc=text),
            )

    @spaces.GPU(duration=lambda model_name, image, layers, entry: gpu_seconds(models[model_name], 1, len(layers)))
    def layer_swap(model_name, image, layers, entry):
        with user_errors():
            return service.layer_swap(models[model_name], image, layers, entry)

    @spaces.GPU(duration=lambda model_name, image, *settings: gpu_seconds(models[model_name], 2, STAGE_COUNT))
    def perturb(model_name, image, object_index, mask_kind, perturbation, hue):
        with user_errors():
            return service.colour_perturbation(models[model_name], image, object_index, mask_kind, perturbation, hue)

    return GpuCalls(detect, stages, layer_swap, perturb)
