"""Optimisation-based inversion needs no trained inverter and does fit the features."""

import pytest
import torch

from inversion.core.stages import Source
from inversion.experiments.optimise import OptimiseConfig, optimise_inversion
from inversion.testing import random_image


@pytest.mark.parametrize("stage", ["backbone", "encoder"])
def test_optimisation_lowers_the_feature_error_tenfold(tiny_detector, stage):
    reps = tiny_detector.capture([random_image(64, 96)])
    progress = []
    result = optimise_inversion(tiny_detector, reps, Source(stage), config=OptimiseConfig(steps=100),
                                progress=lambda fraction, text: progress.append(fraction))
    assert result.feature_errors[-1] <= result.feature_errors[0] / 10
    assert result.image.shape == (3, 64, 96) and 0 <= result.image.min() and result.image.max() <= 1
    assert progress[-1] == 1.0 and len(progress) == 100


def test_padding_stays_out_of_the_optimised_image(tiny_detector):
    reps = tiny_detector.capture([random_image(64, 40)])
    result = optimise_inversion(tiny_detector, reps, Source("encoder", 1), config=OptimiseConfig(steps=3))
    assert result.image.shape == (3, *reps.content_sizes[0])
    assert not any(p.grad is not None for p in tiny_detector.model.parameters())


def test_shapes_backbone_inversion_is_closer_to_the_input_than_a_blank_image():
    from inversion.core.registry import load_detector, model_specs
    from inversion.shapes.world import generate_sample

    spec = model_specs()["shapes"]
    detector = load_detector(spec)
    image, _ = generate_sample(3)
    reps = detector.capture([image])
    result = optimise_inversion(detector, reps, Source("backbone"), config=OptimiseConfig(steps=300, learning_rate=0.05))
    target = reps.pixels[0]
    blank = torch.full_like(target, 0.5)
    assert torch.mean((result.image - target) ** 2) < torch.mean((blank - target) ** 2)
