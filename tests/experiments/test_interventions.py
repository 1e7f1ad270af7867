"""Feature transplants and layer skips on the tiny random DETR (no inverters anywhere)."""

import pytest
import torch

from inversion.core.detector import Detector
from inversion.core.errors import UserFacingError
from inversion.core.rerun import run_from
from inversion.core.stages import Detection
from inversion.experiments.grid import CellBlock
from inversion.experiments.interventions import TRANSPLANT_STAGES, one_image, paste_levels, skip_layer, transplant
from inversion.testing import random_image


@pytest.fixture(scope="module")
def detector(tiny_detector):
    return Detector(tiny_detector.model, working_size=(128, 192), threshold=0.0)  # a 4 x 6 grid of 32-pixel cells


@pytest.fixture(scope="module")
def pair(detector):
    """Images A and B of the canvas's size (no padding, original pixels = canvas pixels)."""
    return detector.capture([random_image(128, 192, seed=1), random_image(128, 192, seed=2)])


def final_tokens(representations, stage):
    return representations.backbone if stage == "backbone" else representations.encoder[-1]


@pytest.mark.parametrize("stage", TRANSPLANT_STAGES)
def test_a_transplant_of_the_whole_grid_reproduces_the_source(detector, pair, stage):
    whole = Detection("everything", -1, 1.0, (0, 0, 192, 128))
    result = transplant(detector, pair, pair, whole, stage, source_image=0, target_image=1)
    assert torch.allclose(result.representations.logits, pair.logits[:1], rtol=0, atol=1e-6)
    assert torch.allclose(result.representations.boxes, pair.boxes[:1], rtol=0, atol=1e-6)
    assert result.representations.detections == pair.detections[:1]


@pytest.mark.parametrize("stage", TRANSPLANT_STAGES)
def test_a_transplant_into_the_same_image_changes_nothing(detector, pair, stage):
    result = transplant(detector, pair, pair, pair.detections[0][0], stage)
    assert torch.allclose(result.representations.logits, pair.logits[:1], rtol=0, atol=1e-6)
    assert result.representations.detections == pair.detections[:1]
    assert result.found_with_label
    assert all(change.status == "same label" for change in result.changes)


@pytest.mark.parametrize("stage", TRANSPLANT_STAGES)
def test_the_tokens_land_at_the_offset_and_nothing_else_changes_there(detector, pair, stage):
    box = Detection("circle", 0, 0.9, (10.0, 40.0, 60.0, 90.0))  # cells: rows 1-2, columns 0-1
    result = transplant(detector, pair, pair, box, stage, offset=(1, 3), source_image=0, target_image=1)
    assert (result.source_cells.top, result.source_cells.left, result.source_cells.bottom, result.source_cells.right) == (1, 0, 3, 2)
    assert result.expected_box == pytest.approx((10 + 96, 40 + 32, 60 + 96, 90 + 32))
    a, b = one_image(pair, 0), one_image(pair, 1)
    expected = final_tokens(b, stage).clone()
    if stage == "backbone":
        expected[..., 2:4, 3:5] = a.backbone[..., 1:3, 0:2]
    else:
        tokens_a = a.encoder[-1].view(1, 4, 6, -1)
        expected.view(1, 4, 6, -1)[:, 2:4, 3:5] = tokens_a[:, 1:3, 0:2]
    assert torch.equal(final_tokens(result.representations, stage), expected)
    rerun = run_from(detector, b, **({"backbone": expected} if stage == "backbone" else {"memory": expected}))
    assert torch.equal(result.representations.logits, rerun.logits)


def test_a_box_moved_off_the_image_is_refused(detector, pair):
    box = Detection("circle", 0, 0.9, (10.0, 40.0, 60.0, 90.0))
    with pytest.raises(UserFacingError, match="would leave the image receiving them"):
        transplant(detector, pair, pair, box, "encoder", offset=(2, 0))


@pytest.mark.parametrize("layer", [1, 2])
def test_a_skipped_encoder_layer_passes_its_input_on(detector, pair, layer):
    result = skip_layer(detector, pair, "encoder", layer).representations
    for earlier in range(layer):
        assert torch.equal(result.encoder[earlier], pair.encoder[earlier])
    assert torch.equal(result.encoder[layer], pair.encoder[layer - 1])
    assert not torch.allclose(result.decoder[-1], pair.decoder[-1], atol=1e-4)


@pytest.mark.parametrize("layer", [1, 2])
def test_a_skipped_decoder_layer_passes_its_input_on(detector, pair, layer):
    result = skip_layer(detector, pair, "decoder", layer)
    decoder = result.representations.decoder
    assert torch.equal(result.representations.encoder[-1], pair.encoder[-1])
    if layer > 1:  # entry 0 is the zero queries, before the layer norm
        assert torch.allclose(decoder[layer], pair.decoder[layer - 1], rtol=0, atol=1e-6)
    assert not torch.allclose(decoder[-1], pair.decoder[-1], atol=1e-4)
    assert len(result.changes) == 2
    assert [change.before for change in result.changes[0] if change.before] == pair.detections[0]


def test_a_multi_scale_paste_moves_the_same_part_of_the_image_on_every_level():
    source = [torch.ones(1, 2, 8, 8), torch.ones(1, 2, 4, 4), torch.ones(1, 2, 2, 2)]
    target = [torch.zeros_like(level) for level in source]
    cells, moved = CellBlock(0, 0, 2, 4), CellBlock(4, 4, 6, 8)  # the top left quarter's top half, to the bottom right
    pasted = paste_levels(source, target, cells, moved)
    expected = [(slice(4, 6), slice(4, 8)), (slice(2, 3), slice(2, 4)), (slice(1, 2), slice(1, 2))]
    for level, (rows, columns) in zip(pasted, expected):
        written = torch.zeros_like(level)
        written[..., rows, columns] = 1
        assert torch.equal(level, written)
