"""Linear CKA: invariant to rotation and scale, low for unrelated data, symmetric over layers."""

import math

import torch

from inversion.experiments.similarity import layer_similarity, linear_cka
from inversion.testing import random_image


def test_cka_is_one_for_rotated_and_scaled_copies_and_low_for_noise():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator))
    assert math.isclose(linear_cka(x, 3.0 * x @ rotation), 1.0, rel_tol=1e-9)
    assert linear_cka(x, torch.randn(200, 16, generator=generator)) < 0.2


def test_cka_of_few_examples_with_many_features_is_the_feature_space_value():
    """With fewer examples than features (images as examples, whole layers as features) CKA goes through
    n x n Gram matrices: the same value as the d1 x d2 cross-covariance gives."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(12, 40, generator=generator, dtype=torch.float64)
    noise = torch.randn(12, 30, generator=generator, dtype=torch.float64)
    y = x[:, :25] @ torch.randn(25, 30, generator=generator, dtype=torch.float64) + noise
    x, y = x - x.mean(0), y - y.mean(0)
    by_features = torch.linalg.matrix_norm(y.T @ x) ** 2 / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y))
    assert math.isclose(linear_cka(x, y), float(by_features), rel_tol=1e-12)
    assert 0.2 < linear_cka(x, y) < 0.95


def test_layer_similarity_is_a_symmetric_matrix_with_unit_diagonal(tiny_detector):
    reps = tiny_detector.capture([random_image(64, 96)])
    matrix = layer_similarity(reps, "encoder")
    size = len(reps.encoder)
    assert matrix.shape == (size, size)
    assert torch.allclose(matrix, matrix.T)
    assert torch.allclose(matrix.diagonal(), torch.ones(size, dtype=torch.float64))
    decoder = layer_similarity(reps, "decoder")
    assert torch.isnan(decoder[0, 1]) and math.isclose(float(decoder[1, 1]), 1.0, rel_tol=1e-9)
