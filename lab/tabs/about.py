"""About: the method as a picture, what each tab shows, links and the citation."""

from __future__ import annotations

import gradio as gr

from lab import text
from lab.tabs import Page


def build(page: Page) -> None:
    """The About tab (text only)."""
    with gr.Tab(text.ABOUT_TAB, id="about"):
        gr.HTML(text.method_picture())
        gr.Markdown(text.ABOUT)
