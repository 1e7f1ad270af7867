"""Deformable DETR (Zhu et al. 2021): multi-scale deformable attention, optionally two-stage.

The backbone stage is several maps: each chosen CNN stage projected to d channels (a 1x1 conv and
GroupNorm per level), and, when the config asks for more levels than the CNN gives, stride-2 3x3
convolutions on the last one; the grid is the finest. The encoder runs on the tokens of every level
(finest first, N = the sum of h_l x w_l) with deformable self-attention, the decoder's queries attend
to them the same way; neither layer has a shared norm, and the boxes are refined from reference
points. Two-stage models pick their queries from the encoder's own proposals, which a changed
encoder output therefore changes too. Classes are sigmoid scores.

Deformable attention has no dense weights: each query samples a few points per head and level,
weighted by a softmax. The attention stages spread those points onto one level's grid (the first of at
least 32 pixels a cell; bilinear, the transpose of the sampling) weighted by their attention, so a
detection's or a cell's map shows where it read, every level drawn at its place in the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from transformers import DeformableDetrForObjectDetection

from .base import Family, Sizes, _this_thread_only

SAMPLING_LOCATIONS, SAMPLING_WEIGHTS = 4, 5  # positions of the arguments of MultiScaleDeformableAttention
ATTENTION_STRIDE = 32  # pixels a cell of the grid the attention maps are drawn on, at least


class DeformableDetr(Family):
    name = "Deformable DETR"
    model_types = ("deformable_detr",)
    model_class = DeformableDetrForObjectDetection
    sigmoid_classes = True
    backbone_stages = 3

    def scale_config(self, d_model, stage_channels):
        return dict(num_feature_levels=len(stage_channels) + 1)  # one level more, by a strided conv on the last

    def sizes(self, config) -> Sizes:
        sizes = super().sizes(config)
        queries = config.two_stage_num_proposals if config.two_stage else config.num_queries
        return Sizes(**{**sizes.__dict__, "num_queries": queries, "levels": config.num_feature_levels})

    def level_modules(self, model):
        return list(model.model.input_proj)

    def backbone_levels(self, model, pixels, pixel_mask):
        features = model.model.backbone(self.normalise(pixels), pixel_mask)
        projections = self.level_modules(model)
        levels = [projection(feature_map) for projection, (feature_map, _) in zip(projections, features)]
        for projection in projections[len(levels):]:
            levels.append(projection(features[-1][0] if len(levels) == len(features) else levels[-1]))
        return levels

    def decoder_states(self, model, output):
        return list(output.decoder_hidden_states)

    def recorder(self, model, attention: bool):
        """With `attention`, each deformable attention's sampling locations and weights, by stage, in layer order."""
        if not attention:
            return nullcontext({})
        modules = {"encoder": [layer.self_attn.attn for layer in model.model.encoder.layers],
                   "decoder": [layer.encoder_attn.attn for layer in model.model.decoder.layers]}
        return sampling_recorded(modules)

    def attention_level(self, model, levels, pixels):
        """The first level of at least 32 pixels a cell (DETR's grid): finer ones would make the encoder's cell-to-cell
        maps too large to keep (a stride-8 grid at 480 x 640 has 4,800 cells)."""
        coarse_enough = [index for index, level in enumerate(levels) if pixels.shape[-1] / level.shape[-1] >= ATTENTION_STRIDE]
        return coarse_enough[0] if coarse_enough else len(levels) - 1

    def attention_maps(self, output, levels, level, recorded):
        """By layer number, the sampling points spread onto the grid of `levels[level]`: the encoder's (its cells'
        queries, B x heads x hw x hw) and the decoder's queries' (B x heads x Q x hw)."""
        size = tuple(levels[level].shape[-2:])
        start = sum(earlier.shape[-2] * earlier.shape[-1] for earlier in levels[:level])
        cells = slice(start, start + size[0] * size[1])
        encoder = {number: spread(locations[:, cells], weights[:, cells], size)
                   for number, (locations, weights) in enumerate(recorded["encoder"], start=1)}
        cross = {number: spread(*entry, size) for number, entry in enumerate(recorded["decoder"], start=1)}
        return encoder, cross


@contextmanager
def sampling_recorded(modules: dict[str, list[nn.Module]]) -> Iterator[dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """The sampling locations and weights the deformable attention modules (by stage, in layer order) compute inside
    the block, in this thread."""
    recorded: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {stage: [] for stage in modules}

    def keeper(stage: str):
        return _this_thread_only(lambda module, args, output: recorded[stage].append(
            (args[SAMPLING_LOCATIONS], args[SAMPLING_WEIGHTS])))

    hooks = [module.register_forward_hook(keeper(stage)) for stage, stage_modules in modules.items() for module in stage_modules]
    try:
        yield recorded
    finally:
        for hook in hooks:
            hook.remove()


def spread(locations: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Deformable attention's sampling points as a dense map over a grid of `size`.

    locations: B x Q x heads x levels x points x 2 (x, y in [0, 1] of the image), weights: B x Q x heads x
    levels x points. Each point's weight goes to the four cells around it with the bilinear weights
    `grid_sample` reads them with (align_corners=False; points outside the grid drop). Returns
    B x heads x Q x (h * w).
    """
    height, width = size
    batch, queries, heads = weights.shape[:3]
    locations = locations.flatten(3, 4)
    weights = weights.flatten(3, 4)
    x = locations[..., 0] * width - 0.5
    y = locations[..., 1] * height - 0.5
    left, top = x.floor(), y.floor()
    dense = weights.new_zeros(batch, queries, heads, height * width)
    for column, column_weight in ((left, 1 - (x - left)), (left + 1, x - left)):
        for row, row_weight in ((top, 1 - (y - top)), (top + 1, y - top)):
            inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
            index = (row.clamp(0, height - 1) * width + column.clamp(0, width - 1)).long()
            dense.scatter_add_(-1, index, weights * column_weight * row_weight * inside)
    return dense.transpose(1, 2)
