"""Swin Transformer (Liu et al. 2021): windowed attention on a hierarchy of patch grids.

A p x p convolution embeds each patch, a layer norm follows (and an absolute position embedding when the
config has one): the embedding stage, B x C x h x w (transformers' `hidden_states[0]`). Then S stages; stage s
runs its blocks at width C * 2^s on the grid halved s times (windows of w x w, every second block shifted by
w / 2), and every stage but the last ends with a patch merging (each 2 x 2 neighbourhood concatenated, layer
normed, linearly mapped to twice the width). The encoder's entries are the embedding, then every block's
output of every stage, each merging's output after its stage's blocks; transformers returns only each stage's
merged output (`hidden_states`) and, with `output_hidden_states_before_downsampling`, its last block's, so the
blocks are read by forward hooks. The head reads the average over the final tokens after a layer norm
(the pooled stage, B x 1 x C_S). A level of the inverse is a stage: from its merged output (or last block)
back to its input.

Attention: each block attends within w x w windows of its grid (the grid rolled by w / 2 first in a shifted
block, pairs that the roll brought together from opposite borders masked out). transformers' `output_attentions`
returns a stage's last block's only, window by window; every block's comes from the same forward's blocks (a
hook on each), and is put back on the grid as a B x heads x hw x hw matrix, zero outside each query's window,
the roll undone (tokens keep their own places).
"""

from __future__ import annotations

import torch
from transformers import SwinForImageClassification
from transformers.models.swin.modeling_swin import window_partition

from .classifier_base import ClassifierFamily, ClassifierForward, Level, _recorded_outputs


class Swin(ClassifierFamily):
    name = "Swin"
    model_types = ("swin",)
    def model_class(self, config):
        return SwinForImageClassification

    def levels(self, config) -> list[Level]:
        levels, start = [], 0
        height, width = self.grid(config)
        for stage, depth in enumerate(config.depths):
            merged = stage < len(config.depths) - 1
            blocks = tuple(range(start + 1, start + depth + 1))
            end = start + depth + int(merged)
            levels.append(Level(start, end, blocks, config.embed_dim * 2**stage, (height, width), config.num_heads[stage], merged))
            height, width = (height + 1) // 2, (width + 1) // 2
            start = end
        return levels

    def patch_projection(self, model):
        return model.base_model.embeddings.patch_embeddings.projection

    def embedding_module(self, model):
        return model.base_model.embeddings

    def stage_modules(self, model):
        return list(model.base_model.encoder.layers)

    def blocks(self, model):
        return [block for stage in self.stage_modules(model) for block in stage.blocks]

    def embedding_replacement(self, config, output, embedding):
        return embedding.flatten(2).transpose(1, 2), output[1]

    def run(self, model, inputs, attention):
        modules = [module for stage in self.stage_modules(model)
                   for module in (*stage.blocks, *([stage.downsample] if stage.downsample is not None else []))]
        with _recorded_outputs([*modules, model.base_model.pooler, model.base_model.layernorm]) as recorded:
            output = model(pixel_values=inputs, output_hidden_states=True, output_attentions=attention)
        *entries, pooled, final = recorded
        weights = [entry[1] for entry in entries if isinstance(entry, tuple)] if attention else []
        entries = [entry[0] if isinstance(entry, tuple) else entry for entry in entries]
        return output, {"entries": entries, "pooled": pooled, "final": final, "weights": weights}

    def stages(self, model, output, recorded, attention) -> ClassifierForward:
        encoder = [output.hidden_states[0], *recorded["entries"]]
        grids = [level.grid for level in self.levels(model.config) for _ in level.blocks]
        attentions = {number: dense_attention(weights, grid, block.window_size, block.shift_size)
                      for number, (weights, grid, block) in enumerate(
                          zip(recorded["weights"], grids, self.blocks(model), strict=True), start=1)} if attention else {}
        return ClassifierForward(self.embedding_map(model.config, encoder[0]), encoder,
                                 recorded["pooled"].flatten(1)[:, None], output.logits, attentions, recorded["final"])


def dense_attention(weights: torch.Tensor, grid: tuple[int, int], window: int, shift: int) -> torch.Tensor:
    """A block's windowed attention (B * windows x heads x w^2 x w^2, over the grid padded to whole windows and
    rolled by `shift`) as B x heads x hw x hw between the grid's own tokens, zero outside each query's window."""
    height, width = grid
    padded_height, padded_width = -(-height // window) * window, -(-width // window) * window
    places = torch.arange(padded_height * padded_width, device=weights.device).view(1, padded_height, padded_width, 1)
    places = torch.roll(places, shifts=(-shift, -shift), dims=(1, 2))  # as the block rolls its tokens
    places = window_partition(places, window).reshape(-1, window * window)  # windows x w^2: each one's tokens
    windows, heads = len(places), weights.shape[1]
    per_image = weights.view(-1, windows, heads, window * window, window * window).transpose(1, 2)
    dense = weights.new_zeros(len(per_image), heads, padded_height * padded_width, padded_height * padded_width)
    dense[:, :, places[:, :, None], places[:, None, :]] = per_image
    real = torch.arange(padded_height * padded_width, device=weights.device).view(padded_height, padded_width)[:height, :width]
    real = real.flatten()
    return dense[:, :, real][:, :, :, real]
