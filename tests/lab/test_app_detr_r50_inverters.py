"""The Space as `deploy --inverters` sends it, started against a Hub cache holding DETR-R50 (random weights under the
real checkpoint's names) and an inverter repo for it (random weights at the real sizes, 480x640): it lists DETR-R50
with learned inverters and serves stage reconstructions, layer swap and perturbation from them."""

import shutil

import httpx
import pytest
import torch
from gradio_client import Client, handle_file
from huggingface_hub import constants
from PIL import Image

from inversion.core.checkpoints import save_inverters
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.core.registry import load_detector, model_specs
from inversion.release.space import InverterPin, checked_config, space_files
from lab.server import child_process
from support.detr_r50_cache import build_fake_detr_r50_cache
from support.hub_cache import fake_model_repo
from support.paths import REPO

pytestmark = [pytest.mark.app, pytest.mark.slow]

INVERTERS = "myorg/detr-r50-inverters"
INVERTERS_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
STAGES = ["backbone", "encoder", "decoder", "prediction"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """(the deployed Space's folder, the Hub cache): the cache holds the detector and the inverter repo."""
    root = tmp_path_factory.mktemp("detr-r50-space")
    hub = root / "hub"
    build_fake_detr_r50_cache(hub, refs=())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_CACHE", str(hub))
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        detector = load_detector(model_specs(REPO / "space_config.yaml")["detr-resnet-50"])
        torch.manual_seed(0)
        stack = InverterStack(InverterConfig.for_detector(detector))
        folder = save_inverters(stack, root / "trained", detector)
        fake_model_repo(hub, INVERTERS, INVERTERS_COMMIT,
                        {name: (folder / name).read_bytes() for name in ("inverters.json", "inverters.safetensors")})
        config = checked_config(REPO, [InverterPin.parse(f"detr-resnet-50={INVERTERS}@{INVERTERS_COMMIT}")])
    space = root / "space"
    for file in space_files(REPO):
        (space / file.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / file.path, space / file.path)
    (space / "space_config.yaml").write_text(config)  # what deploy sends in place of the project's
    return space, hub


def test_the_deployed_space_serves_detr_r50_with_learned_inverters(deployed, tmp_path, monkeypatch):
    space, hub = deployed
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    photo = tmp_path / "street.png"
    Image.new("RGB", (640, 480), (90, 120, 150)).save(photo)
    with child_process(space / "space_config.yaml", tmp_path, root=space, timeout=600) as (_, url):
        page = httpx.get(url + "config").text
        assert "DETR-R50 on COCO (facebook/detr-resnet-50)" in page and "is not available" not in page
        client = Client(url, verbose=False)
        _, gallery, _, summary, _ = client.predict(handle_file(str(photo)), "detr-resnet-50", False, False,
                                                   api_name="/stages")
        assert [item["caption"].split(" ·")[0] for item in gallery] == STAGES
        assert "optimisation-based" not in summary
        assert all(Image.open(item["image"]).size == (640, 480) for item in gallery)
        gallery, heat_map, _ = client.predict(handle_file(str(photo)), "detr-resnet-50", ["encoder 1", "decoder 3"],
                                              "backbone", api_name="/layer_swap")
        assert [item["caption"].split(" ·")[0] for item in gallery] == ["encoder 1 as backbone", "decoder 3"]
        assert Image.open(heat_map).width > 300
        *_, changes, original_gallery, perturbed_gallery, _ = client.predict(
            handle_file(str(photo)), "detr-resnet-50", None, "image", "grey", 90, False, api_name="/perturb")
        assert [item["caption"].split(" ·")[0] for item in perturbed_gallery] == STAGES
        assert [item["caption"].split(" ·")[0] for item in original_gallery] == STAGES
    log = (tmp_path / "app.log").read_text()
    assert "not served" not in log and "could not be loaded" not in log, log[-2000:]
