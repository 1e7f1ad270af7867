"""About: the method, links and the citation."""

import gradio as gr

from lab import text


def build(page) -> None:
    with gr.Tab("About", id="about"):
        gr.HTML(text.method_picture())
        gr.Markdown(text.ABOUT)
