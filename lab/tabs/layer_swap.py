"""Layer swap: a layer fed to an inverse trained for another, and the layers' similarity map."""

from __future__ import annotations

import gradio as gr

from inversion.core.registry import ClassifierModel
from inversion.figures import CardPanel
from lab import classifier_service, service, text
from lab.admission import MODEL_EVENT
from lab.cards import Card, card_maker, gallery_panels, picture
from lab.components import CONTROLS, PAGE_ONLY, SHOWN, as_file, examples, gallery, image_input, read_image, results_gallery
from lab.links import LinkState, example_model, example_name, to_query
from lab.tabs import Page, Tab


def card(state: LinkState, heat, panels) -> Card:
    """The layer-swap card: the similarity map, then the reconstructions from the chosen layers (wrapped in rows)."""
    return Card(text.SWAP_CARD, [[CardPanel(picture(heat), text.SIMILARITY), *gallery_panels(panels)]])


def layer_choices(model) -> list:
    """The layers a swap can start from: a detector's encoder and decoder layers, a classifier's encoder entries
    ((label, value) pairs: the embedding, its blocks and mergings)."""
    if isinstance(model, ClassifierModel):
        return classifier_service.swap_layers(model)
    return service.layer_choices(model)


def layer_values(model) -> list[str]:
    return [choice if isinstance(choice, str) else choice[1] for choice in layer_choices(model)]


def entry_update(model, value=None) -> dict:
    """The inverse choices of a model (a classifier's: its inverse patch embedding or whole inverse encoder)."""
    classifier = isinstance(model, ClassifierModel)
    return gr.update(choices=text.CLASSIFIER_ENTRY_CHOICES if classifier else text.ENTRY_CHOICES,
                     info=text.CLASSIFIER_ENTRY_INFO if classifier else text.ENTRY_INFO,
                     **({} if value is None else {"value": value}))


def sent_layers(payload) -> list[str]:
    """The chosen layers as sent, checked by the service against the chosen model's own (Gradio would check them
    against the first model's choices, refusing another model's layers sent through the API)."""
    if payload is None:
        return []
    if not isinstance(payload, list) or not all(isinstance(name, str) for name in payload):
        raise gr.Error(text.BAD_LAYERS.format(value=payload), print_exception=False)
    return payload


def build(page: Page) -> Tab:
    """The layer-swap tab (api /layer_swap); its layer and inverse choices follow the chosen model."""
    models = page.catalogue.models

    def layer_update(model_name: str, selected: list[str] | None = None):
        """The layer choices of a model, keeping the chosen ones it has (all when none are chosen)."""
        values = layer_values(models[model_name])
        return gr.update(choices=layer_choices(models[model_name]),
                         value=[name for name in selected or values if name in values])

    def run(upload, model_name, layers, entry, progress=gr.Progress()):
        model_name = page.model_name(model_name)
        image = read_image(upload, page.max_megapixels)
        progress(0.2, desc=text.RUNNING)
        chosen = list(layers or [])
        swap = page.gpu.classifier_layer_swap if page.is_classifier(model_name) else page.gpu.layer_swap
        result = swap(model_name, image, chosen, entry)
        if result.note:
            gr.Warning(result.note)
        shown = [] if set(chosen) == set(layer_values(models[model_name])) else chosen
        link = LinkState(model=model_name, tab="swap", example=example_name(upload), swap=shown, entry=entry)
        return gallery(result.panels), as_file(result.heat_map), to_query(link)

    def run_example(upload, model_name, entry):
        """An example row: every layer of the example's model."""
        return run(upload, model_name, layer_values(models[model_name]), entry)

    with gr.Tab(text.SWAP_TAB, id="swap"):
        with gr.Row():
            with gr.Column(scale=1, elem_classes=CONTROLS):
                picture = image_input(page.catalogue.limits.max_upload_mb)
                default = models[page.catalogue.default]
                layers = gr.CheckboxGroup(layer_choices(default), value=layer_values(default), label=text.SOURCE_LAYERS)
                layers.preprocess = sent_layers
                default_entry = entry_update(default)
                entry = gr.Radio(default_entry["choices"], value="backbone", label=text.ENTRY, info=default_entry["info"])
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
    page.model.change(lambda name, selected: (layer_update(name, selected), entry_update(models[name])),
                      [page.model, layers], [layers, entry], api_visibility="private")

    def restore(state: LinkState, image: str | None, model_name: str):
        return image or gr.skip(), layer_update(model_name, state.swap), entry_update(models[model_name], state.entry)

    return Tab("swap", [picture, layers, entry], restore, run, inputs, outputs)
