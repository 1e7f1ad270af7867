"""The modular objective trains each inverse module against its own stage's target, and nothing else."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from inversion.core.errors import UserFacingError
from inversion.core.stages import STAGES
from inversion.testing import random_image
from inversion.training.networks import ClassifierNetwork, DetectorNetwork, with_defaults
from inversion.training.objectives import (
    DEFAULT_FEATURE_WEIGHT,
    ModularObjective,
    PatchCritic,
    adversarial_losses,
    feature_loss,
    pixel_mask,
)
from inversion.training.trainer import TrainingConfig, build_objective

# What each inverse module must reproduce (docs/method.md, "Training: modular").
TARGETS = {
    "backbone": lambda reps: reps.pixels,
    "encoder": lambda reps: reps.encoder[0],  # the projected backbone tokens
    "decoder": lambda reps: reps.encoder[-1],  # the final encoder tokens
    "prediction": lambda reps: reps.decoder[-1],  # the final decoder output
}
# A plausible wrong target of the same shape for each.
WRONG = {
    "backbone": lambda reps: 1 - reps.pixels,
    "encoder": lambda reps: reps.encoder[-1],
    "decoder": lambda reps: reps.encoder[0],
    "prediction": lambda reps: -reps.decoder[-1],
}


class Oracle(nn.Module):
    """An inverse module that ignores its input and returns a fixed tensor."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.output = output

    def forward(self, *inputs, **options):
        return self.output

    def encode(self, *inputs):
        """The inverse prediction's input encoding: not needed by an oracle."""
        return None


@pytest.mark.parametrize("stage", TARGETS)
def test_each_inverse_is_trained_against_its_own_target(tiny_detector, tiny_stack, stage):
    reps = tiny_detector.capture([random_image(64, 96), random_image(40, 96, seed=2)])
    objective = ModularObjective(tiny_stack, (stage,))
    setattr(tiny_stack, stage, Oracle(TARGETS[stage](reps)))
    assert objective(reps)[stage] == pytest.approx(0.0, abs=1e-10)
    setattr(tiny_stack, stage, Oracle(WRONG[stage](reps)))
    assert objective(reps)[stage] > 1e-3


def padded_capture(detector):
    """Two images on the detector's canvas, the second with padding below it."""
    return detector.capture([random_image(64, 96), random_image(40, 96, seed=2)])


def test_the_feature_term_is_zero_for_the_original_image_whatever_lies_on_the_padding(tiny_detector):
    reps = padded_capture(tiny_detector)
    overhanging = torch.nn.functional.pad(reps.pixels + (1 - pixel_mask(reps)) * 0.7, (0, 8, 0, 8), value=0.3)
    assert feature_loss(overhanging, reps, tiny_detector.backbone_levels) == pytest.approx(0.0, abs=1e-10)
    assert feature_loss(1 - reps.pixels, reps, tiny_detector.backbone_levels) > 1e-3


def test_the_feature_term_is_relative_so_a_weight_means_the_same_at_any_feature_scale(tiny_detector):
    reps = padded_capture(tiny_detector)
    scaled = replace(reps, backbone=10 * reps.backbone, extra_levels=[10 * level for level in reps.extra_levels])
    ten_times = lambda pixels, mask: [10 * level for level in tiny_detector.backbone_levels(pixels, mask)]  # noqa: E731
    reconstruction = 0.9 * reps.pixels + 0.05
    plain = feature_loss(reconstruction, reps, tiny_detector.backbone_levels)
    assert float(feature_loss(reconstruction, scaled, ten_times)) == pytest.approx(float(plain), rel=1e-4) and plain > 1e-4


def test_the_feature_term_reaches_the_inverse_backbone_through_the_frozen_detector(tiny_detector, tiny_stack):
    reps = padded_capture(tiny_detector)
    weight = 3.0
    with_features = ModularObjective(tiny_stack, ("backbone",), weight, tiny_detector.backbone_levels)
    added = with_features(reps)["backbone"] - ModularObjective(tiny_stack, ("backbone",))(reps)["backbone"]
    expected = feature_loss(tiny_stack.backbone(reps.backbone), reps, tiny_detector.backbone_levels)
    assert float(added.detach()) == pytest.approx(weight * float(expected.detach()), rel=1e-5) and float(expected.detach()) > 0
    assert added.requires_grad
    gradients = torch.autograd.grad(added, list(tiny_stack.backbone.parameters()), allow_unused=True)
    assert all(gradient is not None and gradient.abs().sum() > 0 for gradient in gradients)
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in tiny_detector.parameters())


