"""Classification vs reconstruction (arXiv:2401.09237): train a small model on digits live, see it on the sweep."""

from __future__ import annotations

import gradio as gr

from inversion.figures import CardPanel
from inversion.tradeoff import live
from lab import SPACE_ROOT, text
from lab.cards import Card, card_maker, picture
from lab.components import CONTROLS, PAGE_ONLY, SHOWN, as_file
from lab.links import LinkState, to_query
from lab.tabs import Page, Tab

SWEEP_RESULTS = SPACE_ROOT / "checkpoints" / "tradeoff" / "results.json"


def card(state: LinkState, digits, summary: str) -> Card:
    """The trade-off card: the test digits over their reconstructions, and the run's accuracy and MSE."""
    return Card(text.TRADEOFF_CARD, [[CardPanel(picture(digits), text.DIGITS)]], summary.replace("**", ""),
                text.TRADEOFF_CARD_MODEL.format(arch=state.arch, latent=state.latent))


def build(page: Page) -> Tab:
    """The trade-off tab (api /tradeoff): the shipped sweep's plots and a live run placed on them."""
    sweep = live.load_sweep(SWEEP_RESULTS)

    def run(arch, latent, lam, progress=gr.Progress()):
        """Train one small classifier-autoencoder on digits (CPU, seconds) and place it on the shipped sweep."""
        result = live.train_live(arch, int(latent), float(lam), progress=progress)
        frontier = live.figure(sweep, "frontier", archs=[arch], highlight=result.point())
        link = LinkState(tab="tradeoff", arch=arch, latent=int(latent), lam=round(float(lam), 1))
        return as_file(result.grid()), text.tradeoff_summary(arch, result), frontier, to_query(link)

    with gr.Tab(text.TRADEOFF_TAB, id="tradeoff"):
        gr.Markdown(text.TRADEOFF_ABOUT)
        with gr.Row():
            with gr.Column(scale=1, elem_classes=CONTROLS):
                arch = gr.Dropdown(live.architectures(sweep), value="fc-m", label=text.ARCHITECTURE)
                latent = gr.Radio(live.latents(sweep), value=8, label=text.LATENT)
                lam = gr.Slider(0, 1, value=0.5, step=0.1, label=text.LAMBDA)
                button = gr.Button(text.TRAIN, variant="primary")
            with gr.Column(scale=2, elem_classes=SHOWN):
                digits = gr.Image(label=text.DIGITS, format="png", elem_id="tradeoff-digits")
                summary = gr.Markdown()
        plot = gr.Plot(live.figure(sweep, "frontier", archs=["fc-m"]), label=text.FRONTIER)
        for metric in ("accuracy", "mse"):
            gr.Plot(live.figure(sweep, metric), label=text.sweep_plot(metric))
        card_maker(page, "tradeoff", [digits, summary], card)
    inputs, outputs = [arch, latent, lam], [digits, summary, plot, page.link]
    button.click(run, inputs, outputs, api_name="tradeoff", api_visibility=PAGE_ONLY)

    def restore(state: LinkState, image: str | None, model_name: str):
        """The link's settings, each kept only if the shipped sweep has it."""
        return (state.arch if state.arch in live.architectures(sweep) else gr.skip(),
                state.latent if state.latent in live.latents(sweep) else gr.skip(), state.lam)

    return Tab("tradeoff", [arch, latent, lam], restore, run, inputs, outputs, needs_example=False)
