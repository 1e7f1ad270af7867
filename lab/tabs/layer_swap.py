"""Layer swap: a layer fed to an inverse trained for another, and the layers' similarity map."""

from __future__ import annotations

import gradio as gr

from inversion.figures import CardPanel
from lab import service, text
from lab.admission import MODEL_EVENT
from lab.cards import Card, card_maker, gallery_panels, picture
from lab.components import CONTROLS, PAGE_ONLY, SHOWN, as_file, examples, gallery, image_input, read_image, results_gallery
from lab.links import LinkState, example_model, example_name, to_query
from lab.tabs import Page, Tab


def card(state: LinkState, heat, panels) -> Card:
    """The layer-swap card: the similarity map, then the reconstructions from the chosen layers (wrapped in rows)."""
    return Card(text.SWAP_CARD, [[CardPanel(picture(heat), text.SIMILARITY), *gallery_panels(panels)]])


def build(page: Page) -> Tab:
    """The layer-swap tab (api /layer_swap); its layer choices follow the chosen model."""
    models = page.catalogue.models

    def layer_update(model_name: str, selected: list[str] | None = None):
        """The layer choices of a model, keeping the chosen ones it has (all when none are chosen)."""
        choices = service.layer_choices(models[model_name])
        return gr.update(choices=choices, value=[name for name in selected or choices if name in choices])

    def run(upload, model_name, layers, entry, progress=gr.Progress()):
        model_name = page.detector_name(model_name, "swap")
        image = read_image(upload, page.max_megapixels)
        progress(0.2, desc=text.RUNNING)
        chosen = list(layers or [])
        result = page.gpu.layer_swap(model_name, image, chosen, entry)
        if result.note:
            gr.Warning(result.note)
        shown = [] if set(chosen) == set(service.layer_choices(models[model_name])) else chosen
        link = LinkState(model=model_name, tab="swap", example=example_name(upload), swap=shown, entry=entry)
        return gallery(result.panels), as_file(result.heat_map), to_query(link)

    def run_example(upload, model_name, entry):
        """An example row: every layer of the example's model."""
        return run(upload, model_name, service.layer_choices(models[model_name]), entry)

    with gr.Tab(text.SWAP_TAB, id="swap"):
        with gr.Row():
            with gr.Column(scale=1, elem_classes=CONTROLS):
                picture = image_input(page.catalogue.limits.max_upload_mb)
                default_layers = service.layer_choices(models[page.catalogue.default])
                layers = gr.CheckboxGroup(default_layers, value=default_layers, label=text.SOURCE_LAYERS)
                entry = gr.Radio(text.ENTRY_CHOICES, value="backbone", label=text.ENTRY, info=text.ENTRY_INFO)
                button = gr.Button(text.RECONSTRUCT, variant="primary")
            with gr.Column(scale=2, elem_classes=SHOWN):
                heat = gr.Image(label=text.SIMILARITY, format="png", height=360, elem_id="swap-heat")
        swap_gallery = results_gallery(text.SWAP_GALLERY, elem_id="swap-gallery")
        inputs = [picture, page.model, layers, entry]
        outputs = [swap_gallery, heat, page.link]
        examples(run_example, [picture, page.model, entry], outputs,
                 [[str(path), example_model(path), "backbone"] for path in page.examples])
        card_maker(page, "swap", [heat, swap_gallery], card)
    button.click(run, inputs, outputs, api_name="layer_swap", api_visibility=PAGE_ONLY, **MODEL_EVENT)
    page.model.change(layer_update, [page.model, layers], layers, api_visibility="private")

    def restore(state: LinkState, image: str | None, model_name: str):
        return image or gr.skip(), layer_update(model_name, state.swap), state.entry

    return Tab("swap", [picture, layers, entry], restore, run, inputs, outputs)