def test_a_feature_term_needs_the_backbone_map_and_a_non_negative_weight(tiny_stack):
    with pytest.raises(ValueError, match="backbone_levels"):
        ModularObjective(tiny_stack, feature_weight=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        ModularObjective(tiny_stack, feature_weight=-1.0, backbone_levels=lambda pixels, mask: [pixels])


def test_the_trainer_gives_the_feature_weight_to_the_modular_objective_and_refuses_it_end_to_end(tiny_detector, tiny_detector_folder):
    config = TrainingConfig(data="", detector=str(tiny_detector_folder), feature_weight=2.0)
    objective = build_objective(config, DetectorNetwork(tiny_detector))
    assert objective.feature_weight == 2.0 and objective.backbone_levels == tiny_detector.backbone_levels
    assert objective.stages == STAGES  # none named: all four
    with pytest.raises(UserFacingError, match="--objective modular"):
        build_objective(replace(config, objective="end_to_end"), DetectorNetwork(tiny_detector))


def test_the_patch_critic_trains_on_its_own_loss_and_the_inverse_backbone_on_fooling_it(tiny_detector, tiny_stack):
    reps = padded_capture(tiny_detector)
    torch.manual_seed(0)
    objective = ModularObjective(tiny_stack, ("backbone",), adversarial_weight=0.5)
    losses = objective(reps)
    fooling, _ = adversarial_losses(objective.critic, tiny_stack.backbone(reps.backbone), reps)
    plain = ModularObjective(tiny_stack, ("backbone",))(reps)["backbone"]
    assert float((losses["backbone"] - plain).detach()) == pytest.approx(0.5 * float(fooling.detach()), rel=1e-5)
    critic, backbone = list(objective.critic.parameters()), list(tiny_stack.backbone.parameters())
    assert all(g is None for g in torch.autograd.grad(losses["backbone"], critic, allow_unused=True, retain_graph=True))
    assert all(g is None for g in torch.autograd.grad(losses["critic"], backbone, allow_unused=True, retain_graph=True))
    assert all(g is not None for g in torch.autograd.grad(losses["critic"], critic, allow_unused=True))
    assert set(objective.parameter_groups()) == {"backbone", "critic"} and set(objective.helpers()) == {"critic"}


def test_the_patch_critic_learns_to_tell_originals_from_blurred_reconstructions_and_ignores_padding(tiny_detector):
    reps = padded_capture(tiny_detector)
    blurred = torch.nn.functional.avg_pool2d(reps.pixels, 5, stride=1, padding=2)
    torch.manual_seed(0)
    critic = PatchCritic()
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        _, judging = adversarial_losses(critic, blurred, reps)
        first = float(judging.detach()) if first is None else first
        optimizer.zero_grad()
        judging.backward()
        optimizer.step()
    with torch.no_grad():
        fooling, judging = adversarial_losses(critic, blurred, reps)
        assert float(judging) < first / 2, (first, float(judging))
        overhanging = torch.nn.functional.pad(blurred + (1 - pixel_mask(reps)) * 0.7, (0, 8, 0, 8), value=0.3)
        assert adversarial_losses(critic, overhanging, reps)[0] == pytest.approx(float(fooling), rel=1e-5)


def test_a_detectors_modular_run_takes_the_studys_feature_weight_unless_told_and_zero_is_the_papers(tiny_detector_folder):
    config = TrainingConfig(data="", detector=str(tiny_detector_folder))
    assert with_defaults(config, DetectorNetwork).feature_weight == DEFAULT_FEATURE_WEIGHT > 0
    assert with_defaults(replace(config, feature_weight=0.0), DetectorNetwork).feature_weight == 0
    assert with_defaults(replace(config, objective="end_to_end"), DetectorNetwork).feature_weight == 0
    assert with_defaults(config, ClassifierNetwork).feature_weight == 0
