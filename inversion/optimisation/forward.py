"""The detector's differentiable forward for a batch whose images each target one source.

Images that target the backbone (or encoder layer 0, the same tensor) only run the backbone and
the input projections; the others run the whole DETR (`Detector.forward_stages`). Both groups
share one call each, whatever the number of images.
"""

from __future__ import annotations

import torch

from ..core.detector import Detector
from ..core.stages import Source
from .objectives import source_features


def needs_backbone_only(source: Source) -> bool:
    """True when the source's tensor is the projected backbone map."""
    return source.stage == "backbone" or (source.stage == "encoder" and source.layer == 0)


def batch_features(detector: Detector, pixels: torch.Tensor, pixel_mask: torch.Tensor,
                   sources: list[Source]) -> list[torch.Tensor]:
    """Image i's flat features for sources[i] (differentiable), running only what each needs."""
    shallow = [i for i, source in enumerate(sources) if needs_backbone_only(source)]
    deep = [i for i, source in enumerate(sources) if not needs_backbone_only(source)]
    features: list[torch.Tensor | None] = [None] * len(sources)
    if shallow:
        levels = detector.backbone_levels(pixels[shallow], pixel_mask[shallow])
        for row, i in enumerate(shallow):
            # the backbone stage is d x h x w per level; encoder layer 0 holds the same values as tokens x d
            features[i] = torch.cat([(level[row] if sources[i].stage == "backbone" else level[row].flatten(1).T).flatten()
                                     for level in levels])
    if deep:
        representations = detector.forward_stages(pixels[deep], pixel_mask[deep])
        for row, i in enumerate(deep):
            features[i] = source_features(representations, sources[i])[row]
    return features
