"""UI pieces every tab uses: image inputs that take any upload, galleries, annotated images, example rows,
and the translation of the library's user-facing errors into messages on screen."""

from __future__ import annotations

import base64
import binascii
import math
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import unquote_to_bytes

import gradio as gr
from PIL import Image

from inversion.core.errors import UserFacingError
from inversion.core.images import load_image
from lab import text

EXAMPLES_PER_PAGE = 12
CONTROLS = "lab-controls"  # the class of what the presenter view hides (lab/page.css)
SHOWN = "lab-results"  # the class of what it shows large
# The tabs' own named events: gradio_client (tests, benchmarks) still calls them, the API page and the MCP tools
# leave them out (lab.tools are the app's API: typed, described, one picture each).
PAGE_ONLY = "undocumented"


@contextmanager
def user_errors():
    """Problems the user can fix become a gr.Error with the library's message."""
    try:
        yield
    except UserFacingError as error:
        raise gr.Error(str(error), print_exception=False) from None


@dataclass
class Refused:
    """An upload refused before it reached the image loader, and why (shown by `read_image`)."""

    reason: str


def flag(value, name: str) -> bool:
    """A tick box's value as sent through the API: true or false, nothing else ("no" is not false)."""
    if not isinstance(value, bool):
        raise gr.Error(text.BAD_FLAG.format(name=name, value=value), print_exception=False)
    return value


def hue_value(value) -> int:
    """The free hue slider's value: a finite number from 0 to 179."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 179:
        raise gr.Error(text.BAD_HUE.format(value=value), print_exception=False)
    return int(value)


def decode_data_url(url: str, max_bytes: int) -> bytes | Refused:
    """The bytes of a data: URL (base64 or percent-encoded), refusing malformed and oversized ones undecoded."""
    header, comma, data = url.partition(",")
    if not comma or not data:
        return Refused(text.BAD_DATA_URL.format(why="nothing after the comma" if comma else "no comma"))
    if len(data) > max_bytes * 4 // 3 + 4:
        return Refused(text.TOO_LARGE.format(limit=max_bytes / 1e6))
    try:
        return base64.b64decode(data, validate=True) if header.endswith(";base64") else unquote_to_bytes(data)
    except binascii.Error:
        return Refused(text.BAD_DATA_URL.format(why="its base64 is broken"))


def raw_upload(payload, max_bytes: int):
    """An image input's file as uploaded (a path, or bytes from a data URL), for load_image to judge.

    gr.Image's own preprocessing opens the file with PIL first and fails on non-images with a
    message naming a temporary path; load_image explains every bad file instead.
    """
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        return decode_data_url(payload.url, max_bytes)
    return payload.path


def image_input(max_upload_mb: float, label: str = text.IMAGE, **options) -> gr.Image:
    """An image input (upload, webcam, clipboard) handing its file to `read_image` as uploaded."""
    component = gr.Image(label=label, type="filepath", sources=["upload", "webcam", "clipboard"], height=300, **options)
    component.preprocess = partial(raw_upload, max_bytes=int(max_upload_mb * 1e6))  # (no subclass: Gradio would write a .pyi)
    return component


def read_image(upload, max_megapixels: float):
    """The upload as an RGB image, or a gr.Error that says what is wrong with it."""
    if upload is None:
        raise gr.Error(text.NO_IMAGE)
    if isinstance(upload, Refused):
        raise gr.Error(upload.reason, print_exception=False)
    with user_errors():
        return load_image(upload, max_megapixels)


RESULTS = Path(tempfile.gettempdir()) / "detr-inversion-lab-results"  # result images, each its own file
PNG_COMPRESSION = 1  # zlib's fastest level: the same pixels, 1.5-5x faster to write than Pillow's 6, files ~10% larger
RESULT_SECONDS = 3600  # result files older than this are deleted (Gradio has its own copies by then)
CLEANUP_SECONDS = 60  # ... looked for at most this often (a look reads every file's time: thousands an hour)
_last_cleanup = [0.0]  # when old results were last looked for


def as_file(image: Image.Image) -> str:
    """The image saved to a fresh file, by path. Gradio copies a path into its cache as a new file, while
    an image object is cached under a name derived from its content and rewritten in place: identical
    results for concurrent visitors (a room opening one shared link) would break each other's downloads.
    Saved as PNG (lossless): the visitor sees the model's pixels."""
    path = fresh_file(".png")
    image.save(path, compress_level=PNG_COMPRESSION)
    return path


