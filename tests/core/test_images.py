"""User images of every odd kind become upright 8-bit RGB, or a message that names the problem."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from inversion.core.images import ImageInputError, load_image


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def test_rgba_is_composited_on_white():
    image = Image.new("RGBA", (4, 3), (255, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 255, 255))
    rgb = load_image(image)
    assert rgb.mode == "RGB" and rgb.getpixel((1, 1)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (0, 0, 255)


@pytest.mark.parametrize("mode", ["LA", "P", "L", "1", "CMYK", "I;16", "F"])
def test_every_mode_becomes_rgb(mode):
    image = Image.new("RGB", (5, 4), (10, 200, 30)).convert(mode) if mode not in ("I;16", "F") else None
    if mode == "I;16":
        image = Image.fromarray(np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000)
    if mode == "F":
        image = Image.fromarray(np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5))
    rgb = load_image(image)
    assert rgb.mode == "RGB" and rgb.size == (5, 4)


def test_sixteen_bit_keeps_its_contrast():
    array = np.zeros((2, 2), dtype=np.uint16)
    array[0, 0] = 65535
    rgb = np.asarray(load_image(Image.fromarray(array)))
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[1, 1].tolist() == [0, 0, 0]


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated = load_image(encode(image, "JPEG", exif=exif))
    assert rotated.size == (20, 40)


def test_cmyk_jpeg_bytes_load():
    assert load_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")).mode == "RGB"


def test_a_text_file_is_named_as_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageInputError, match="notes.txt is not an image we can read"):
        load_image(path)


def test_a_truncated_image_is_named(tmp_path):
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageInputError, match="cut.png is truncated or corrupt"):
        load_image(path)


def test_a_huge_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (8000, 6000)).save(path)  # 48 megapixels, a small file
    with pytest.raises(ImageInputError, match=r"48.0 megapixels\), over the 40 megapixel limit"):
        load_image(path, max_megapixels=40)
    with pytest.raises(ImageInputError, match=r"48.0 megapixels\), over the 45.5 megapixel limit"):
        load_image(Image.new("RGB", (8000, 6000)), max_megapixels=45.5)
    assert load_image(Image.new("RGB", (8000, 6000))).size == (8000, 6000)  # the library sets no limit itself


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ImageInputError, match="No such file"):
        load_image(tmp_path / "absent.png")


def test_arrays_of_odd_shapes_are_refused_and_good_ones_load():
    with pytest.raises(ImageInputError, match="got shape"):
        load_image(np.zeros((4, 4, 2), dtype=np.uint8))
    assert load_image(np.zeros((1, 1, 3), dtype=np.uint8)).size == (1, 1)


# Real headers (and whole small files) of every format Pillow reads here, cut and extended at random.
IMAGE_HEADERS = [encode(Image.new("RGB", (5, 3), (200, 30, 60)), name)[:cut]
                 for name in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP") for cut in (8, 40, 10_000)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda head, tail: head + tail, st.sampled_from(IMAGE_HEADERS), st.binary(max_size=512)),
))
def test_any_bytes_give_an_image_or_the_clear_error(data):
    """Whatever a stranger uploads: an RGB image, or ImageInputError, never another exception."""
    try:
        image = load_image(data, max_megapixels=40)
    except ImageInputError as error:
        assert str(error)
    else:
        assert image.mode == "RGB" and image.width >= 1 and image.height >= 1
