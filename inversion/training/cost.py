"""FLOPs of a training step (load-independent, unlike seconds): what the recipe's cost estimate and the headroom
study's books count."""

from __future__ import annotations

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from ..core.detector import Detector
from ..core.inverters import InverterStack
from .objectives import ModularObjective


def training_step_flops(detector: Detector, images: list[Image.Image], stack: InverterStack, feature_weight: float = 0.0,
                        adversarial_weight: float = 0.0) -> tuple[int, int]:
    """FLOPs of one modular training step on `images`: the frozen detector's capture, and the inverse modules'
    forward and backward (through the detector's backbone with a feature term, through a patch critic with an
    adversarial one)."""
    with torch.no_grad(), FlopCounterMode(display=False) as capture:
        representations = detector.capture(images)
    objective = ModularObjective(stack, feature_weight=feature_weight, backbone_levels=detector.backbone_levels,
                                 adversarial_weight=adversarial_weight)
    with FlopCounterMode(display=False) as inverses:
        sum(objective(representations).values()).backward()
    return capture.get_total_flops(), inverses.get_total_flops()