def fresh_file(suffix: str, prefix: str = "tmp") -> str:
    """The path of a new empty result file of its own (old ones deleted), for one visitor's result."""
    RESULTS.mkdir(exist_ok=True)
    if time.monotonic() - _last_cleanup[0] > CLEANUP_SECONDS:
        _last_cleanup[0] = time.monotonic()
        delete_old_results()
    handle, path = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=RESULTS)
    os.close(handle)
    return path


def delete_old_results() -> None:
    """Delete result files older than RESULT_SECONDS; another thread or app deleting them at once is no error."""
    for old in RESULTS.iterdir():
        try:
            if old.stat().st_mtime < time.time() - RESULT_SECONDS:
                old.unlink(missing_ok=True)
        except FileNotFoundError:
            continue


def annotated(detected, numbered: bool = True):
    """(image, boxes) for gr.AnnotatedImage; numbered labels match the object list."""
    boxes = [(tuple(round(value) for value in d.box), text.detection_label(index if numbered else None, d))
             for index, d in enumerate(detected.detections)]
    return as_file(detected.view), boxes


def unannotated(view: Image.Image):
    """(image, no boxes) for gr.AnnotatedImage: a classifier's view, which has classes, not detections."""
    return as_file(view), []


def pick_object(event: gr.SelectData):
    """Clicking a box in an annotated image selects that object."""
    return event.index


def gallery(panels):
    """Captioned panels as gr.Gallery items."""
    return [(as_file(panel.image), panel.caption) for panel in panels]


def comparison_slider(elem_id: str) -> gr.ImageSlider:
    """Two pictures of the same size, one over the other: drag the handle to compare them (filled by `compared`)."""
    return gr.ImageSlider(label=text.COMPARE, type="filepath", format="png", max_height=300, interactive=False,
                          buttons=["fullscreen"], elem_id=elem_id, elem_classes=SHOWN, scale=2)


def compared(first: str | None, second: str | None, label: str):
    """A comparison slider's update: `first` left, `second` right, or emptied when either is missing."""
    if not first or not second:
        return gr.update(value=None, label=text.COMPARE)
    return gr.update(value=(first, second), label=label)


def shown_picture(value) -> str | None:
    """The file of a displayed gr.AnnotatedImage (its picture without the boxes), if any."""
    return value[0] if value else None


def gallery_item(value, index: int) -> tuple[str | None, str]:
    """A displayed gallery's picture and caption at `index`, or (None, "") when it has none there."""
    if not value or not 0 <= index < len(value):
        return None, ""
    path, caption = value[index]
    return path, caption or ""


def results_gallery(label: str, **options) -> gr.Gallery:
    """A row of four reconstructions, shown whole, as PNG."""
    return gr.Gallery(label=label, columns=4, object_fit="contain", format="png", height=300, elem_classes=SHOWN, **options)


def examples(fn, inputs, outputs, rows, **options):
    """Example rows (image path, model name, settings...), each run on first click and cached (so `fn` returns no
    None: a cached None breaks the example); options: gr.Examples' own (label, elem_id, example_labels...)."""
    labels = [text.example_label(Path(row[0]).name, row[1]) for row in rows]
    with gr.Column(elem_classes=CONTROLS):
        return gr.Examples(
            examples=rows, inputs=inputs, outputs=outputs, fn=fn, cache_examples=True, cache_mode="lazy",
            examples_per_page=EXAMPLES_PER_PAGE, **{"example_labels": labels, **options},
        )


def change_rows(changes) -> list[list[str]]:
    """Detections before and after a change, one row per object: labels, score change, what happened."""

    def shown(detection):
        return text.NOTHING if detection is None else text.detection_label(None, detection)

    return [[shown(change.before), shown(change.after),
             text.NOTHING if change.score_delta is None else f"{change.score_delta:+.2f}", change.status]
            for change in changes]
