"""UI pieces every tab uses: image inputs that take any upload, galleries, annotated images, example rows,
and the translation of the library's user-facing errors into messages on screen."""

from __future__ import annotations

import base64
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
from PIL import Image

from inversion.core.errors import UserFacingError
from inversion.core.images import load_image
from lab import text

EXAMPLES_PER_PAGE = 12


@contextmanager
def user_errors():
    """Problems the user can fix become a gr.Error with the library's message."""
    try:
        yield
    except UserFacingError as error:
        raise gr.Error(str(error), print_exception=False) from None


def raw_upload(payload):
    """An image input's file as uploaded (a path, or bytes from a data URL), for load_image to judge.

    gr.Image's own preprocessing opens the file with PIL first and fails on non-images with a
    message naming a temporary path; load_image explains every bad file instead.
    """
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        return base64.b64decode(payload.url.split(",", 1)[1])
    return payload.path


def image_input() -> gr.Image:
    """An image input (upload, webcam, clipboard) handing its file to `read_image` as uploaded."""
    component = gr.Image(label=text.IMAGE, type="filepath", sources=["upload", "webcam", "clipboard"], height=300)
    component.preprocess = raw_upload  # (not a subclass: Gradio would write a .pyi for it)
    return component


def read_image(upload, max_megapixels: float):
    """The upload as an RGB image, or a gr.Error that says what is wrong with it."""
    if upload is None:
        raise gr.Error(text.NO_IMAGE)
    with user_errors():
        return load_image(upload, max_megapixels)


RESULTS = Path(tempfile.gettempdir()) / "detr-inversion-lab-results"  # result images, each its own file
RESULT_SECONDS = 3600  # result files older than this are deleted (Gradio has its own copies by then)


def as_file(image: Image.Image) -> str:
    """The image saved to a fresh file, by path. Gradio copies a path into its cache as a new file, while
    an image object is cached under a name derived from its content and rewritten in place: identical
    results for concurrent visitors (a room opening one shared link) would break each other's downloads."""
    RESULTS.mkdir(exist_ok=True)
    for old in RESULTS.iterdir():
        if old.stat().st_mtime < time.time() - RESULT_SECONDS:
            old.unlink(missing_ok=True)
    handle, path = tempfile.mkstemp(suffix=".png", dir=RESULTS)
    os.close(handle)
    image.save(path)
    return path


def annotated(detected, numbered: bool = True):
    """(image, boxes) for gr.AnnotatedImage; numbered labels match the object list."""
    boxes = [(tuple(round(value) for value in d.box), text.detection_label(index if numbered else None, d))
             for index, d in enumerate(detected.detections)]
    return as_file(detected.view), boxes


def gallery(panels):
    """Captioned panels as gr.Gallery items."""
    return [(as_file(panel.image), panel.caption) for panel in panels]


def results_gallery(label: str, **options) -> gr.Gallery:
    """A row of four reconstructions, shown whole, as PNG."""
    return gr.Gallery(label=label, columns=4, object_fit="contain", format="png", height=300, **options)


def examples(fn, inputs, outputs, rows):
    """Example rows (image path, model name, settings...), each run on first click and cached."""
    return gr.Examples(
        examples=rows, inputs=inputs, outputs=outputs, fn=fn, cache_examples=True, cache_mode="lazy",
        example_labels=[text.example_label(Path(row[0]).name, row[1]) for row in rows], examples_per_page=EXAMPLES_PER_PAGE,
    )
