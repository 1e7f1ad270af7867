"""The app's GPU work: one @spaces.GPU call per user action, with the ZeroGPU duration it asks for.

Off ZeroGPU the decorator does nothing, so the same calls run on a laptop's CPU. The functions
read the models of the catalogue `attach` was given (ZeroGPU wants decorated functions at import).
"""

from __future__ import annotations

from contextlib import contextmanager

import gradio as gr
import spaces

from inversion.core.errors import UserFacingError
from lab import service
from lab.catalogue import Catalogue

_served: dict = {}  # "catalogue": the Catalogue, "optimise_steps": steps per stage or None (each model's budget)


def attach(catalogue: Catalogue, optimise_steps: int | None = None) -> None:
    """Serve this catalogue's models (optimise_steps: optimisation steps per stage; None: each model's budget)."""
    _served.update(catalogue=catalogue, optimise_steps=optimise_steps)


def model(name: str):
    return _served["catalogue"].models[name]


def gpu_seconds(model_name: str, images: int, reconstructions: int, optimisation_steps: int = 0) -> int:
    """A generous ZeroGPU budget for one request: grows with the canvas and the work asked for.

    At 480x640, a second per image and reconstruction and a tenth of one per optimisation step.
    """
    height, width = model(model_name).spec.working_size
    return int(5 + (images * (1 + reconstructions) + optimisation_steps / 10) * height * width / (480 * 640))


def stage_seconds(model_name: str, image, all_layers: bool, optimised: bool, progress=None) -> int:
    """The budget of a stage-reconstruction request (`stages`' arguments): reconstructions and optimisation."""
    chosen = model(model_name)
    learned = 0 if chosen.inverters is None else 20 if all_layers else 4
    steps = service.optimised_stage_steps(chosen, optimised, _served["optimise_steps"])
    return gpu_seconds(model_name, 1, learned, 4 * steps)  # the four stages


@contextmanager
def user_errors():
    """Problems the user can fix become a gr.Error with the library's message."""
    try:
        yield
    except UserFacingError as error:
        raise gr.Error(str(error), print_exception=False) from None


@spaces.GPU(duration=lambda model_name, image: gpu_seconds(model_name, 1, 0))
def detect(model_name, image):
    with user_errors():
        return service.detect(model(model_name), image)


@spaces.GPU(duration=stage_seconds)
def stages(model_name, image, all_layers, optimised, progress):
    with user_errors():
        return service.stage_reconstructions(
            model(model_name), image, all_layers, optimised, _served["optimise_steps"],
            progress=lambda fraction, text: progress(fraction, desc=text),
        )


@spaces.GPU(duration=lambda model_name, image, layers, entry: gpu_seconds(model_name, 1, len(layers)))
def layer_swap(model_name, image, layers, entry):
    with user_errors():
        return service.layer_swap(model(model_name), image, layers, entry)


@spaces.GPU(duration=lambda model_name, image, *settings: gpu_seconds(model_name, 2, 4))
def perturb(model_name, image, object_index, mask_kind, perturbation, hue):
    with user_errors():
        return service.colour_perturbation(model(model_name), image, object_index, mask_kind, perturbation, hue)
