"""The detector captures every stage with the right shapes, consistently with its own heads."""

import pytest
import torch
from transformers import DetrForObjectDetection

from inversion.core.detector import Detector, fit_to_canvas
from inversion.core.images import normalise
from inversion.core.stages import Source
from inversion.testing import random_image, tiny_detr_config


def detr_heads(detector, decoder_output):
    """DETR's class and box heads applied to a decoder output."""
    with torch.no_grad():
        return (detector.model.class_labels_classifier(decoder_output),
                detector.model.bbox_predictor(decoder_output).sigmoid())


@pytest.mark.parametrize("working_size", [(64, 96), (96, 128)])
@pytest.mark.parametrize("image_size", [(40, 100), (120, 50)])  # landscape and portrait (height, width)
def test_every_stage_has_the_shape_of_its_input(tiny_detector, working_size, image_size):
    detector = Detector(tiny_detector.model, working_size=working_size, threshold=0.0)
    reps = detector.capture([random_image(*image_size), random_image(*image_size, seed=1)])
    config = detector.config
    grid = (working_size[0] // 32, working_size[1] // 32)  # the tiny ResNet has stride 32
    assert reps.grid_size == grid
    assert reps.backbone.shape == (2, config.d_model, *grid)
    assert len(reps.encoder) == config.encoder_layers + 1
    assert all(t.shape == (2, grid[0] * grid[1], config.d_model) for t in reps.encoder)
    assert len(reps.decoder) == config.decoder_layers + 1
    assert all(t.shape == (2, config.num_queries, config.d_model) for t in reps.decoder)
    assert reps.logits.shape == (2, config.num_queries, config.num_labels + 1)
    assert reps.boxes.shape == (2, config.num_queries, 4)
    # The aspect ratio is kept: the image fills the canvas along one side only.
    height, width = reps.content_sizes[0]
    assert abs(width / height - image_size[1] / image_size[0]) < 0.1
    assert height == working_size[0] or width == working_size[1]
    assert reps.grid_mask.shape == (2, *grid)


def test_encoder_layer_zero_is_the_projected_backbone(tiny_detector):
    reps = tiny_detector.capture([random_image(64, 96)])
    assert torch.equal(reps.encoder[0], reps.backbone.flatten(2).transpose(1, 2))
    assert torch.count_nonzero(reps.decoder[0]) == 0  # the decoder starts from zero queries


def test_last_decoder_layer_is_what_the_heads_consume(tiny_detector):
    reps = tiny_detector.capture([random_image(64, 96), random_image(30, 90, seed=3)])
    logits, boxes = detr_heads(tiny_detector, reps.decoder[-1])
    torch.testing.assert_close(logits, reps.logits)
    torch.testing.assert_close(boxes, reps.boxes)


def test_intermediate_decoder_layers_are_what_detrs_auxiliary_heads_read():
    """DETR layer-normalises every decoder layer's output before its auxiliary heads (transformers returns
    them as intermediate_hidden_states with auxiliary_loss): capture must hold exactly those."""
    config = tiny_detr_config()
    config.auxiliary_loss, config.decoder_layers = True, 3
    torch.manual_seed(0)
    model = DetrForObjectDetection(config).eval()
    with torch.no_grad():  # a layer norm far from the identity, as after training
        model.model.decoder.layernorm.weight.uniform_(0.5, 2.0)
        model.model.decoder.layernorm.bias.uniform_(-1.0, 1.0)
    detector = Detector(model, working_size=(64, 96), threshold=0.0)
    canvas = detector.preprocess([random_image(64, 96)])
    reps = detector.capture(canvas)
    with torch.no_grad():
        output = model.model(pixel_values=normalise(canvas.pixels), pixel_mask=canvas.pixel_mask)
    for layer in range(1, config.decoder_layers):
        torch.testing.assert_close(reps.decoder[layer], output.intermediate_hidden_states[layer - 1])
    torch.testing.assert_close(reps.decoder[-1], output.last_hidden_state)


def test_each_layer_source_names_that_layer(tiny_detector):
    canvas = tiny_detector.preprocess([random_image(64, 96)])
    reps = tiny_detector.capture(canvas)
    with torch.no_grad():
        output = tiny_detector.model.model(pixel_values=normalise(canvas.pixels), pixel_mask=canvas.pixel_mask,
                                           output_hidden_states=True)
    assert len(reps.encoder) == len(output.encoder_hidden_states) == tiny_detector.config.encoder_layers + 1
    for layer, expected in enumerate(output.encoder_hidden_states):
        torch.testing.assert_close(reps.tensor(Source("encoder", layer)), expected)
    layernorm = tiny_detector.model.model.decoder.layernorm
    for layer in range(1, tiny_detector.config.decoder_layers):
        with torch.no_grad():
            expected = layernorm(output.decoder_hidden_states[layer])
        torch.testing.assert_close(reps.tensor(Source("decoder", layer)), expected)
    assert torch.count_nonzero(reps.tensor(Source("decoder", 0))) == 0


def test_auxiliary_loss_config_is_captured_the_same_way():
    config = tiny_detr_config()
    config.auxiliary_loss = True
    torch.manual_seed(0)
    detector = Detector(DetrForObjectDetection(config), working_size=(64, 64), threshold=0.0)
    reps = detector.capture([random_image(64, 64)])
    logits, _ = detr_heads(detector, reps.decoder[-1])
    torch.testing.assert_close(logits, reps.logits)


def test_padding_is_masked_and_grid_size_follows_the_input(tiny_detector):
    canvas = fit_to_canvas([random_image(64, 32)], (64, 96))
    assert canvas.content_sizes == [(64, 32)]
    assert canvas.pixel_mask[0, :, :32].all() and not canvas.pixel_mask[0, :, 32:].any()
    assert canvas.pixels[0, :, :, 32:].abs().sum() == 0
    reps = tiny_detector.capture(canvas)
    assert reps.grid_mask[0, :, 0].all() and not reps.grid_mask[0, :, -1].any()


def test_detector_is_frozen_and_stays_in_eval_mode(tiny_detector):
    tiny_detector.train()
    assert not tiny_detector.model.training
    assert not any(p.requires_grad for p in tiny_detector.model.parameters())


def test_detections_are_in_original_image_pixels(tiny_detector):
    image = random_image(200, 300)  # larger than the canvas: boxes must be scaled back up
    (detections,) = tiny_detector.capture([image]).detections
    assert detections, "threshold 0 keeps every query"
    assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)
    assert {d.label for d in detections} <= {"circle", "square", "triangle"}
    reps = tiny_detector.capture([image])
    cx, cy, w, h = reps.boxes[0, 0].tolist()
    expected_x0 = (cx - w / 2) * 300
    assert any(abs(d.box[0] - expected_x0) < 1e-3 for d in detections)


def test_captures_in_concurrent_threads_keep_their_own_layers(tiny_detector):
    """The app runs requests in threads through one model: each capture records its own forward only."""
    from concurrent.futures import ThreadPoolExecutor

    images = [random_image(64, 96, seed=seed) for seed in range(4)]
    alone = [tiny_detector.capture([image]) for image in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda index: tiny_detector.capture([images[index % 4]]), range(32)))
    for index, reps in enumerate(together):
        expected = alone[index % 4]
        assert len(reps.encoder) == len(expected.encoder) and len(reps.decoder) == len(expected.decoder)
        assert torch.allclose(reps.backbone, expected.backbone, atol=1e-5)
        assert all(torch.allclose(got, want, atol=1e-5) for got, want in zip(reps.encoder + reps.decoder,
                                                                             expected.encoder + expected.decoder))
