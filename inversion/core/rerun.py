"""A detector run again with a stage changed: from a (changed) backbone map or encoder output,
optionally with encoder or decoder layers skipped, down to the detections.

It is the model's own forward on the same canvas, with forward hooks (this thread's only) that
replace the backbone stage's or the encoder's output, or make a skipped layer the identity
(`families.Changes`): whatever a family computes between the stages (positions, reference points,
anchor boxes, query selection) is computed by transformers as in any forward. Run with nothing
changed, it reproduces `Detector.capture`.

Layers are numbered as in `Representations`: layer l (1..L) maps entry l-1 to entry l.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from .detector import Detector
from .families import Changes
from .stages import Representations


@torch.no_grad()
def run_from(
    detector: Detector,
    base: Representations,
    *,
    backbone: torch.Tensor | None = None,
    memory: torch.Tensor | None = None,
    skip_encoder: Collection[int] = (),
    skip_decoder: Collection[int] = (),
    attention: bool = False,
) -> Representations:
    """Run the rest of the detector for the images of `base` and return every stage with the new detections.

    backbone: a B x d x h x w map replacing `base.backbone`; the encoder and decoder run on it.
    memory: a B x hw x d encoder output replacing the final encoder layer; only the decoder's result
        changes (the earlier encoder entries stay those of `base`).
    attention: also record the attention weights (none for skipped layers, nor for the encoder when
        `memory` replaces its output). The grid mask, pixels and sizes are those of `base`.
    """
    if backbone is not None and memory is not None:
        raise ValueError("Give a backbone map or an encoder output to run from, not both.")
    if memory is not None and skip_encoder:
        raise ValueError("Running from the encoder output skips the whole encoder; skip_encoder must be empty.")
    _check_layers("encoder", skip_encoder, len(base.encoder) - 1)
    _check_layers("decoder", skip_decoder, len(base.decoder) - 1)
    changes = Changes(backbone=base.backbone if backbone is None else backbone, memory=memory,
                      skip_encoder=tuple(skip_encoder), skip_decoder=tuple(skip_decoder))
    result = detector.forward_stages(base.pixels, base.pixel_mask, changes, attention=attention)
    if memory is not None:
        result.encoder = [*base.encoder[:-1], memory]
    result.grid_mask = base.grid_mask
    result.content_sizes = base.content_sizes
    result.original_sizes = base.original_sizes
    result.detections = detector.detections(result.logits, result.boxes, base.original_sizes)
    return result


def _check_layers(stage: str, layers: Collection[int], count: int) -> None:
    """Raise a ValueError naming the valid range if a layer number is not in 1..count."""
    wrong = [layer for layer in layers if not 1 <= layer <= count]
    if wrong:
        raise ValueError(f"The {stage} has layers 1 to {count}; cannot skip {', '.join(map(str, wrong))}.")
