"""DAB-DETR (Liu et al. 2022): queries as 4-d anchor boxes, refined layer by layer.

Each query starts from a learned anchor box (cx, cy, w, h); every decoder layer's box head refines it
and the next layer's positional query is built from the refined box, so the decoder's layers carry
both content (the stage tensors) and anchors (inside the model). The encoder scales its positions
by a function of the content. Stages as DETR's: the projected backbone map, hw encoder tokens (the
last after the encoder's norm when the config has one), Q decoder queries after the decoder's layer
norm; sigmoid classes. Its width is `hidden_size` in its config.
"""

from __future__ import annotations

from transformers import DabDetrForObjectDetection

from .base import Family


class DabDetr(Family):
    name = "DAB-DETR"
    model_types = ("dab-detr",)
    model_class = DabDetrForObjectDetection
    sigmoid_classes = True
    width_attribute = "hidden_size"
