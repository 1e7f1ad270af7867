"""Attention rollout and the CLS token's maps against hand-computed examples."""

import pytest
import torch

from inversion.experiments.classifier_attention import attention_rollout, cls_map, point_map, received_map


def test_rollout_adds_the_identity_renormalises_and_multiplies_later_blocks_on_the_left():
    # block 1 (one head): both tokens attend to token 0; with the identity, rows renormalised: [[1, 0], [.5, .5]]
    first = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # block 2: both attend to token 1; with the identity: [[.5, .5], [0, 1]]
    second = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # rollout = A2 @ A1 = [[.5 + .25, .25], [.5, .5]] (A1 @ A2 would be [[.5, .5], [.25, .75]]; without the
    # identity: [[1, 0], [1, 0]]; without renormalising: [[3, 1], [2, 2]])
    assert torch.allclose(attention_rollout([first, second]), torch.tensor([[[0.75, 0.25], [0.5, 0.5]]]))


def test_rollout_averages_the_heads_first():
    heads = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])  # mean: 0.5 everywhere
    assert torch.allclose(attention_rollout([heads]), torch.tensor([[[0.75, 0.25], [0.25, 0.75]]]))
    with pytest.raises(ValueError, match="at least one block"):
        attention_rollout([])


def test_the_cls_map_is_the_first_row_over_the_patches_on_their_grid():
    # 1 image, 2 heads, CLS + distillation token + 2 x 3 patches
    weights = torch.zeros(1, 2, 8, 8)
    weights[0, 0, 0, 2:] = torch.arange(6.0)
    weights[0, 1, 0, 2:] = 2 * torch.arange(6.0)
    weights[0, :, 1, 2:] = 100.0  # the distillation token's row is not the CLS token's
    assert torch.equal(cls_map(weights, 2, (2, 3)), 1.5 * torch.arange(6.0).reshape(1, 2, 3))
    assert torch.equal(cls_map(weights, 2, (2, 3), head=1), 2 * torch.arange(6.0).reshape(1, 2, 3))
    assert torch.equal(cls_map(weights.mean(1), 2, (2, 3)), cls_map(weights, 2, (2, 3)))  # a rollout, B x S x S


def test_the_attention_a_patch_receives_sums_over_the_queries_and_a_point_map_is_its_row():
    # 1 image, 2 heads, a 2 x 2 grid without special tokens; query 0 attends only to key 3 in head 0
    weights = torch.full((1, 2, 4, 4), 0.25)
    weights[0, 0, 0] = torch.tensor([0.0, 0.0, 0.0, 1.0])
    received = received_map(weights, (2, 2))
    assert torch.allclose(received, torch.tensor([[[0.875, 0.875], [0.875, 1.375]]]))  # head 0's and head 1's, averaged
    assert torch.allclose(received_map(weights, (2, 2), head=0), torch.tensor([[[0.75, 0.75], [0.75, 1.75]]]))
    assert torch.equal(point_map(weights, (2, 2), (0, 0), head=0), torch.tensor([[[0.0, 0.0], [0.0, 1.0]]]))
    assert torch.equal(point_map(weights, (2, 2), (1, 1), head=0), torch.full((1, 2, 2), 0.25))
    with pytest.raises(ValueError, match="outside the 2 x 2 grid"):
        point_map(weights, (2, 2), (2, 0))
