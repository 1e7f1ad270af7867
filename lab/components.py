"""UI pieces every tab uses: image inputs that take any upload, galleries, annotated images, example rows."""

from __future__ import annotations

import base64
import os

import gradio as gr

from inversion.core.images import load_image
from lab import text
from lab.gpu import user_errors


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


def image_input(label: str = "Image") -> gr.Image:
    component = gr.Image(label=label, type="filepath", sources=["upload", "webcam", "clipboard"], height=300)
    component.preprocess = raw_upload  # (not a subclass: Gradio would write a .pyi for it)
    return component


def read_image(upload, max_megapixels: float):
    """The upload as an RGB image, or a gr.Error that says what is wrong with it."""
    if upload is None:
        raise gr.Error(text.NO_IMAGE)
    with user_errors():
        return load_image(upload, max_megapixels)


def annotated(detected, numbered: bool = True):
    """(image, boxes) for gr.AnnotatedImage; numbered labels match the object list."""
    boxes = [
        (tuple(round(value) for value in d.box), f"{index}: {d.label} {d.score:.2f}" if numbered else f"{d.label} {d.score:.2f}")
        for index, d in enumerate(detected.detections)
    ]
    return detected.view, boxes


def gallery(panels):
    return [(panel.image, panel.caption) for panel in panels]


def examples(fn, inputs, outputs, rows):
    """Example rows (image, model, settings...), each run on first click and cached."""
    return gr.Examples(
        examples=rows, inputs=inputs, outputs=outputs, fn=fn, cache_examples=True, cache_mode="lazy",
        example_labels=[f"{os.path.basename(row[0]).rsplit('.', 1)[0]} · {row[1]}" for row in rows], examples_per_page=12,
    )
