"""Where the detector looks: the attention weights of one run over its feature grid.

transformers returns attention weights (`output_attentions`) only from its eager attention (its SDPA
path returns none), so recording switches the model to eager for good: the two agree to float
precision and every later run stays consistent. The weights come from the same forward as an
ordinary capture or a rerun from an intermediate point (`Detector.capture(..., attention=True)`).

Layers are numbered 1..L as in `Representations`. Weights over padded cells are zero (the padding mask),
so each query's map, and each cell's map, sums to 1 over the grid for every head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from ..core.detector import Detector
from ..core.rerun import run_from
from ..core.stages import Representations
from .grid import Box, box_coverage


@dataclass
class Attention:
    """The attention weights of one DETR run, by layer number (a skipped layer has none).

    encoder: B x heads x hw x hw per layer, row = the attending cell, column = the attended cell.
    cross: B x heads x Q x hw per decoder layer, each query's attention over the encoder output.
    grid_size: the grid (h, w) the hw cells flatten (row-major).
    """

    encoder: dict[int, torch.Tensor] = field(default_factory=dict)
    cross: dict[int, torch.Tensor] = field(default_factory=dict)
    grid_size: tuple[int, int] = (0, 0)

    def query_map(self, image: int, query: int, layer: int | None = None, head: int | None = None) -> torch.Tensor:
        """h x w: a query's cross-attention in decoder `layer` (default the last), mean over heads unless `head`."""
        return self._grid(self._pick(self.cross, layer, "decoder")[image, :, query], head)

    def point_map(self, image: int, cell: tuple[int, int], layer: int | None = None, head: int | None = None) -> torch.Tensor:
        """h x w: the encoder self-attention from grid `cell` (row, column) in `layer` (default the last)."""
        return self._grid(self._pick(self.encoder, layer, "encoder")[image, :, cell[0] * self.grid_size[1] + cell[1]], head)

    def _grid(self, weights: torch.Tensor, head: int | None) -> torch.Tensor:
        """heads x hw weights as one h x w map: their mean over heads, or one head's."""
        chosen = weights.mean(0) if head is None else weights[head]
        return chosen.reshape(self.grid_size)

    @staticmethod
    def _pick(layers: dict[int, torch.Tensor], layer: int | None, stage: str) -> torch.Tensor:
        if layer is None:
            layer = max(layers)
        if layer not in layers:
            raise ValueError(f"No {stage} attention recorded for layer {layer}; recorded: {sorted(layers)}.")
        return layers[layer]


def capture_attention(detector: Detector, images: list[Image.Image]) -> tuple[Representations, Attention]:
    """`Detector.capture` with the attention weights of the same forward pass."""
    representations = detector.capture(images, attention=True)
    return representations, _attention(representations)


def rerun_attention(detector: Detector, base: Representations, **changes) -> tuple[Representations, Attention]:
    """`run_from(detector, base, **changes)` with its attention weights (none for layers it did not run)."""
    representations = run_from(detector, base, attention=True, **changes)
    return representations, _attention(representations)


def detection_queries(detector: Detector, representations: Representations, image: int,
                      threshold: float | None = None) -> list[int]:
    """The query behind each of `representations.detections[image]`, in the same order (by falling score)."""
    return detector.detection_queries(representations, image, threshold)


def share_in_box(attention_map: torch.Tensor, representations: Representations, image: int, box: Box) -> float:
    """The share of an h x w map's mass inside a box, each cell's mass spread evenly over its pixels."""
    coverage = box_coverage(representations, image, box, tuple(attention_map.shape)).to(attention_map.device)
    return float((attention_map * coverage).sum() / attention_map.sum())


def _attention(representations: Representations) -> Attention:
    """The attention weights a forward recorded, on its grid."""
    return Attention(dict(representations.encoder_attention), dict(representations.cross_attention),
                     representations.attention_grid)
