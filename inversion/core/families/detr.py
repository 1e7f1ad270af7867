"""DETR (Carion et al. 2020) and Table Transformer, which has DETR's layout.

DETR: a CNN backbone whose last map a 1x1 projection maps to d channels (the backbone stage); an
encoder on its hw tokens with sine positions and the padding mask; a decoder on Q learned queries
from zero content, with a layer norm shared by every layer's output; softmax over the classes and a
final "no object" logit; boxes from the final decoder output alone. Everything is the base protocol.

Table Transformer differs by a layer norm after the encoder's last layer: transformers returns that
layer's output before the norm in `encoder_hidden_states` and the normed tensor as
`encoder_last_hidden_state`. The encoder's last entry is the normed one, the memory the decoder reads.
"""

from __future__ import annotations

from transformers import DetrForObjectDetection, TableTransformerForObjectDetection

from .base import Family


class Detr(Family):
    name = "DETR"
    model_types = ("detr",)
    model_class = DetrForObjectDetection


class TableTransformer(Family):
    name = "Table Transformer"
    model_types = ("table-transformer",)
    model_class = TableTransformerForObjectDetection

    def encoder_states(self, model, output, levels, recorded):
        return [*output.encoder_hidden_states[:-1], output.encoder_last_hidden_state]
