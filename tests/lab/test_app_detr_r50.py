"""The app started against a Hugging Face cache holding DETR-R50 as the Hub would (offline) lists it and
answers a detection request through gradio_client."""

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from lab.server import child_process
from support.detr_r50_cache import build_fake_detr_r50_cache
from support.paths import EXAMPLES, REPO

pytestmark = [pytest.mark.app, pytest.mark.slow]


def test_the_app_serves_detr_r50_from_the_cache(tmp_path, monkeypatch):
    build_fake_detr_r50_cache(tmp_path / "hub", refs=())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with child_process(REPO / "space_config.yaml", tmp_path) as (_, url):
        client = Client(url, verbose=False)
        page = httpx.get(url + "config").text
        assert "DETR-R50 on COCO (facebook/detr-resnet-50)" in page and "is not available" not in page
        view, _ = client.predict("detr-resnet-50", handle_file(str(EXAMPLES / "cat.png")), api_name="/detect")
        assert Image.open(view["image"]).size == (640, 426)  # the 451 x 300 photo fitted into the 480 x 640 canvas
    log = (tmp_path / "app.log").read_text()
    assert "not served" not in log, log[-2000:]
