"""The two training objectives for inverse modules, as modules that return their losses.

Modular (the paper's method): every inverse module learns alone to map its stage back to the
previous stage, against the frozen detector's own tensor; the four graphs are independent, so
one backward gives each module exactly its own gradient.
End-to-end (the baseline): one separate chain per stage, trained on pixel error only.

The inverse backbone's loss is pixel MSE (the paper's), plus, with a `feature_weight`, a
feature-matching term through the frozen detector's own backbone: the projected backbone map of
the reconstruction against the original's, which pixel MSE's reward for blur does not earn. The term
is a relative error (over the original map's mean square), so a weight means the same for any detector.

Losses skip padding: masked means over real pixels and real grid cells only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..core.images import normalise
from ..core.inverters import InverterConfig, InverterStack
from ..core.stages import STAGES, Representations, Source

DEFAULT_LEARNING_RATES = {"backbone": 2e-3, "encoder": 5e-4, "decoder": 3e-4, "prediction": 1e-3}


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over positions where `mask` (broadcastable, 1 = real) is set."""
    mask = mask.to(prediction.dtype).expand_as(prediction)
    return ((prediction - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)


def pixel_mask(representations: Representations) -> torch.Tensor:
    """B x 1 x H x W, 1 where the canvas shows the image, 0 on padding."""
    batch, _, height, width = representations.pixels.shape
    mask = torch.zeros(batch, 1, height, width, device=representations.pixels.device)
    for index, (content_height, content_width) in enumerate(representations.content_sizes):
        mask[index, :, :content_height, :content_width] = 1
    return mask


def pixel_loss(images: torch.Tensor, representations: Representations) -> torch.Tensor:
    """MSE in DETR's normalised pixel space over the image (the inverse may overhang the canvas)."""
    height, width = representations.pixels.shape[-2:]
    images = images[..., :height, :width]
    return masked_mse(normalise(images), normalise(representations.pixels), pixel_mask(representations))


BackboneMaps = Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]]  # (pixels, pixel mask) -> backbone levels


def feature_loss(images: torch.Tensor, representations: Representations, backbone_levels: BackboneMaps) -> torch.Tensor:
    """Relative squared error between the frozen detector's projected backbone maps of the reconstruction
    (put on the canvas as the original was: zero on padding) and the original's maps: per level, the MSE
    over real cells divided by the original map's mean square there, summed over levels."""
    height, width = representations.pixels.shape[-2:]
    mask = pixel_mask(representations)
    features = backbone_levels(images[..., :height, :width] * mask, mask[:, 0].long())
    return sum(masked_mse(feature, level, level_mask[:, None]) / masked_mse(level, torch.zeros_like(level), level_mask[:, None])
               for feature, level, level_mask in zip(features, representations.levels, representations.level_masks))


class ModularObjective(nn.Module):
    """Each inverse module against its local target (docs/method.md, "Training: modular").

    `stages` chooses which modules train (all four by default); modules train independently, so
    any subset can be trained, e.g. the transformer inverses alone from cached detector targets.
    With `feature_weight` > 0 the inverse backbone's loss adds that times `feature_loss`, computed
    with `backbone_levels` (the frozen detector's `Detector.backbone_levels`).
    """

    def __init__(self, stack: InverterStack, stages: tuple[str, ...] = STAGES, feature_weight: float = 0.0,
                 backbone_levels: BackboneMaps | None = None):
        super().__init__()
        if feature_weight < 0:
            raise ValueError(f"feature_weight must be >= 0, got {feature_weight}.")
        if feature_weight and backbone_levels is None:
            raise ValueError("A feature-matching term needs the detector's backbone_levels.")
        self.stack = stack
        self.stages = stages
        self.feature_weight = feature_weight
        self.backbone_levels = backbone_levels

    def forward(self, representations: Representations) -> dict[str, torch.Tensor]:
        return {stage: getattr(self, f"_{stage}_loss")(representations) for stage in self.stages}

    def _backbone_loss(self, reps: Representations) -> torch.Tensor:
        images = self.stack.backbone(reps.levels)
        loss = pixel_loss(images, reps)
        if self.feature_weight:
            loss = loss + self.feature_weight * feature_loss(images, reps, self.backbone_levels)
        return loss

    def _encoder_loss(self, reps: Representations) -> torch.Tensor:
        inverted = self.stack.encoder(reps.encoder[-1], reps.level_masks)
        return masked_mse(inverted, reps.encoder[0], reps.token_mask[..., None])

    def _decoder_loss(self, reps: Representations) -> torch.Tensor:
        inverted = self.stack.decoder(reps.decoder[-1], reps.level_masks)
        return masked_mse(inverted, reps.encoder[-1], reps.token_mask[..., None])

    def _prediction_loss(self, reps: Representations) -> torch.Tensor:
        inverted = self.stack.prediction(self.stack.prediction.encode(reps.logits, reps.boxes))
        return nn.functional.mse_loss(inverted, reps.decoder[-1])

    def stacks(self) -> dict[str, InverterStack]:
        """The trained stack(s) by the name they are saved under ("" = the checkpoint folder itself)."""
        return {"": self.stack}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """One optimizer's parameters per loss."""
        return {stage: list(self.stack.module(stage).parameters()) for stage in self.stages}


class EndToEndObjective(nn.Module):
    """A separate chain per stage, trained on pixel error only (docs/method.md, "Training: end-to-end")."""

    def __init__(self, config: InverterConfig):
        super().__init__()
        self.chains = nn.ModuleDict({stage: InverterStack(config) for stage in STAGES})

    def forward(self, representations: Representations) -> dict[str, torch.Tensor]:
        reps = representations
        losses = {}
        for stage, chain in self.chains.items():
            tensor = reps.tensor(Source(stage))
            if stage == "prediction":
                tensor = chain.prediction.encode(*tensor)
            (images,) = chain.invert([(stage, tensor)], reps.level_masks)
            losses[stage] = pixel_loss(images, reps)
        return losses

    def stacks(self) -> dict[str, InverterStack]:
        return {f"chain-{stage}": chain for stage, chain in self.chains.items()}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The modules each chain uses: stage k's chain runs the inverses from k down to the backbone."""
        groups = {}
        for position, stage in enumerate(STAGES):
            chain = self.chains[stage]
            groups[stage] = [p for used in STAGES[: position + 1] for p in chain.module(used).parameters()]
        return groups
