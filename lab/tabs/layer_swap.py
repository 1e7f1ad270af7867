"""Layer swap: a layer fed to an inverse trained for another, and the layers' similarity map."""

from __future__ import annotations

import gradio as gr

from lab import gpu, service, text
from lab.components import examples, gallery, image_input, read_image
from lab.links import LinkState, example_model, example_name, to_query
from lab.tabs import Tab


def layer_update(model_name: str, selected: list[str] | None = None):
    """The layer choices of a model, keeping the chosen ones it has (all when none are chosen)."""
    choices = service.layer_choices(gpu.model(model_name))
    return gr.update(choices=choices, value=[name for name in selected or choices if name in choices])


def build(page):
    limits = page.catalogue.limits

    def run(upload, model_name, layers, entry, progress=gr.Progress()):
        image = read_image(upload, limits.max_megapixels)
        progress(0.2, desc="Running DETR and the inverters")
        result = gpu.layer_swap(model_name, image, list(layers or []), entry)
        shown = [] if set(layers) == set(service.layer_choices(gpu.model(model_name))) else list(layers)
        link = LinkState(model=model_name, tab="swap", example=example_name(upload), swap=shown, entry=entry)
        return gallery(result.panels), result.heat_map, to_query(link)

    def run_example(upload, model_name, entry):
        """An example row: every layer of the example's model."""
        return run(upload, model_name, service.layer_choices(gpu.model(model_name)), entry)

    with gr.Tab("Layer swap", id="swap"):
        with gr.Row():
            with gr.Column(scale=1):
                picture = image_input()
                default_layers = service.layer_choices(page.catalogue.models[page.catalogue.default])
                layers = gr.CheckboxGroup(default_layers, value=default_layers, label="Source layers")
                entry = gr.Radio(text.ENTRY_CHOICES, value="backbone", label="Encoder layers enter the inverse…",
                                 info="Decoder layers always enter the inverse decoder, as its final output.")
                button = gr.Button("Reconstruct", variant="primary")
            with gr.Column(scale=2):
                heat = gr.Image(label="Similarity between layers for this image (linear CKA)", format="png", height=360,
                                elem_id="swap-heat")
        swap_gallery = gr.Gallery(label="Reconstructions from the chosen layers", columns=4, object_fit="contain",
                                  format="png", height=300, elem_id="swap-gallery")
        inputs = [picture, page.model, layers, entry]
        outputs = [swap_gallery, heat, page.link]
        examples(run_example, [picture, page.model, entry], outputs,
                 [[str(path), example_model(path), "backbone"] for path in page.examples])
    button.click(run, inputs, outputs, api_name="layer_swap")
    page.model.change(layer_update, [page.model, layers], layers, api_visibility="private")

    def restore(state: LinkState, image: str | None, model_name: str):
        return image or gr.skip(), layer_update(model_name, state.swap), state.entry

    return Tab("swap", [picture, layers, entry], restore, run, inputs, outputs)
