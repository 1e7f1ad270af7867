"""About: the method as a picture, what each tab shows, links and the citation."""

from __future__ import annotations

import json

import gradio as gr

from lab import SPACE_ROOT, text
from lab.tabs import Page

OPTIMISATION_RESULTS = SPACE_ROOT / "checkpoints" / "shapes" / "optimisation" / "results.json"
HEADROOM_RESULTS = SPACE_ROOT / "checkpoints" / "shapes" / "headroom" / "results.json"


def build(page: Page) -> None:
    """The About tab (text only)."""
    with gr.Tab(text.ABOUT_TAB, id="about"):
        gr.HTML(text.method_picture())
        gr.Markdown(text.ABOUT)
        gr.Markdown(text.learned_vs_optimised(json.loads(OPTIMISATION_RESULTS.read_text())))
        gr.Markdown(text.inverter_certificate(json.loads(HEADROOM_RESULTS.read_text())))
