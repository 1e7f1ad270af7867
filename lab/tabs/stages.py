"""Stage reconstructions: the image from each stage (and layer), learned or optimisation-based."""

from __future__ import annotations

import gradio as gr

from inversion.figures import STAGE_CARD_TITLE
from lab import text
from lab.admission import MODEL_EVENT
from lab.cards import Card, annotated_panel, card_maker, gallery_panels
from lab.components import (
    CONTROLS,
    PAGE_ONLY,
    SHOWN,
    annotated,
    compared,
    comparison_slider,
    examples,
    flag,
    gallery,
    gallery_item,
    image_input,
    read_image,
    results_gallery,
    shown_picture,
    unannotated,
)
from lab.links import LinkState, example_model, example_name, to_query
from lab.tabs import Page, Tab


def card(state: LinkState, view, learned, optimised, classifier: bool = False) -> Card:
    """The stage card: the input with its detections (a classifier's without) and its reconstructions, the
    optimised row below if any."""
    rows = [[annotated_panel(view, text.CARD_CLASSIFIER_INPUT if classifier else text.CARD_INPUT), *gallery_panels(learned)]]
    if optimised:
        rows.append(gallery_panels(optimised, text.CARD_OPTIMISED))
    return Card(text.CLASSIFIER_STAGE_CARD_TITLE if classifier else STAGE_CARD_TITLE, rows)


def build(page: Page) -> Tab:
    """The stage-reconstruction tab (api /stages) and its example rows."""

    def run(upload, model_name, all_layers, optimised, progress=gr.Progress()):
        model_name = page.model_name(model_name)
        all_layers, optimised = flag(all_layers, text.ALL_LAYERS), flag(optimised, text.OPTIMISED)
        image = read_image(upload, page.max_megapixels)
        progress(0.2, desc=text.RUNNING)
        link = LinkState(model=model_name, tab="stages", example=example_name(upload), layers=all_layers,
                         optimised=optimised)
        if page.is_classifier(model_name):
            return *classified(model_name, image, all_layers, optimised), to_query(link)
        result = page.gpu.stages(model_name, image, all_layers, optimised, progress)
        found = result.input.detections
        threshold = page.catalogue.models[model_name].detector.threshold
        detections = text.detections_found(found) if found else text.no_detection(threshold)
        summary = "\n\n".join(line for line in (detections, result.note) if line)
        return annotated(result.input), gallery(result.panels), gallery(result.optimised_panels), summary, to_query(link)

    def classified(model_name, image, all_layers, optimised):
        """A classifier's outputs: its view without boxes, its reconstructions, and its classes in the summary."""
        result = page.gpu.classifier_stages(model_name, image, all_layers)
        classes = text.classes_found(result.input.classes, result.input.present,
                                     page.catalogue.models[model_name].classifier.multi_label)
        summary = "\n\n".join(line for line in (classes, result.note, text.CLASSIFIER_OPTIMISED if optimised else "") if line)
        return unannotated(result.input.view), gallery(result.panels), [], summary

    with gr.Tab(text.STAGES_TAB, id="stages"):
        with gr.Row():
            with gr.Column(scale=1, elem_classes=CONTROLS):
                picture = image_input(page.catalogue.limits.max_upload_mb)
                all_layers = gr.Checkbox(label=text.ALL_LAYERS)
                optimised = gr.Checkbox(label=text.OPTIMISED, info=text.OPTIMISED_INFO)
                button = gr.Button(text.RECONSTRUCT, variant="primary")
            with gr.Column(scale=2, elem_classes=SHOWN):
                view = gr.AnnotatedImage(label=text.DETECTOR_VIEW, height=360, elem_id="stage-view")
                summary = gr.Markdown()
        with gr.Row(equal_height=True, elem_classes="comparison-row"):
            with gr.Column(scale=3):
                learned_gallery = results_gallery(text.STAGE_GALLERY, elem_id="stage-gallery")
                optimised_gallery = results_gallery(text.OPTIMISED_GALLERY, visible=False, elem_id="optimised-gallery")
            slider = comparison_slider("stage-slider")
        inputs = [picture, page.model, all_layers, optimised]
        outputs = [view, learned_gallery, optimised_gallery, summary, page.link]
        examples(run, inputs, outputs, [[str(path), example_model(path), False, False] for path in page.examples])
        card_maker(page, "stages", [view, learned_gallery, optimised_gallery],
                   lambda state, *values: card(state, *values, classifier=page.shows_classifier(state)))
    button.click(run, inputs, outputs, api_name="stages", api_visibility=PAGE_ONLY, **MODEL_EVENT)
    optimised.change(lambda visible: gr.update(visible=visible), optimised, optimised_gallery, api_visibility="private")

    def compare(view, panels, index: int = 0):
        """The input against the reconstruction at `index` (the first: after a result)."""
        path, caption = gallery_item(panels, index)
        return compared(shown_picture(view), path, text.stage_compared(caption))

    def compare_chosen(view, panels, event: gr.SelectData):
        return compare(view, panels, event.index)

    view.change(compare, [view, learned_gallery], slider, api_visibility="private", queue=False)
    for shown in (learned_gallery, optimised_gallery):
        shown.select(compare_chosen, [view, shown], slider, api_visibility="private", queue=False)

    def restore(state: LinkState, image: str | None, model_name: str):
        return image or gr.skip(), state.layers, state.optimised

    return Tab("stages", [picture, all_layers, optimised], restore, run, inputs, outputs)
