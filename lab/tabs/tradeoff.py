"""Classification vs reconstruction (arXiv:2401.09237): train a small model on digits live, see it on the sweep."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from inversion.tradeoff import live
from lab import text

SWEEP_RESULTS = Path(__file__).resolve().parents[2] / "checkpoints" / "tradeoff" / "results.json"  # shipped with the Space


def build(page):
    sweep = live.load_sweep(SWEEP_RESULTS)

    def run(arch, latent, lam, progress=gr.Progress()):
        """Train one small classifier-autoencoder on digits (CPU, seconds) and place it on the shipped sweep."""
        result = live.train_live(arch, int(latent), float(lam), progress=progress)
        return result.grid(), text.tradeoff_summary(arch, result), live.figure(sweep, "frontier", archs=[arch],
                                                                              highlight=result.point())

    with gr.Tab("Classification vs reconstruction", id="tradeoff"):
        gr.Markdown(text.TRADEOFF_ABOUT)
        with gr.Row():
            with gr.Column(scale=1):
                arch = gr.Dropdown(live.architectures(sweep), value="fc-m", label="Architecture")
                latent = gr.Radio(live.latents(sweep), value=8, label="Latent size")
                lam = gr.Slider(0, 1, value=0.5, step=0.1, label="λ (weight of reconstruction)")
                button = gr.Button("Train on digits", variant="primary")
            with gr.Column(scale=2):
                digits = gr.Image(label="Test digits (top) and their reconstructions (bottom)", format="png",
                                  elem_id="tradeoff-digits")
                summary = gr.Markdown()
        plot = gr.Plot(live.figure(sweep, "frontier", archs=["fc-m"]),
                       label="Shipped digits sweep: accuracy against reconstruction MSE (star: your run)")
        for plot_name in ("accuracy", "mse"):
            gr.Plot(live.figure(sweep, plot_name), label=f"Shipped sweep: test {plot_name} against λ")
    button.click(run, [arch, latent, lam], [digits, summary, plot], api_name="tradeoff")
