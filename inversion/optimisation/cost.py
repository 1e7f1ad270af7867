"""What a request costs, and the GPU seconds to ask ZeroGPU for: the app's documented cost model.

FLOPs depend only on the architecture and the working size, so they are counted once per model
(`torch.utils.flop_counter`, on a copy of the detector with random weights, on the CPU, one image):

    capture      one plain forward (what every request runs per image)
    full step    one forward+backward through the whole DETR (an image optimised against the
                 encoder, decoder or prediction)
    backbone step  one forward+backward through the backbone and input projection only
    reconstruction  one learned reconstruction (the inverter cascade of all stages, over four)

A classifier (`measure_classifier_cost`) has no optimisation steps: its capture and its learned
reconstruction (the inverse chain from each of its four stages, over four).

A request's FLOPs are captures x capture + steps x (its images' step FLOPs) + reconstructions x
reconstruction. The GPU seconds are an ESTIMATE, not a measurement (this machine has no GPU):

    GPU seconds = FLOPs / ASSUMED_GPU_FLOPS_PER_SECOND + steps x ASSUMED_STEP_OVERHEAD_S + ASSUMED_REQUEST_OVERHEAD_S
    ZeroGPU duration = ceil(SAFETY_FACTOR x GPU seconds), within [MIN_DURATION_S, MAX_DURATION_S]

ZeroGPU charges a visitor's quota the duration asked times its hardware's `duration_factor`
(spaces 0.51.3: 1.0 on an H200, 1.5 on an RTX PRO 6000 below the xlarge size): QUOTA_FACTOR.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from ..core.classifier import Classifier
from ..core.classifier_inverters import ClassifierInverterStack
from ..core.classifier_stages import CLASSIFIER_STAGE_SOURCES
from ..core.detector import Detector
from ..core.inverters import InverterStack
from ..core.reconstruct import reconstruct
from ..core.stages import STAGE_SOURCES, Source
from .forward import batch_features, needs_backbone_only

# Assumptions behind the GPU estimate (stated, not measured): a ZeroGPU slice sustains far below
# its peak on small fp32 batches, so these are deliberately pessimistic round numbers.
ASSUMED_GPU_FLOPS_PER_SECOND = 20e12  # sustained fp32/TF32 throughput on convolutions and matmuls
ASSUMED_STEP_OVERHEAD_S = 0.01  # kernel launches, the optimiser's update, Python, per optimisation step
ASSUMED_REQUEST_OVERHEAD_S = 3.0  # attaching the GPU, moving results back, post-processing
SAFETY_FACTOR = 1.5
MIN_DURATION_S, MAX_DURATION_S = 10, 120  # a visitor's ZeroGPU day is 120 s
QUOTA_FACTOR = 1.5  # spaces 0.51.3, zero/configs.json: duration_factor of the RTX PRO 6000 (H200: 1.0)


@dataclass(frozen=True)
class ModelCost:
    """FLOPs of one image's capture, optimisation steps and learned reconstruction for one model and size."""

    capture_flops: float
    full_step_flops: float
    backbone_step_flops: float
    reconstruction_flops: float  # 0 for a model without inverters

    def step_flops(self, sources: Iterable[Source], images: int = 1) -> float:
        """One optimisation step of `images` images optimised against each of `sources`, in one batch."""
        return images * sum(self.backbone_step_flops if needs_backbone_only(s) else self.full_step_flops for s in sources)

    def request_flops(self, images: int = 1, reconstructions: int = 0, steps: int = 0,
                      sources: Iterable[Source] = ()) -> float:
        """A request: capture `images`, `reconstructions` learned reconstructions, `steps` steps against `sources`."""
        flops = images * self.capture_flops + reconstructions * self.reconstruction_flops
        return flops + steps * self.step_flops(sources, images) if steps else flops


def gpu_seconds(flops: float, steps: int = 0) -> float:
    """ESTIMATED GPU seconds of a request of `flops` with `steps` optimisation steps (assumptions above)."""
    return flops / ASSUMED_GPU_FLOPS_PER_SECOND + steps * ASSUMED_STEP_OVERHEAD_S + ASSUMED_REQUEST_OVERHEAD_S


def zero_gpu_duration(flops: float, steps: int = 0) -> int:
    """Seconds to pass to @spaces.GPU(duration=...): the estimate with a safety factor, within ZeroGPU's limits."""
    return int(min(MAX_DURATION_S, max(MIN_DURATION_S, math.ceil(SAFETY_FACTOR * gpu_seconds(flops, steps)))))


def count_flops(function: Callable[[], object]) -> float:
    """Floating-point operations of one call (forward and backward ops alike)."""
    with FlopCounterMode(display=False) as counter:
        function()
    return float(counter.get_total_flops())


def measure_cost(detector: Detector, inverters: InverterStack | None = None) -> ModelCost:
    """Count a model's FLOPs at its working size on a CPU copy with random weights (same architecture)."""
    config = copy.deepcopy(detector.config)
    config.use_pretrained_backbone = False  # FLOPs need the architecture only: never fetch weights
    standin = Detector(detector.family.model_class(config), detector.working_size)
    height, width = detector.working_size
    pixels = torch.full((1, 3, height, width), 0.5)
    mask = torch.ones(1, height, width, dtype=torch.long)

    def capture():
        with torch.no_grad():
            standin.model(pixel_values=standin.normalise(pixels), pixel_mask=mask)

    def step(source: Source):
        image = pixels.clone().requires_grad_(True)
        batch_features(standin, image, mask, [source])[0].pow(2).sum().backward()

    reconstruction = 0.0
    if inverters is not None:
        stack = InverterStack(inverters.config)
        representations = standin.capture(standin.preprocess([Image.new("RGB", (width, height), (128, 128, 128))]))
        with torch.no_grad():
            reconstruction = count_flops(lambda: reconstruct(stack, representations, STAGE_SOURCES)) / len(STAGE_SOURCES)
    return ModelCost(count_flops(capture), count_flops(lambda: step(Source("encoder"))),
                     count_flops(lambda: step(Source("backbone"))), reconstruction)



def measure_classifier_cost(classifier: Classifier, inverters: ClassifierInverterStack | None = None) -> ModelCost:
    """Count a classifier's FLOPs per capture and per learned reconstruction on a CPU copy with random weights
    (same architecture); it is never optimised, so its step FLOPs are 0."""
    standin = Classifier(classifier.family.model_class(classifier.config)(copy.deepcopy(classifier.config)))
    pixels = torch.full((1, 3, *classifier.image_size), 0.5)
    with torch.no_grad():
        capture = count_flops(lambda: standin.forward_stages(pixels))
        reconstruction = 0.0
        if inverters is not None:
            stack, representations = ClassifierInverterStack(inverters.config), standin.forward_stages(pixels)
            reconstruction = count_flops(lambda: [stack.invert(representations, source) for source in CLASSIFIER_STAGE_SOURCES])
    return ModelCost(capture, 0.0, 0.0, reconstruction / len(CLASSIFIER_STAGE_SOURCES))
