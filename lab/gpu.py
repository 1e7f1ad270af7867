"""The app's GPU work: one @spaces.GPU call per user action, each asking ZeroGPU for the seconds its request needs.

The seconds come from the cost model of `inversion.optimisation.cost` (FLOPs counted once per model,
on the CPU, when the page's GPU calls are built at start, never in a request; times the request's
captures, reconstructions and optimisation steps, over a stated GPU throughput: an estimate).

Off ZeroGPU the decorator does nothing, so the same calls run on a laptop's CPU. A call takes the
model's name, not the model (only the name, the image and the settings travel to ZeroGPU's
worker), and returns the service's results: PIL images and numpy arrays, never CUDA tensors.
ZeroGPU books a call under the x-ip-token of the request whose thread makes it, so on ZeroGPU every
request makes its own calls (docs/zerogpu.md); elsewhere stage requests served by the learned
inverters are batched with concurrent ones alike (lab.batching: one run for a crowd). Optimisation-
based requests wait in the slow lane (lab.admission), sized for where the models run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import spaces
from spaces.config import Config as SpacesSettings

from inversion.core.classifier_stages import CLASSIFIER_STAGE_SOURCES
from inversion.core.registry import ClassifierModel, Model
from inversion.core.stages import STAGE_SOURCES
from inversion.optimisation.cost import ModelCost, measure_classifier_cost, measure_cost, zero_gpu_duration
from lab import attention_service, classifier_service, service, text
from lab.admission import current_visitor, slow_lane, stop_if_abandoned
from lab.batching import Batcher
from lab.catalogue import Catalogue
from lab.components import user_errors

EVERY_LAYER_COUNT = 20  # reconstructions of a stage request with every layer (DETR-R50: 4 stages + 7 + 7 layers)
MAX_BATCH = 16  # distinct images in one batched stage call (a crowd of MODEL_CONCURRENCY requests fits one)
CPU_BATCH_PIXELS = 2 * 480 * 640  # on a CPU, images x canvas pixels in one batch stay within this (DETR-R50: 2)
ON_ZERO_GPU = SpacesSettings.zero_gpu  # spaces' own reading of SPACES_ZERO_GPU, made when it is imported
_COSTS: WeakKeyDictionary = WeakKeyDictionary()  # detector or classifier -> its ModelCost, counted at start
log = logging.getLogger(__name__)


def network(model: Model | ClassifierModel):
    """The model's own network: its detector, or its classifier."""
    return model.classifier if isinstance(model, ClassifierModel) else model.detector


def count_costs(models: Iterable[Model | ClassifierModel]) -> None:
    """Count each model's FLOPs per capture, optimisation step and reconstruction once, on the CPU (at start:
    `gpu_calls` does; DETR-R50 takes seconds, which no request should wait for)."""
    for model in models:
        if network(model) not in _COSTS:
            started = time.perf_counter()
            measure = measure_classifier_cost if isinstance(model, ClassifierModel) else measure_cost
            _COSTS[network(model)] = measure(network(model), model.inverters)
            log.info("costs of %s counted in %.1f s", model.spec.name, time.perf_counter() - started)


def model_cost(model: Model | ClassifierModel) -> ModelCost:
    """The model's FLOPs as counted at start by `count_costs` (a request never counts them)."""
    try:
        return _COSTS[network(model)]
    except KeyError:
        raise RuntimeError(f"The costs of {model.spec.name} were not counted at start (lab.gpu.count_costs).") from None


def request_seconds(model: Model | ClassifierModel, images: int, reconstructions: int = 0, steps: int = 0) -> int:
    """The ZeroGPU duration of a request under the cost model (inversion.optimisation.cost, an estimate):
    capture `images`, `reconstructions` learned ones per image, `steps` optimisation steps of every stage of each."""
    sources = STAGE_SOURCES if steps else ()
    flops = model_cost(model).request_flops(images, images * reconstructions, steps, sources)
    return zero_gpu_duration(flops, steps)


def stage_seconds(model: Model, all_layers: bool, optimised: bool, optimise_steps: int | None = None,
                  images: int = 1) -> int:
    """The duration of a stage-reconstruction request (or a batch of `images`): learned reconstructions, optimisation steps."""
    learned = 0 if model.inverters is None else EVERY_LAYER_COUNT if all_layers else len(STAGE_SOURCES)
    return request_seconds(model, images, learned, service.optimised_stage_steps(model, optimised, optimise_steps))


