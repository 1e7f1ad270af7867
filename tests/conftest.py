"""Shared fixtures: a tiny random DETR (a DetrConfig with a small ResNet) and small test images."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

from inversion.detector import Detector
from inversion.inverters import InverterConfig, InverterStack

# The tests' models are tiny: one thread is fastest, and robust when other work shares the cores.
torch.set_num_threads(1)


def tiny_detr_config(d_model: int = 32, num_queries: int = 6, num_labels: int = 3) -> DetrConfig:
    """A DETR with a 4-stage basic-block ResNet (stride 32), 2 encoder and 2 decoder layers."""
    backbone = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic", out_features=["stage4"]
    )
    return DetrConfig(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        backbone_config=backbone,
        d_model=d_model,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_queries=num_queries,
        num_labels=num_labels,
        id2label={0: "circle", 1: "square", 2: "triangle"},
        label2id={"circle": 0, "square": 1, "triangle": 2},
    )


@pytest.fixture(scope="session")
def tiny_detector() -> Detector:
    torch.manual_seed(0)
    return Detector(DetrForObjectDetection(tiny_detr_config()), working_size=(64, 96), name="tiny-detr", threshold=0.0)


@pytest.fixture()
def tiny_stack(tiny_detector) -> InverterStack:
    torch.manual_seed(1)
    return InverterStack(InverterConfig.for_detector(tiny_detector.config, tiny_detector.stride))


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    """A smooth random RGB image (blurred noise), reproducible from its seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


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
