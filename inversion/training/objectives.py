"""The two training objectives for inverse modules, as modules that return their losses.

Modular (the paper's method): every inverse module learns alone to map its stage back to the
previous stage, against the frozen detector's own tensor; the four graphs are independent, so
one backward gives each module exactly its own gradient.
End-to-end (the baseline): one separate chain per stage, trained on pixel error only.

The inverse backbone's loss is pixel MSE (the paper's), plus, with a `feature_weight`, a
feature-matching term through the frozen detector's own backbone: the projected backbone map of
the reconstruction against the original's, which pixel MSE's reward for blur does not earn. The term
is a relative error (over the original map's mean square), so a weight means the same for any detector.
With an `adversarial_weight`, a patch critic trains beside the inverse backbone and its hinge loss joins the
inverse backbone's: pictures whose patches the critic cannot tell from the originals'.

Losses skip padding: masked means over real pixels and real grid cells only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from ..core.images import normalise
from ..core.inverters import InverterConfig, InverterStack
from ..core.stages import STAGES, Representations, Source

DEFAULT_LEARNING_RATES = {"backbone": 2e-3, "encoder": 5e-4, "decoder": 3e-4, "prediction": 1e-3}
# A detector's modular objective: the headroom study's choice (checkpoints/shapes/headroom), calibrated there so that
# the relative term is about as large as pixel MSE at the shipped Shapes inverse backbone (0.066 x 1.65 vs 0.12): 5 x the
# absolute term its first three feature points trained with, over the map's mean square (0.331 on 256 training images).
DEFAULT_FEATURE_WEIGHT = 1.65
CRITIC = "critic"  # the patch critic's loss and optimizer (beside the stages')
CRITIC_LEARNING_RATE = 2e-4


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over positions where `mask` (broadcastable, 1 = real) is set."""
    mask = mask.to(values.dtype).expand_as(values)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over positions where `mask` (broadcastable, 1 = real) is set."""
    return masked_mean((prediction - target) ** 2, mask)


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
    return sum(masked_mse(feature, level, level_mask[:, None]) / masked_mean(level**2, level_mask[:, None])
               for feature, level, level_mask in zip(features, representations.levels, representations.level_masks))


class PatchCritic(nn.Module):
    """A patch critic (PatchGAN, Isola et al. 2017): scores every 38 x 38 patch (its convolutions' field) of a
    normalised image as an original's (high) or a reconstruction's (low), one score per 8 x 8 cell
    (B x 1 x H/8 x W/8). Group norm, not batch norm, so that it holds no running state."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, kernel_size=4, stride=2, padding=1), nn.GroupNorm(8, 2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, kernel_size=4, stride=2, padding=1), nn.GroupNorm(8, 4 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, kernel_size=3, padding=1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def adversarial_losses(critic: PatchCritic, images: torch.Tensor, representations: Representations) -> tuple[torch.Tensor, torch.Tensor]:
    """Hinge losses over the cells that show the image: the reconstruction's (to be scored as an original,
    through the critic's weights held fixed) and the critic's (originals high, detached reconstructions low)."""
    height, width = representations.pixels.shape[-2:]
    mask = pixel_mask(representations)
    reconstructed = normalise(images[..., :height, :width]) * mask
    original = normalise(representations.pixels) * mask
    fixed = {name: parameter.detach() for name, parameter in critic.named_parameters()}
    scores = functional_call(critic, fixed, (reconstructed,))
    cells = nn.functional.interpolate(mask, size=scores.shape[-2:], mode="area") > 0.5
    fooling = -masked_mean(scores, cells)
    judging = (masked_mean(torch.relu(1 - critic(original)), cells)
               + masked_mean(torch.relu(1 + critic(reconstructed.detach())), cells))
    return fooling, judging


class ModularObjective(nn.Module):
    """Each inverse module against its local target (docs/method.md, "Training: modular").

    `stages` chooses which modules train (all four by default); modules train independently, so
    any subset can be trained, e.g. the transformer inverses alone from cached detector targets.
    With `feature_weight` > 0 the inverse backbone's loss adds that times `feature_loss`, computed
    with `backbone_levels` (the frozen detector's `Detector.backbone_levels`); with `adversarial_weight`
    > 0, that times the hinge loss of a `PatchCritic` that trains beside it (its own loss: "critic").
    """

    def __init__(self, stack: InverterStack, stages: tuple[str, ...] = STAGES, feature_weight: float = 0.0,
                 backbone_levels: BackboneMaps | None = None, adversarial_weight: float = 0.0):
        super().__init__()
        for name, weight in (("feature_weight", feature_weight), ("adversarial_weight", adversarial_weight)):
            if weight < 0:
                raise ValueError(f"{name} must be >= 0, got {weight}.")
        if feature_weight and backbone_levels is None:
            raise ValueError("A feature-matching term needs the detector's backbone_levels.")
        self.stack = stack
        self.stages = stages
        self.feature_weight = feature_weight
        self.backbone_levels = backbone_levels
        self.adversarial_weight = adversarial_weight
        self.critic = PatchCritic() if adversarial_weight and "backbone" in stages else None

    def forward(self, representations: Representations) -> dict[str, torch.Tensor]:
        losses = {}
        for stage in self.stages:
            if stage == "backbone":
                losses.update(self._backbone_losses(representations))
            else:
                losses[stage] = getattr(self, f"_{stage}_loss")(representations)
        return losses

    def _backbone_losses(self, reps: Representations) -> dict[str, torch.Tensor]:
        images = self.stack.backbone(reps.levels)
        loss = pixel_loss(images, reps)
        if self.feature_weight:
            loss = loss + self.feature_weight * feature_loss(images, reps, self.backbone_levels)
        if self.critic is None:
            return {"backbone": loss}
        fooling, judging = adversarial_losses(self.critic, images, reps)
        return {"backbone": loss + self.adversarial_weight * fooling, CRITIC: judging}

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
        groups = {stage: list(self.stack.module(stage).parameters()) for stage in self.stages}
        return groups | ({CRITIC: list(self.critic.parameters())} if self.critic is not None else {})

    def helpers(self) -> dict[str, nn.Module]:
        """Modules that train beside the stack and are not part of the inverters (saved with the run to resume)."""
        return {CRITIC: self.critic} if self.critic is not None else {}


class EndToEndObjective(nn.Module):
    """A separate chain per stage, trained on pixel error only (docs/method.md, "Training: end-to-end")."""

    def __init__(self, config: InverterConfig, start: InverterStack | None = None):
        """Chains of `config`'s sizes, each a copy of `start`'s weights when given (a fine-tune of modular inverters)."""
        super().__init__()
        self.stages = STAGES  # every chain has a loss
        self.chains = nn.ModuleDict({stage: copy.deepcopy(start) if start is not None else InverterStack(config)
                                     for stage in STAGES})

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

    def helpers(self) -> dict[str, nn.Module]:
        """No helpers: every trained module is part of a chain."""
        return {}
