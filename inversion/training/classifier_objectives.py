"""The modular objective for a classifier's inverse modules (ViT, DeiT, Swin), as the detection one is.

Every inverse module learns alone to map its stage back to the previous one, against the frozen classifier's
own tensor: the head from the logits to the pooled tokens, the inverse pooling to the last encoder entry,
each inverse level from its level's output to its input (Swin: one per stage, each with its own term), and
the learned patch inverse to the pixels (MSE in normalised pixel space, as the detection objective's). The
graphs are independent, so one backward gives each module exactly its own gradient, and the trainer's
optimizers (`trainer.build_optimizers`, one per stage) apply.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.classifier_inverters import ClassifierInverterStack
from ..core.classifier_stages import CLASSIFIER_STAGES, ClassifierRepresentations
from ..core.images import normalise

DEFAULT_CLASSIFIER_LEARNING_RATES = {"embedding": 2e-3, "encoder": 5e-4, "pooled": 5e-4, "logits": 1e-3}


class ClassifierModularObjective(nn.Module):
    """Each inverse module of a classifier against its local target; `stages` chooses which train."""

    def __init__(self, stack: ClassifierInverterStack, stages: tuple[str, ...] = CLASSIFIER_STAGES):
        super().__init__()
        unknown = set(stages) - set(CLASSIFIER_STAGES)
        if unknown or not stages:
            raise ValueError(f"stages must be some of {', '.join(CLASSIFIER_STAGES)}, not {', '.join(stages) or 'none'}.")
        self.stack = stack
        self.stages = stages

    def forward(self, representations: ClassifierRepresentations) -> dict[str, torch.Tensor]:
        return {stage: getattr(self, f"_{stage}_loss")(representations) for stage in self.stages}

    def level_losses(self, reps: ClassifierRepresentations) -> list[torch.Tensor]:
        """Each inverse level's own term: its level's output inverted, against its level's input."""
        return [nn.functional.mse_loss(inverse(reps.encoder[level.end]), reps.encoder[level.start])
                for inverse, level in zip(self.stack.encoder, self.stack.levels)]

    def _embedding_loss(self, reps: ClassifierRepresentations) -> torch.Tensor:
        return nn.functional.mse_loss(normalise(self.stack.embedding(reps.embedding)), normalise(reps.pixels))

    def _encoder_loss(self, reps: ClassifierRepresentations) -> torch.Tensor:
        return sum(self.level_losses(reps))

    def _pooled_loss(self, reps: ClassifierRepresentations) -> torch.Tensor:
        return nn.functional.mse_loss(self.stack.pooled(reps.pooled), reps.encoder[-1])

    def _logits_loss(self, reps: ClassifierRepresentations) -> torch.Tensor:
        return nn.functional.mse_loss(self.stack.logits(reps.logits), reps.pooled)

    def stacks(self) -> dict[str, ClassifierInverterStack]:
        """The trained stack by the name it is saved under ("" = the checkpoint folder itself)."""
        return {"": self.stack}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """One optimizer's parameters per loss."""
        return {stage: list(self.stack.module(stage).parameters()) for stage in self.stages}

    def helpers(self) -> dict[str, nn.Module]:
        """No helpers: every trained module is part of the stack."""
        return {}
