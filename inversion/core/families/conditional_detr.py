"""Conditional DETR (Meng et al. 2021): DETR's layout with conditional cross-attention.

Each query has a reference point, predicted from its learned position embedding; the decoder's
cross-attention adds a spatial query built from it, and the box head predicts offsets from it. The
reference points depend on the model only (not on the image), so the stages are DETR's: the projected
backbone map, the encoder's hw tokens, the decoder's Q queries (after the shared layer norm), and
sigmoid class scores without a "no object" logit.
"""

from __future__ import annotations

from transformers import ConditionalDetrForObjectDetection

from .base import Family


class ConditionalDetr(Family):
    name = "Conditional DETR"
    model_types = ("conditional_detr",)
    model_class = ConditionalDetrForObjectDetection
    sigmoid_classes = True
