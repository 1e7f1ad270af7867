"""What a stranger sends through the API gets a clear message, checked before any GPU call (issue 11)."""

import base64
from types import SimpleNamespace

import gradio as gr
import pytest

from lab.components import Refused, decode_data_url, flag, hue_value, raw_upload, read_image

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


@pytest.mark.parametrize("url, message", [
    ("data:,A", "not an image we can read"),  # decodes to one byte: the loader names it
    ("data:nocomma", "no comma"),
    ("data:image/png;base64,", "nothing after the comma"),
    ("data:image/png;base64,@@@@", "base64 is broken"),
])
def test_bad_data_urls_get_a_message(url, message):
    with pytest.raises(gr.Error, match=message):
        read_image(raw_upload(SimpleNamespace(url=url, path=None), max_bytes=1000), 40)


def test_a_data_url_is_decoded_only_under_the_size_limit():
    url = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
    assert decode_data_url(url, max_bytes=1000) == PNG_1X1
    assert read_image(decode_data_url(url, max_bytes=1000), 40).size == (1, 1)
    refused = decode_data_url("data:image/png;base64," + "A" * 4_000_000, max_bytes=1_000_000)
    assert isinstance(refused, Refused) and "over the 1 MB limit" in refused.reason


@pytest.mark.parametrize("value", ["no", "yes", 1, None])
def test_a_tick_box_takes_true_or_false_only(value):
    with pytest.raises(gr.Error, match="tick box"):
        flag(value, "Also every layer")
    assert flag(True, "x") is True and flag(False, "x") is False


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, 180, "90", None, True])
def test_the_free_hue_is_a_number_from_0_to_179(value):
    with pytest.raises(gr.Error, match="0 to 179"):
        hue_value(value)
    assert hue_value(33.0) == 33 and hue_value(179) == 179
