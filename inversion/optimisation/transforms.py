"""Random transforms applied to the image before the detector sees it (Lucid-style robustness priors).

A reconstruction must keep matching the target features when it is shifted by a few pixels, so
it cannot rely on pixel-exact, high-frequency patterns. Shifts stay well below the detector's
stride, so the features stay aligned with the target grid.
"""

from __future__ import annotations

import torch
from torch import nn


class Jitter(nn.Module):
    """Shift each image by up to `pixels` in x and y (edges replicated), a new shift every call."""

    def __init__(self, pixels: int, generator: torch.Generator | None = None):
        super().__init__()
        self.pixels = int(pixels)
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.pixels <= 0:
            return images
        shift = self.pixels
        height, width = images.shape[-2:]
        padded = nn.functional.pad(images, (shift, shift, shift, shift), mode="replicate")
        offsets = torch.randint(0, 2 * shift + 1, (len(images), 2), generator=self.generator).tolist()
        return torch.stack([padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets)])


def make_transform(jitter: int = 0, generator: torch.Generator | None = None) -> nn.Module:
    """The transforms a config asks for (identity when none)."""
    return Jitter(jitter, generator) if jitter > 0 else nn.Identity()
