"""What the optimisation minimises, per image of the batch (so images never compete).

    relative feature error  ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2   (phi: the detector up to a source)
  + tv_weight    * total variation (mean squared difference of neighbouring pixels, inside the image)
  + range_weight * squared distance of pixel values outside [0, 1]
  + neutral_weight * squared distance from a neutral colour (the features say little about
    overall colour and contrast; this keeps what they do not constrain near the prior's mean)
"""

from __future__ import annotations

import torch

from ..core.stages import Representations, Source


def source_features(representations: Representations, source: Source) -> torch.Tensor:
    """The tensor a source names, one flat vector per image (predictions: logits then boxes; a multi-scale
    backbone: every level, finest first)."""
    tensor = representations.tensor(source)
    if source.stage == "prediction":
        tensor = torch.cat(tensor, dim=-1)
    if isinstance(tensor, list):
        return torch.cat([level.flatten(1) for level in tensor], 1)
    return tensor.flatten(1)


def relative_error(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per row: squared error over the target's squared norm (0 = features match, 1 = as far as zero)."""
    energy = targets.pow(2).sum(-1).clamp_min(1e-12)
    return (features - targets).pow(2).sum(-1) / energy


def total_variation(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image: mean squared difference of vertical and horizontal neighbours, both inside `masks`."""
    vertical_mask = masks[..., 1:, :] * masks[..., :-1, :]
    horizontal_mask = masks[..., :, 1:] * masks[..., :, :-1]
    vertical = ((images[..., 1:, :] - images[..., :-1, :]).pow(2) * vertical_mask).sum((1, 2, 3))
    horizontal = ((images[..., :, 1:] - images[..., :, :-1]).pow(2) * horizontal_mask).sum((1, 2, 3))
    channels = images.shape[1]
    return vertical / (channels * vertical_mask.sum((1, 2, 3))).clamp_min(1) + horizontal / (
        channels * horizontal_mask.sum((1, 2, 3))
    ).clamp_min(1)


def range_penalty(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image: mean squared distance of values outside [0, 1], inside `masks`."""
    outside = (torch.relu(images - 1) + torch.relu(-images)).pow(2) * masks
    return outside.sum((1, 2, 3)) / (images.shape[1] * masks.sum((1, 2, 3))).clamp_min(1)


def neutral_penalty(images: torch.Tensor, colour: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image: mean squared distance from `colour` (3 values), inside `masks`."""
    deviation = (images - colour.view(1, 3, 1, 1)).pow(2) * masks
    return deviation.sum((1, 2, 3)) / (images.shape[1] * masks.sum((1, 2, 3))).clamp_min(1)
