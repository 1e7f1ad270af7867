"""The modular objective trains each inverse module against its own stage's target, and nothing else."""

import pytest
import torch
from torch import nn

from inversion.testing import random_image
from inversion.training.objectives import ModularObjective

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
