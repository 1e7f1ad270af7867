"""Classification vs reconstruction (arXiv:2401.09237): train a small model on digits live, see it on the sweep."""

from __future__ import annotations

import gradio as gr

from inversion.tradeoff import live
from lab import SPACE_ROOT, text
from lab.components import as_file
from lab.tabs import Page

SWEEP_RESULTS = SPACE_ROOT / "checkpoints" / "tradeoff" / "results.json"


def build(page: Page) -> None:
    """The trade-off tab (api /tradeoff): the shipped sweep's plots and a live run placed on them."""
    sweep = live.load_sweep(SWEEP_RESULTS)

    def run(arch, latent, lam, progress=gr.Progress()):
        """Train one small classifier-autoencoder on digits (CPU, seconds) and place it on the shipped sweep."""
        result = live.train_live(arch, int(latent), float(lam), progress=progress)
        frontier = live.figure(sweep, "frontier", archs=[arch], highlight=result.point())
        return as_file(result.grid()), text.tradeoff_summary(arch, result), frontier

    with gr.Tab(text.TRADEOFF_TAB, id="tradeoff"):
        gr.Markdown(text.TRADEOFF_ABOUT)
        with gr.Row():
            with gr.Column(scale=1):
                arch = gr.Dropdown(live.architectures(sweep), value="fc-m", label=text.ARCHITECTURE)
                latent = gr.Radio(live.latents(sweep), value=8, label=text.LATENT)
                lam = gr.Slider(0, 1, value=0.5, step=0.1, label=text.LAMBDA)
                button = gr.Button(text.TRAIN, variant="primary")
            with gr.Column(scale=2):
                digits = gr.Image(label=text.DIGITS, format="png", elem_id="tradeoff-digits")
                summary = gr.Markdown()
        plot = gr.Plot(live.figure(sweep, "frontier", archs=["fc-m"]), label=text.FRONTIER)
        for metric in ("accuracy", "mse"):
            gr.Plot(live.figure(sweep, metric), label=text.sweep_plot(metric))
    button.click(run, [arch, latent, lam], [digits, summary, plot], api_name="tradeoff")
