"""Linear CKA (Kornblith et al., 2019): how similar two layers' representations are.

Tokens are the examples: for one image, the hw encoder tokens of two layers (or the Q decoder
outputs) are compared as two n x d matrices. CKA is 1 for representations equal up to rotation
and isotropic scaling, and near 0 for unrelated ones. A classifier's layers are its encoder entries and
the tokens after its final norm; in a hierarchical one (Swin) the examples are the finest grid's cells, a
coarser layer giving each cell the token that covers it.
"""

from __future__ import annotations

import torch

from ..core.classifier_stages import ClassifierRepresentations
from ..core.stages import Representations


def linear_cka(first: torch.Tensor, second: torch.Tensor) -> float:
    """Linear CKA of two n x d1 and n x d2 matrices whose rows are the same n examples."""
    if first.shape[0] != second.shape[0]:
        raise ValueError(f"CKA compares the same examples: got {first.shape[0]} and {second.shape[0]} rows.")
    x = first.double() - first.double().mean(0, keepdim=True)
    y = second.double() - second.double().mean(0, keepdim=True)
    if x.shape[0] < x.shape[1] + y.shape[1]:  # fewer examples than features: the same sums through n x n Gram matrices
        x_gram, y_gram = x @ x.T, y @ y.T
        cross = (x_gram * y_gram).sum()
        norms = torch.linalg.matrix_norm(x_gram) * torch.linalg.matrix_norm(y_gram)
    else:
        cross = torch.linalg.matrix_norm(y.T @ x) ** 2
        norms = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norms) if norms > 0 else float("nan")


def layer_similarity(representations: Representations | ClassifierRepresentations, stage: str = "encoder",
                     index: int = 0) -> torch.Tensor:
    """The linear-CKA matrix between all layers of `stage` ("encoder" or "decoder") for image `index`.

    A detector's (L+1) x (L+1): encoder tokens on padding are left out; decoder layer 0 (all zeros) gives NaN
    rows. A classifier's (stage "encoder"): every encoder entry (the embedding, each block, each merging), then
    the tokens after the final norm (what the pooled stage reads), as `classifier_layers` aligns them.
    """
    if isinstance(representations, ClassifierRepresentations):
        if stage != "encoder":
            raise ValueError(f"A classifier's layers are its encoder's: got stage {stage!r}.")
        matrices = classifier_layers(representations, index)
    elif stage == "encoder":
        keep = representations.token_mask[index]
        matrices = [layer[index][keep] for layer in representations.encoder]
    else:
        matrices = [layer[index] for layer in representations.decoder]
    size = len(matrices)
    result = torch.empty(size, size, dtype=torch.float64)
    for row in range(size):
        for column in range(row, size):
            result[row, column] = result[column, row] = linear_cka(matrices[row], matrices[column])
    return result


def classifier_layers(representations: ClassifierRepresentations, index: int = 0) -> list[torch.Tensor]:
    """Image `index`'s encoder entries and final-norm tokens as matrices over the same examples: the tokens as
    they are where every layer has as many (the CLS token too), else the finest grid's cells, each coarser grid's
    token repeated over the cells it covers (the special tokens left out)."""
    layers = [layer[index] for layer in (*representations.encoder, representations.final)]
    if len({len(layer) for layer in layers}) == 1:
        return layers
    grids = entry_grids(representations)
    grids.append(grids[-1])  # the final norm's tokens are the last entry's
    finest = max(grids)
    return [_spread(layer[len(layer) - grid[0] * grid[1]:], grid, finest) for layer, grid in zip(layers, grids, strict=True)]


def entry_grids(representations: ClassifierRepresentations) -> list[tuple[int, int]]:
    """The (h, w) patch grid of every encoder entry (a merging's: its level's halved)."""
    grids: dict[int, tuple[int, int]] = {}
    for level in representations.levels:
        for entry in (level.start, *level.blocks):
            grids[entry] = level.grid
        height, width = level.grid
        grids[level.end] = ((height + 1) // 2, (width + 1) // 2) if level.merged else level.grid
    return [grids[entry] for entry in range(len(representations.encoder))]


def _spread(tokens: torch.Tensor, grid: tuple[int, int], finest: tuple[int, int]) -> torch.Tensor:
    """hw x d tokens on `grid` -> one row per cell of the `finest` grid: the token of the cell covering it."""
    factor = -(-finest[0] // grid[0])
    cells = tokens.reshape(*grid, -1).repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    return cells[: finest[0], : finest[1]].reshape(finest[0] * finest[1], -1)