def perturb_seconds(model: Model, optimised: bool, optimise_steps: int | None = None) -> int:
    """The duration of a colour-perturbation request: two images, learned or optimised reconstructions of both."""
    learned = 0 if model.inverters is None else len(STAGE_SOURCES)
    return request_seconds(model, 2, learned, service.perturbation_steps(model, optimised, optimise_steps))


def classifier_reconstructions(model: ClassifierModel, all_layers: bool = False) -> int:
    """Reconstructions per image of a classifier's stage request: its stages and the analytic embedding (every
    layer: EVERY_LAYER_COUNT at most); none without inverters."""
    if model.inverters is None:
        return 0
    return EVERY_LAYER_COUNT if all_layers else len(CLASSIFIER_STAGE_SOURCES) + 1


def batch_limit(model: Model) -> int:
    """Distinct images one batched stage call takes: MAX_BATCH, fewer for a big canvas on a CPU (memory; where the
    model runs is what was decided at load, `Model.on_gpu`)."""
    if model.on_gpu:
        return MAX_BATCH
    height, width = model.spec.working_size
    return max(1, min(MAX_BATCH, CPU_BATCH_PIXELS // (height * width)))


@dataclass(frozen=True)
class GpuCalls:
    """The GPU calls of one page, each (model name, image, settings...) -> the service's result."""

    detect: Callable
    stages: Callable  # (..., progress): a gr.Progress the optimisation reports to
    layer_swap: Callable
    perturb: Callable  # (..., optimised, progress): as stages
    attention: Callable
    transplant: Callable
    skip_layer: Callable
    classify: Callable  # an image classifier's (lab.classifier_service): its classes
    classifier_stages: Callable
    classifier_perturb: Callable
    classifier_attention: Callable
    classifier_skip: Callable
    classifier_layer_swap: Callable


def gpu_calls(catalogue: Catalogue, optimise_steps: int | None = None) -> GpuCalls:
    """The GPU calls over a catalogue's models (optimise_steps: steps of a request; None: each model's budget).

    Build them at import (app.py does, through build_demo): ZeroGPU wants its functions decorated then, and the
    models' costs are counted then.
    """
    models = catalogue.models
    count_costs(models.values())

    @spaces.GPU(duration=lambda model_name, image: request_seconds(models[model_name], 1))
    def detect(model_name, image):
        with user_errors():
            return service.detect(models[model_name], image)

    @spaces.GPU(duration=lambda model_name, images, all_layers:
                stage_seconds(models[model_name], all_layers, False, images=len(images)))
    def learned_stages(model_name, images, all_layers):
        with user_errors():
            return service.learned_stages(models[model_name], images, all_layers)

    @spaces.GPU(duration=lambda model_name, image, all_layers, optimised, progress:
                stage_seconds(models[model_name], all_layers, optimised, optimise_steps))
    def optimised_stages(model_name, image, all_layers, optimised, progress):
        def report(fraction, text):
            stop_if_abandoned()  # a closed page stops its optimisation (on ZeroGPU: only while it waits for the lane)
            progress(fraction, desc=text)

        with user_errors():
            return service.stage_reconstructions(models[model_name], image, all_layers, optimised, optimise_steps,
                                                 progress=report)

    batcher = Batcher(lambda key, images: learned_stages(key[0], images, key[1]),
                      max_size=lambda key: batch_limit(models[key[0]]))
    lane = slow_lane(any(model.on_gpu for model in models.values()))

    def wait_in_lane(progress):
        """The slow lane's entry for this request's visitor, telling them while they wait."""
        return lane.enter(current_visitor(), lambda busy: progress(
            0.0, desc=text.SLOW_LANE_WAIT.format(busy=busy, running=lane.running)))

    def stages(model_name, image, all_layers, optimised, progress):
        """Optimisation-based reconstructions in the slow lane; learned ones in a call of their own on ZeroGPU
        (booked under this request's token), else batched with concurrent requests alike."""
        if service.optimised_stage_steps(models[model_name], optimised, optimise_steps):
            with wait_in_lane(progress):
                return optimised_stages(model_name, image, all_layers, optimised, progress)
        if ON_ZERO_GPU:
            return learned_stages(model_name, [image], all_layers)[0]
        return batcher((model_name, all_layers), image)

    @spaces.GPU(duration=lambda model_name, image, layers, entry:
                request_seconds(models[model_name], 1, 0 if models[model_name].inverters is None else len(layers)))
    def layer_swap(model_name, image, layers, entry):
        with user_errors():
            return service.layer_swap(models[model_name], image, layers, entry)

    @spaces.GPU(duration=lambda model_name, image, object_index, mask_kind, perturbation, hue, optimised, progress:
                perturb_seconds(models[model_name], optimised, optimise_steps))
    def perturb_on_gpu(model_name, image, object_index, mask_kind, perturbation, hue, optimised, progress):
        def report(fraction, text):
            stop_if_abandoned()
            progress(fraction, desc=text)

        with user_errors():
            return service.colour_perturbation(
                models[model_name], image, object_index, mask_kind, perturbation, hue, optimised, optimise_steps,
                progress=report,
            )

    def perturb(model_name, image, object_index, mask_kind, perturbation, hue, optimised, progress):
        """A perturbation with optimisation-based reconstructions waits in the slow lane like optimised stages."""
        settings = (model_name, image, object_index, mask_kind, perturbation, hue, optimised, progress)
        if service.perturbation_steps(models[model_name], optimised, optimise_steps):
            with wait_in_lane(progress):
                return perturb_on_gpu(*settings)
        return perturb_on_gpu(*settings)

    def learned(model_name) -> int:
        """Reconstructions an intervention adds: the changed representation's four stages, if the model has inverters."""
        return 0 if models[model_name].inverters is None else len(STAGE_SOURCES)

    @spaces.GPU(duration=lambda model_name, image, decoder_layer, encoder_layer, head, point:
                request_seconds(models[model_name], 1))
    def attention(model_name, image, decoder_layer, encoder_layer, head, point):
        with user_errors():
            return attention_service.attention_maps(models[model_name], image, decoder_layer, encoder_layer, head, point)

    @spaces.GPU(duration=lambda model_name, source, target, object_index, stage, offset:
                request_seconds(models[model_name], 3, learned(model_name)))  # both captured, then B run again
    def transplant(model_name, source, target, object_index, stage, offset):
        with user_errors():
            return attention_service.transplant_object(models[model_name], source, target, object_index, stage, offset)

    @spaces.GPU(duration=lambda model_name, image, stage, layer: request_seconds(models[model_name], 2, learned(model_name)))
    def skip_layer(model_name, image, stage, layer):
        with user_errors():
            return attention_service.skip_one_layer(models[model_name], image, stage, layer)

    @spaces.GPU(duration=lambda model_name, image: request_seconds(models[model_name], 1))
    def classify(model_name, image):
        with user_errors():
            return classifier_service.classify(models[model_name], image)

    @spaces.GPU(duration=lambda model_name, image, all_layers:
                request_seconds(models[model_name], 1, classifier_reconstructions(models[model_name], all_layers)))
    def classifier_stages(model_name, image, all_layers):
        with user_errors():
            return classifier_service.stage_reconstructions(models[model_name], image, all_layers)

    @spaces.GPU(duration=lambda model_name, image, mask_kind, perturbation, hue:
                request_seconds(models[model_name], 2, classifier_reconstructions(models[model_name])))
    def classifier_perturb(model_name, image, mask_kind, perturbation, hue):
        with user_errors():
            return classifier_service.colour_perturbation(models[model_name], image, mask_kind, perturbation, hue)

    @spaces.GPU(duration=lambda model_name, image, head, block, point: request_seconds(models[model_name], 1))
    def classifier_attention(model_name, image, head, block, point):
        with user_errors():
            return classifier_service.attention_maps(models[model_name], image, head, block, point)

    @spaces.GPU(duration=lambda model_name, image, block:
                request_seconds(models[model_name], 2, classifier_reconstructions(models[model_name])))
    def classifier_skip(model_name, image, block):
        with user_errors():
            return classifier_service.skip_block(models[model_name], image, block)

    @spaces.GPU(duration=lambda model_name, image, layers, entry:
                request_seconds(models[model_name], 1, 0 if models[model_name].inverters is None else len(layers)))
    def classifier_layer_swap(model_name, image, layers, entry):
        with user_errors():
            return classifier_service.layer_swap(models[model_name], image, layers, entry)

    return GpuCalls(detect, stages, layer_swap, perturb, attention, transplant, skip_layer, classify, classifier_stages,
                    classifier_perturb, classifier_attention, classifier_skip, classifier_layer_swap)
