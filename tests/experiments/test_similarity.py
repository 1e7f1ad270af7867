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


def tiny(model_type: str):
    from inversion.core.classifier import Classifier
    from inversion.core.families.classifiers import classifier_family_for
    from inversion.testing import tiny_classifier_config

    torch.manual_seed(0)
    config = tiny_classifier_config(model_type)
    return Classifier(classifier_family_for(config).model_class(config)(config))


def test_a_classifier_s_layers_are_its_entries_then_its_final_tokens_each_as_captured():
    """ViT: every entry and the final norm's tokens, all 1 + hw tokens as examples, each layer its own."""
    reps = tiny("vit").capture([random_image(40, 56)])
    matrix = layer_similarity(reps)
    layers = [*reps.encoder, reps.final]
    assert matrix.shape == (len(layers), len(layers))
    for row, column in ((0, 1), (1, 2), (2, 3), (0, 3)):
        assert math.isclose(float(matrix[row, column]), linear_cka(layers[row][0], layers[column][0]), rel_tol=1e-12)
    assert torch.allclose(matrix, matrix.T) and torch.allclose(matrix.diagonal(), torch.ones(len(layers), dtype=torch.float64))


def test_a_hierarchical_classifier_s_coarser_tokens_cover_the_finest_grid_s_cells():
    """Swin: the examples are the finest grid's cells; a merged grid's token stands for each of the 2 x 2 cells it
    covers (repeated), and the cells stay aligned across layers."""
    from inversion.experiments.similarity import classifier_layers, entry_grids

    reps = tiny("swin").capture([random_image(32, 32)])
    grids = entry_grids(reps)
    assert grids[:4] == [(16, 16)] * 3 + [(8, 8)]  # the embedding, stage 1's blocks, its merging
    layers = classifier_layers(reps)
    assert [len(layer) for layer in layers] == [256] * len(layers)
    merged = reps.encoder[3][0].reshape(8, 8, -1)
    assert torch.equal(layers[3].reshape(16, 16, -1)[5, 9], merged[2, 4])  # cell (5, 9) lies under token (2, 4)
    assert torch.equal(layers[-1].reshape(16, 16, -1)[15, 0], reps.final[0].reshape(4, 4, -1)[3, 0])
    matrix = layer_similarity(reps)
    assert matrix.shape == (len(reps.encoder) + 1,) * 2
    shuffled = layers[3][torch.randperm(256, generator=torch.Generator().manual_seed(0))]
    assert abs(linear_cka(layers[1], shuffled) - float(matrix[1, 3])) > 0.05  # cells are aligned, not any order
