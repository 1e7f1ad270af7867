"""Shared fixtures: a tiny random DETR (a DetrConfig with a small ResNet) and small test images."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from transformers import DetrForObjectDetection

from inversion.core.detector import Detector
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.testing import random_image, tiny_detr_config

# The tests' models are tiny: one thread is fastest, and robust when other work shares the cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_detector() -> Detector:
    torch.manual_seed(0)
    return Detector(DetrForObjectDetection(tiny_detr_config()), working_size=(64, 96), name="tiny-detr", threshold=0.0)


@pytest.fixture()
def tiny_stack(tiny_detector) -> InverterStack:
    torch.manual_seed(1)
    return InverterStack(InverterConfig.for_detector(tiny_detector))


@pytest.fixture(scope="session")
def tiny_detector_folder(tmp_path_factory, tiny_detector):
    """The tiny detector saved with save_pretrained, as a local folder."""
    folder = tmp_path_factory.mktemp("tiny-detr")
    tiny_detector.model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A folder of twelve small PNG images of different sizes."""
    folder = tmp_path_factory.mktemp("images")
    for index in range(12):
        random_image(48 + 4 * index, 80 - 2 * index, seed=index).save(folder / f"image_{index:02d}.png")
    return folder
