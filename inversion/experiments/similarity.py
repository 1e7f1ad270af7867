"""Linear CKA (Kornblith et al., 2019): how similar two layers' representations are.

Tokens are the examples: for one image, the hw encoder tokens of two layers (or the Q decoder
outputs) are compared as two n x d matrices. CKA is 1 for representations equal up to rotation
and isotropic scaling, and near 0 for unrelated ones.
"""

from __future__ import annotations

import torch

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


def layer_similarity(representations: Representations, stage: str, index: int = 0) -> torch.Tensor:
    """The (L+1) x (L+1) linear-CKA matrix between all layers of `stage` ("encoder" or "decoder") for image `index`.

    Encoder tokens on padding are left out; decoder layer 0 (all zeros) gives NaN rows.
    """
    layers = representations.encoder if stage == "encoder" else representations.decoder
    if stage == "encoder":
        keep = representations.token_mask[index]
        matrices = [layer[index][keep] for layer in layers]
    else:
        matrices = [layer[index] for layer in layers]
    size = len(matrices)
    result = torch.empty(size, size, dtype=torch.float64)
    for row in range(size):
        for column in range(row, size):
            result[row, column] = result[column, row] = linear_cka(matrices[row], matrices[column])
    return result
