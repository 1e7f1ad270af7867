"""Figures people look at: the result card for a slide, with a QR code an audience can scan."""

import numpy as np
import pytest
from PIL import Image

from inversion.__main__ import main
from inversion.figures import CITATION, CardPanel, qr_code, result_card, save_card
from support.paths import EXAMPLES
from support.qr import qr_text

LINK = "https://huggingface.co/spaces/owner/detr-inversion-lab?model=shapes&tab=stages&example=shapes_15.png"


def decoded(path) -> str:
    return qr_text(np.asarray(Image.open(path).convert("RGB")))


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
    save_card(figure, tmp_path / "card.png")
    assert Image.open(tmp_path / "card.png").size == (1920, 1080) and decoded(tmp_path / "card.png") == LINK
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles[0] == "input and detections" and sum("PSNR" in title for title in titles) == 4
    texts = [text.get_text() for text in figure.texts]
    assert CITATION in texts and LINK in texts and "Model: Shapes world" in texts
    save_card(figure, tmp_path / "card.pdf")
    assert (tmp_path / "card.pdf").read_bytes().startswith(b"%PDF")


def test_rows_of_a_card_keep_their_pictures_apart_and_in_the_pictures_area():
    wide, square = Image.new("RGB", (840, 360)), Image.new("RGB", (100, 100))
    rows = [[CardPanel(square, "input"), CardPanel(wide, "similarity")], [CardPanel(square, f"layer {i}") for i in range(14)]]
    figure = result_card("Rows", rows, "Model: Shapes world", LINK)
    boxes = [axis.get_position() for axis in figure.axes if axis.get_title()]
    assert len(boxes) == 16 and len({round(box.y0, 4) for box in boxes}) == 3  # 2, then 14 wrapped into two rows of seven
    assert all(0.02 < box.x0 and box.x1 < 0.98 and box.y0 > 0.2 for box in boxes)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert boxes[1].width / boxes[1].height == pytest.approx(8.4 / 3.6 * 10.8 / 19.2, rel=0.01)  # its aspect kept


def test_a_long_title_is_set_smaller_to_fit_the_card():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = result_card("What DETR keeps of a long title, " * 4, [CardPanel(Image.new("RGB", (8, 8)), "x")], "Model: m", LINK)
    FigureCanvasAgg(figure).draw()
    assert figure.texts[0].get_window_extent().x1 <= 1920 - 40
