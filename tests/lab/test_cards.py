"""Result cards in the app: read back from what a tab shows, with the tab's own link."""

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from lab.cards import annotated_panel, card_link, gallery_panels


def test_boxes_come_back_from_the_annotated_image_exactly(tmp_path):
    shown = gr.AnnotatedImage().postprocess((np.zeros((90, 120, 3), np.uint8), [((10, 20, 50, 61), "0: square 0.93"),
                                                                               ((0, 0, 120, 90), "1: circle 0.50")]))
    panel = annotated_panel((shown.image.path, [(a.image.path, a.label) for a in shown.annotations]), "input")
    assert panel.boxes == [((10, 20, 50, 61), "0: square 0.93"), ((0, 0, 120, 90), "1: circle 0.50")]
    assert panel.image.size == (120, 90)


def test_gallery_captions_put_the_metrics_on_their_own_line(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    panels = gallery_panels([(str(tmp_path / "a.png"), "encoder 2 as backbone · PSNR 20.1 dB · SSIM 0.61")], "optimised: ")
    assert panels[0].caption == "optimised: encoder 2 as backbone\nPSNR 20.1 dB · SSIM 0.61"


@pytest.mark.parametrize("page, own, expected", [
    ("https://lab.hf.space/?model=shapes&tab=perturb&view=present", "?model=shapes&example=cat.png",
     "https://lab.hf.space/?model=shapes&example=cat.png&view=present"),
    ("http://localhost:7860/?tab=tradeoff", "?model=shapes&tab=swap&swap=e1", "http://localhost:7860/?model=shapes&tab=swap&swap=e1"),
    ("http://localhost:7860/?tab=tradeoff", "http://localhost:7860/?model=shapes", "http://localhost:7860/?model=shapes"),
])
def test_a_card_carries_its_tabs_link_on_the_pages_address(page, own, expected):
    assert card_link(page, own) == expected
