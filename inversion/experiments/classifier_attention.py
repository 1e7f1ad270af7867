"""Where a classification transformer looks: its CLS token's attention per block, and attention rollout.

Rollout (Abnar and Zuidema 2020, "Quantifying Attention Flow in Transformers"): each block's attention
averaged over its heads, the identity added for the residual connection, every row renormalised to sum to
1, and the blocks multiplied through from the first to the last; the CLS token's row of the product says
how much of each input token reaches it. Both read the weights `Classifier.capture(..., attention=True)`
records (ViT and DeiT: B x heads x S x S per block, S = special tokens + patches, the CLS token first).

A model without a CLS token (Swin: its head reads the average of its final tokens) has no CLS map nor rollout;
its blocks attend within windows, recorded as B x heads x hw x hw on the block's grid (zero outside a query's
window). Per block: the attention each patch receives (the sum over the queries of its windows), and the
attention from one patch over its window.
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


def _heads(weights: torch.Tensor, head: int | None) -> torch.Tensor:
    """B x heads x S x S -> B x S x S: the mean of the heads, or one head."""
    return weights.mean(1) if head is None else weights[:, head]


def received_map(weights: torch.Tensor, grid: tuple[int, int], head: int | None = None) -> torch.Tensor:
    """B x h x w: the attention each patch receives in a block without special tokens (B x heads x hw x hw; the
    mean of the heads unless `head`), summed over the queries (1 everywhere when every query attends evenly)."""
    return _heads(weights, head).sum(-2).reshape(len(weights), *grid)


def point_map(weights: torch.Tensor, grid: tuple[int, int], cell: tuple[int, int], head: int | None = None) -> torch.Tensor:
    """B x h x w: the attention from the patch at `cell` (row, column) over the block's grid (B x heads x hw x hw;
    the mean of the heads unless `head`)."""
    row, column = cell
    if not (0 <= row < grid[0] and 0 <= column < grid[1]):
        raise ValueError(f"The cell {cell} is outside the {grid[0]} x {grid[1]} grid.")
    return _heads(weights, head)[:, row * grid[1] + column].reshape(len(weights), *grid)
