"""The real DETR-R50 path, offline: a Hugging Face cache laid out exactly as a download of
facebook/detr-resnet-50 at commit 1d5f47bd (its main, with model.safetensors) leaves it.

The cache (tests/support/detr_r50_cache.py) holds the real config.json byte for byte (its size and
SHA-256 as published by projects pinning that commit) and random weights under the real checkpoint's
534 tensor names (timm ResNet-50 under model.backbone.conv_encoder, transformers 4.x attention and
FFN names, and four BatchNorm num_batches_tracked counters); the file has the real one's exact length.
"""

import pytest
import torch
from huggingface_hub import constants
from PIL import Image
from safetensors import safe_open

from inversion.core.registry import load_detector, model_specs
from support.detr_r50_cache import COMMIT, REPO_FOLDER, build_fake_detr_r50_cache
from support.paths import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf-hub")
    build_fake_detr_r50_cache(cache, refs=())  # as Spaces' preload_from_hub leaves it: by commit, no refs/main
    return cache


@pytest.fixture(scope="module")
def detector(hub_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        return load_detector(model_specs(REPO / "space_config.yaml")["detr-resnet-50"])


def test_the_space_config_pins_the_commit_with_safetensors():
    spec = model_specs(REPO / "space_config.yaml")["detr-resnet-50"]
    assert (spec.detector, spec.revision, spec.working_size) == ("facebook/detr-resnet-50", COMMIT, (480, 640))


def test_every_weight_of_the_checkpoint_is_loaded(hub_cache, detector):
    weights = next((hub_cache / REPO_FOLDER / "snapshots" / COMMIT).glob("model.safetensors"))
    with safe_open(str(weights), framework="pt") as stored:
        names = list(stored.keys())
        assert len(names) == 534
        projection = stored.get_tensor("model.input_projection.weight")
        first_conv = stored.get_tensor("model.backbone.conv_encoder.model.conv1.weight")
    state = detector.model.state_dict()
    assert len(state) == 530 and sum(p.numel() for p in detector.model.parameters()) == 41_524_768
    assert torch.equal(state["model.input_projection.weight"], projection)  # loaded, not freshly initialised
    assert torch.equal(state["model.backbone.model.conv1.weight"], first_conv)  # renamed by transformers on load
    assert detector.name == "facebook/detr-resnet-50" and detector.revision == COMMIT
    assert len(detector.config.id2label) == 91 and detector.config.num_queries == 100


def test_capture_at_the_papers_working_size(detector):
    reps = detector.capture([Image.new("RGB", (640, 480), (120, 90, 60))])
    assert reps.grid_size == (15, 20) and reps.backbone.shape == (1, 256, 15, 20)
    assert len(reps.encoder) == 7 and len(reps.decoder) == 7 and reps.logits.shape == (1, 100, 92)
