"""Running DETR again from an intermediate point reproduces the capture exactly when nothing changed."""

import copy

import pytest
import torch

from inversion.core.detector import Detector
from inversion.core.rerun import run_from
from inversion.testing import random_image


@pytest.fixture(scope="module")
def captured(tiny_detector):
    # different aspect ratios: the second image leaves padded cells, so the masks matter
    return tiny_detector.capture([random_image(64, 96, seed=1), random_image(64, 40, seed=2)])


def assert_same_run(first, second):
    for name in ("backbone", "logits", "boxes"):
        assert torch.allclose(getattr(first, name), getattr(second, name), rtol=0, atol=1e-6), name
    for stage in ("encoder", "decoder"):
        for layer, (a, b) in enumerate(zip(getattr(first, stage), getattr(second, stage), strict=True)):
            assert torch.allclose(a, b, rtol=0, atol=1e-6), f"{stage} {layer}"
    assert first.detections == second.detections


def test_running_from_the_captured_backbone_map_reproduces_the_capture(tiny_detector, captured):
    assert not captured.grid_mask[1].all()  # the test covers padding
    assert_same_run(run_from(tiny_detector, captured), captured)


def test_running_from_the_captured_encoder_output_reproduces_the_capture(tiny_detector, captured):
    assert_same_run(run_from(tiny_detector, captured, memory=captured.encoder[-1]), captured)


def test_the_decoder_feeds_normed_states_on_when_the_config_has_auxiliary_heads(tiny_detector):
    model = copy.deepcopy(tiny_detector.model)
    model.config.auxiliary_loss = True
    detector = Detector(model, tiny_detector.working_size, threshold=0.0)
    captured = detector.capture([random_image(64, 96, seed=1), random_image(64, 40, seed=2)])
    assert_same_run(run_from(detector, captured), captured)


def test_wrong_requests_are_refused(tiny_detector, captured):
    with pytest.raises(ValueError, match="not both"):
        run_from(tiny_detector, captured, backbone=captured.backbone, memory=captured.encoder[-1])
    with pytest.raises(ValueError, match="layers 1 to 2"):
        run_from(tiny_detector, captured, skip_decoder=(3,))
    with pytest.raises(ValueError, match="skip_encoder"):
        run_from(tiny_detector, captured, memory=captured.encoder[-1], skip_encoder=(1,))
