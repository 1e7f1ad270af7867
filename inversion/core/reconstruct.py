"""Reconstruct images from captured representations: every source through one cascade of the inverters."""

from __future__ import annotations

import torch

from .inverters import InverterStack
from .stages import STAGE_SOURCES, Representations, Source


@torch.no_grad()
def reconstruct(
    stack: InverterStack, representations: Representations, sources: list[Source] = STAGE_SOURCES
) -> dict[Source, list[torch.Tensor]]:
    """Invert each source down to pixels, all sources in one cascade through the inverters.

    Returns, per source, one 3 x h x w tensor in [0, 1] per image: the padding cropped off, so
    each image has its input's aspect ratio (at the working resolution).
    """
    feeds = []
    for source in sources:
        tensor = representations.tensor(source)
        if source.stage == "prediction":
            tensor = stack.prediction.encode(*tensor)
        feeds.append((source.inverse, tensor))
    images = stack.invert(feeds, representations.level_masks)
    return {
        source: [image[:, :height, :width] for image, (height, width) in zip(batch, representations.content_sizes)]
        for source, batch in zip(sources, images)
    }


def input_image(representations: Representations, index: int = 0) -> torch.Tensor:
    """The detector's view of image `index` (working resolution, padding cropped), 3 x h x w."""
    height, width = representations.content_sizes[index]
    return representations.pixels[index, :, :height, :width]
