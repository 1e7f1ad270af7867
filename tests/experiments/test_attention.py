"""Attention maps: the grid's shape, distributions over the image's cells, the layers' own weights."""

import copy
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from inversion.core.detector import Detector
from inversion.core.images import normalise
from inversion.experiments.attention import capture_attention, detection_queries, rerun_attention, share_in_box
from inversion.experiments.grid import point_cell
from inversion.figures import attention_overlay
from inversion.testing import random_image


@pytest.fixture(scope="module")
def detector(tiny_detector):
    # a copy: recording switches the model to eager attention; a 4 x 6 grid
    return Detector(copy.deepcopy(tiny_detector.model), working_size=(128, 192), threshold=0.0)


@pytest.fixture(scope="module")
def captured(detector):
    # the second image is narrow and small: scaled by 2 to 128 x 80, the right half of its grid is padding
    return capture_attention(detector, [random_image(128, 192, seed=1), random_image(64, 40, seed=2)])


def assert_distribution(grid_map, grid_mask):
    assert grid_map.shape == grid_mask.shape
    assert grid_map.min() >= 0
    assert torch.isclose(grid_map.sum(), torch.tensor(1.0), atol=1e-5)
    assert torch.count_nonzero(grid_map[~grid_mask]) == 0  # padded cells get nothing


def test_each_query_map_is_a_distribution_over_the_images_cells(detector, captured):
    representations, attention = captured
    assert not representations.grid_mask[1].all()
    for image in range(2):
        for layer in (1, 2):
            for query in range(detector.config.num_queries):
                assert_distribution(attention.query_map(image, query, layer), representations.grid_mask[image])
                for head in range(detector.config.decoder_attention_heads):
                    assert_distribution(attention.query_map(image, query, layer, head), representations.grid_mask[image])


def test_each_point_map_is_a_distribution_over_the_images_cells(detector, captured):
    representations, attention = captured
    for layer in (1, 2):
        for cell in [(0, 0), (3, 1), (2, 2)]:
            assert_distribution(attention.point_map(1, cell, layer), representations.grid_mask[1])
            assert_distribution(attention.point_map(1, cell, layer, head=1), representations.grid_mask[1])


def test_recorded_weights_are_each_layers_own(detector, captured):
    representations, attention = captured
    canvas = detector.preprocess([random_image(128, 192, seed=1), random_image(64, 40, seed=2)])
    with torch.no_grad():
        own = detector.model(pixel_values=normalise(canvas.pixels), pixel_mask=canvas.pixel_mask, output_attentions=True)
    for layer in (1, 2):
        assert torch.allclose(attention.cross[layer], own.cross_attentions[layer - 1], atol=1e-6)
        assert torch.allclose(attention.encoder[layer], own.encoder_attentions[layer - 1], atol=1e-6)
    # the point map of cell (r, c) is row r * w + c of the encoder weights, averaged over heads
    rows, columns = representations.grid_size
    assert torch.allclose(attention.point_map(0, (2, 3), 1), own.encoder_attentions[0][0, :, 2 * columns + 3].mean(0).view(rows, columns))


def test_detection_queries_are_those_behind_the_detections(detector, captured):
    representations, _ = captured
    queries = detection_queries(detector, representations, 1)
    probabilities = representations.logits[1, queries].softmax(-1)[:, :-1]
    assert len(queries) == len(representations.detections[1]) > 0
    for detection, row in zip(representations.detections[1], probabilities):
        assert detection.label_id == int(row.argmax())
        assert detection.score == pytest.approx(float(row.max()), abs=1e-6)


def test_share_in_box_spreads_each_cells_mass_over_its_pixels(captured):
    representations, _ = captured  # image 1: 64 x 40 pixels, scaled by 2 on the canvas: cells of 16 original pixels
    one_cell = torch.zeros(representations.grid_size)
    one_cell[point_cell(representations, 1, (20, 35))] = 1.0  # the cell at x 16..32, y 32..48
    assert point_cell(representations, 1, (20, 35)) == (2, 1)
    assert share_in_box(one_cell, representations, 1, (16, 32, 32, 48)) == pytest.approx(1.0)
    assert share_in_box(one_cell, representations, 1, (24, 0, 40, 64)) == pytest.approx(0.5)
    assert share_in_box(one_cell, representations, 1, (0, 0, 16, 32)) == pytest.approx(0.0)


def test_a_rerun_records_only_the_layers_it_ran(detector, captured):
    representations, _ = captured
    _, attention = rerun_attention(detector, representations, memory=representations.encoder[-1], skip_decoder=(1,))
    assert set(attention.encoder) == set() and set(attention.cross) == {2}
    with pytest.raises(ValueError, match="layer 1"):
        attention.query_map(0, 0, layer=1)


def test_the_overlay_shows_the_map_on_the_detectors_view(captured):
    representations, _ = captured
    corner = torch.zeros(representations.grid_size)
    corner[0, 0] = 1.0
    overlay = attention_overlay(representations, 1, corner)
    assert overlay.size == (80, 128)  # width x height of the image inside the canvas
    hot, cold = overlay.getpixel((5, 5)), overlay.getpixel((75, 120))
    assert sum(hot) > 400 and sum(cold) < 310  # 0.6 of the colour map's top (252, 255, 164) vs 0.4 of the image


def test_concurrent_recordings_keep_their_own_threads_weights(detector):
    """The app serves requests in threads through one model: each recording holds its own forward's weights."""
    images = [random_image(128, 192, seed=seed) for seed in range(4)]
    alone = [capture_attention(detector, [image])[1] for image in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda image: capture_attention(detector, [image])[1], images * 4))
    for index, attention in enumerate(together):
        expected = alone[index % len(images)]
        for layer, weights in expected.cross.items():
            assert torch.allclose(attention.cross[layer], weights, atol=1e-6)
        for layer, weights in expected.encoder.items():
            assert torch.allclose(attention.encoder[layer], weights, atol=1e-6)
