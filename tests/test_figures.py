"""Figures people look at: the result card for a slide, with a QR code an audience can scan."""

import cv2
import numpy as np
import pytest
from PIL import Image

from inversion.__main__ import main
from inversion.figures import CITATION, CardPanel, qr_code, result_card
from support.paths import EXAMPLES

LINK = "https://huggingface.co/spaces/owner/detr-inversion-lab?model=shapes&tab=stages&example=shapes_15.png"


def decoded(path) -> str:
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(np.asarray(Image.open(path).convert("RGB")))
    return text


def test_a_qr_code_decodes_to_its_text(tmp_path):
    qr_code(LINK).save(tmp_path / "qr.png")
    assert decoded(tmp_path / "qr.png") == LINK


@pytest.mark.shapes
def test_the_stage_card_of_the_shapes_model(tmp_path, capsys):
    card = tmp_path / "card.png"
    assert main(["reconstruct", str(EXAMPLES / "shapes_15.png"), "--model", "shapes", "--out", str(tmp_path / "grid.png"),
                 "--card", str(card), "--link", LINK]) == 0
    picture = Image.open(card)
    assert picture.width >= 1920 and picture.width / picture.height == pytest.approx(16 / 9, abs=0.01)
    assert decoded(card) == LINK


def test_a_card_holds_its_pictures_captions_model_citation_and_link(tmp_path):
    panels = [CardPanel(Image.new("RGB", (64, 48), (200, 0, 0)), "input and detections"),
              *(CardPanel(Image.new("RGB", (64, 48), (0, 0, 200)), f"from {stage}\nPSNR 20.0 dB  SSIM 0.60")
                for stage in ("backbone", "encoder", "decoder", "prediction"))]
    figure = result_card("A result", panels, "Model: Shapes world", LINK)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles[0] == "input and detections" and sum("PSNR" in title for title in titles) == 4
    texts = [text.get_text() for text in figure.texts]
    assert CITATION in texts and LINK in texts and "Model: Shapes world" in texts
    figure.savefig(tmp_path / "card.pdf")
    assert (tmp_path / "card.pdf").read_bytes().startswith(b"%PDF")
