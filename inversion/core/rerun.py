"""DETR run again from an intermediate point: from a (changed) backbone map or encoder output,
optionally with encoder or decoder layers skipped, down to the detections.

It calls transformers' own modules in the order `DetrModel.forward` does (transformers 5.x):
positions from the grid mask; the encoder layers with the padding mask; the decoder layers on zero
queries with the learned query positions, cross-attending to the encoder output; the decoder's
shared layer norm (after every layer too when the config has auxiliary heads, since the decoder
then feeds the normed state on); the class and box heads. Run from the captured backbone map with
nothing changed, it reproduces `Detector.capture`.

Layers are numbered as in `Representations`: layer l (1..L) maps entry l-1 to entry l. A skipped
layer is the identity.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from transformers.masking_utils import create_bidirectional_mask

from .detector import Detector
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
) -> Representations:
    """Run the rest of DETR for the images of `base` and return every stage with the new detections.

    backbone: a B x d x h x w map replacing `base.backbone`; the encoder and decoder run on it.
    memory: a B x hw x d encoder output replacing the final encoder layer; only the decoder runs
        (the earlier encoder entries stay those of `base`).
    Neither: DETR runs from `base.backbone`. The grid mask, pixels and sizes are those of `base`.
    """
    if backbone is not None and memory is not None:
        raise ValueError("Give a backbone map or an encoder output to run from, not both.")
    if memory is not None and skip_encoder:
        raise ValueError("Running from the encoder output skips the whole encoder; skip_encoder must be empty.")
    detr = detector.model.model
    _check_layers("encoder", skip_encoder, len(detr.encoder.layers))
    _check_layers("decoder", skip_decoder, len(detr.decoder.layers))
    backbone = base.backbone if backbone is None else backbone
    positions = detr.position_embedding(shape=backbone.shape, device=backbone.device, dtype=backbone.dtype, mask=base.grid_mask)
    positions = positions.flatten(2).transpose(1, 2)
    token_mask = base.grid_mask.flatten(1)
    if memory is None:
        encoder = _encode(detector, backbone.flatten(2).transpose(1, 2), token_mask, positions, skip_encoder)
    else:
        encoder = [*base.encoder[:-1], memory]
    decoder = _decode(detector, encoder[-1], token_mask, positions, skip_decoder)
    logits, boxes = detector.heads(decoder[-1])
    return Representations(
        backbone=backbone,
        encoder=encoder,
        decoder=decoder,
        logits=logits,
        boxes=boxes,
        grid_mask=base.grid_mask,
        pixels=base.pixels,
        content_sizes=base.content_sizes,
        original_sizes=base.original_sizes,
        detections=detector.detections(logits, boxes, base.original_sizes),
    )


def _encode(detector: Detector, tokens: torch.Tensor, token_mask: torch.Tensor, positions: torch.Tensor,
            skip: Collection[int]) -> list[torch.Tensor]:
    """The encoder's input and every layer's output (as `DetrEncoder.forward`, in eval mode)."""
    encoder = detector.model.model.encoder
    attention_mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=tokens, attention_mask=token_mask)
    outputs = [tokens]
    for number, layer in enumerate(encoder.layers, start=1):
        outputs.append(outputs[-1] if number in skip else layer(outputs[-1], attention_mask, spatial_position_embeddings=positions))
    return outputs


def _decode(detector: Detector, memory: torch.Tensor, token_mask: torch.Tensor, positions: torch.Tensor,
            skip: Collection[int]) -> list[torch.Tensor]:
    """The zero queries and every layer's output after the shared layer norm (as `DetrDecoder.forward`)."""
    detr = detector.model.model
    decoder = detr.decoder
    query_positions = detr.query_position_embeddings.weight.unsqueeze(0).repeat(len(memory), 1, 1)
    hidden = torch.zeros_like(query_positions)
    memory_mask = create_bidirectional_mask(
        config=decoder.config, inputs_embeds=hidden, attention_mask=token_mask, encoder_hidden_states=memory
    )
    layer_outputs = []
    for number, layer in enumerate(decoder.layers, start=1):
        if number not in skip:
            hidden = layer(hidden, None, positions, query_positions, memory, encoder_attention_mask=memory_mask)
        layer_outputs.append(hidden)
        if decoder.config.auxiliary_loss:
            hidden = decoder.layernorm(hidden)
    final = decoder.layernorm(hidden)
    return [torch.zeros_like(final), *(decoder.layernorm(output) for output in layer_outputs[:-1]), final]


def _check_layers(stage: str, layers: Collection[int], count: int) -> None:
    """Raise a ValueError naming the valid range if a layer number is not in 1..count."""
    wrong = [layer for layer in layers if not 1 <= layer <= count]
    if wrong:
        raise ValueError(f"The {stage} has layers 1 to {count}; cannot skip {', '.join(map(str, wrong))}.")
