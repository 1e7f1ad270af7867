"""Where a classification transformer looks: its CLS token's attention per block, and attention rollout.

Rollout (Abnar and Zuidema 2020, "Quantifying Attention Flow in Transformers"): each block's attention
averaged over its heads, the identity added for the residual connection, every row renormalised to sum to
1, and the blocks multiplied through from the first to the last; the CLS token's row of the product says
how much of each input token reaches it. Both read the weights `Classifier.capture(..., attention=True)`
records (ViT and DeiT: B x heads x S x S per block, S = special tokens + patches, the CLS token first).
"""

from __future__ import annotations

import torch

CLS = 0  # the CLS token's place among the tokens (DeiT's distillation token follows it)


def attention_rollout(attention: list[torch.Tensor]) -> torch.Tensor:
    """B x S x S: the rollout of the blocks' attention (each B x heads x S x S, in forward order)."""
    rollout = None
    for weights in attention:
        mixed = weights.float().mean(1)
        mixed = mixed + torch.eye(mixed.shape[-1], dtype=mixed.dtype, device=mixed.device)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout
    if rollout is None:
        raise ValueError("Attention rollout needs the attention of at least one block.")
    return rollout


def cls_map(weights: torch.Tensor, special_tokens: int, grid: tuple[int, int], head: int | None = None) -> torch.Tensor:
    """B x h x w: the CLS token's attention over the patch tokens, from B x heads x S x S weights (the mean over
    heads unless `head`) or from a B x S x S rollout."""
    if weights.dim() == 4:
        weights = weights.mean(1) if head is None else weights[:, head]
    return weights[:, CLS, special_tokens:].reshape(len(weights), *grid)
