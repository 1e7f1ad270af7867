"""RT-DETR (Zhao et al. 2024): a CNN, a hybrid encoder, and queries selected from the encoder's output.

The backbone stage is three maps (strides 8, 16, 32), each CNN stage projected to d channels
(`encoder_input_proj`). The hybrid encoder runs attention (AIFI) on the coarsest map only, then fuses
the levels with convolutions (CCFF: a top-down then a bottom-up path); the decoder reads every fused
level after its own projection (`decoder_input_proj`), flattened, and its queries are the top-scoring
tokens of that memory (query selection), refined by deformable cross-attention. So the encoder stage's
entries are every level's tokens (finest first): 0 the projected backbone, 1..k after each AIFI
module (only its level changes), and a last one, k + 1, the memory the decoder reads (after the
cross-scale fusion and the projections). The fusion is convolutional and cannot be skipped; a changed
encoder output changes which queries are selected. Classes are sigmoid scores. Encoder attention is the
AIFI's over its level's cells, and the decoder's sampling points are spread onto that level too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import RTDetrForObjectDetection

from ..errors import UserFacingError
from .base import Changes, Family, Sizes, _recorded_outputs, _replace_output
from .deformable_detr import sampling_recorded, spread


class RtDetr(Family):
    name = "RT-DETR"
    model_types = ("rt_detr",)
    model_class = RTDetrForObjectDetection
    sigmoid_classes = True
    backbone_stages = 3

    def scale_config(self, d_model, stage_channels):  # the hybrid encoder's width is the decoder's
        return dict(encoder_in_channels=stage_channels, encoder_hidden_dim=d_model,
                    decoder_in_channels=[d_model] * len(stage_channels), num_feature_levels=len(stage_channels))

    def sizes(self, config) -> Sizes:
        return Sizes(d_model=config.d_model, num_queries=config.num_queries, num_logits=config.num_labels,
                     encoder_layers=len(config.encode_proj_layers) + 1, decoder_layers=config.decoder_layers,
                     attention_heads=config.encoder_attention_heads, ffn_dim=config.encoder_ffn_dim,
                     levels=len(config.encoder_in_channels), attending_encoder_layers=len(config.encode_proj_layers))

    def level_modules(self, model):
        return list(model.model.encoder_input_proj)

    def backbone_levels(self, model, pixels, pixel_mask):
        features = model.model.backbone(self.normalise(pixels), pixel_mask)
        return [projection(feature_map) for projection, (feature_map, _) in zip(self.level_modules(model), features)]

    def encoder_layers(self, model):
        return model.model.encoder.aifi

    def encoder_states(self, model, output, levels, recorded):
        """Every level's tokens: the input, after each AIFI module (its level replaced), and the decoder's memory."""
        levels = list(levels)
        entries = [_flat(levels)]
        for level, state in zip(model.config.encode_proj_layers, output.encoder_hidden_states[1:]):
            levels[level] = state
            entries.append(_flat(levels))
        return entries + [_flat(recorded["memory"])]

    def decoder_states(self, model, output):
        return list(output.decoder_hidden_states)

    @contextmanager
    def recorder(self, model, attention: bool) -> Iterator[dict]:
        """The memory the decoder reads (its input projections' outputs) and, with `attention`, its sampling points."""
        with _recorded_outputs(list(model.model.decoder_input_proj)) as memory:
            if attention:
                with sampling_recorded({"decoder": [layer.encoder_attn.attn for layer in model.model.decoder.layers]}) as sampled:
                    yield {"memory": memory, **sampled}
            else:
                yield {"memory": memory}

    def attention_level(self, model, levels, pixels):
        return model.config.encode_proj_layers[-1]

    def attention_maps(self, output, levels, level, recorded):
        """The last AIFI module's self-attention over its level's cells, and the decoder's sampling points spread there."""
        per_module = len(output.encoder_attentions) // len(self._attended_levels(output, levels))
        encoder = {number: output.encoder_attentions[number * per_module - 1]
                   for number, attended in enumerate(self._attended_levels(output, levels), start=1) if attended == level}
        size = tuple(levels[level].shape[-2:])
        cross = {number: spread(*entry, size) for number, entry in enumerate(recorded["decoder"], start=1)}
        return encoder, cross

    def memory_hooks(self, model, memory: torch.Tensor):
        """Each decoder input projection's output becomes its level's share of `memory` (levels in order)."""
        taken = [0]

        def level_of_memory(output):
            height, width = output.shape[-2:]
            part = memory[:, taken[0]:taken[0] + height * width]
            taken[0] += height * width
            return part.transpose(1, 2).reshape(output.shape)

        return [_replace_output(module, level_of_memory) for module in model.model.decoder_input_proj]

    def forward(self, model, pixels, pixel_mask, changes: Changes = Changes(), attention: bool = False):
        fusion = len(model.config.encode_proj_layers) + 1
        if fusion in changes.skip_encoder:
            raise UserFacingError(f"RT-DETR's encoder layer {fusion} is its convolutional fusion of the levels, which "
                                  f"cannot be skipped: skip one of its attention layers (1 to {fusion - 1}).")
        return super().forward(model, pixels, pixel_mask, changes, attention)

    @staticmethod
    def _attended_levels(output, levels) -> list[int]:
        """The level each AIFI module attends over, in order (every entry after the first of `encoder_hidden_states`)."""
        shapes = [level.shape[-2:] for level in levels]
        return [shapes.index(state.shape[-2:]) for state in output.encoder_hidden_states[1:]]


def _flat(levels: list[torch.Tensor]) -> torch.Tensor:
    """Level maps (finest first) as B x N x d tokens."""
    return torch.cat([level.flatten(2).transpose(1, 2) for level in levels], 1)
