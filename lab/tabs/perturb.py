"""Colour perturbation: recolour one object, compare detections and reconstructions before and after."""

from __future__ import annotations

import gradio as gr

from lab import text
from lab.admission import MODEL_EVENT
from lab.cards import Card, annotated_panel, card_maker, gallery_panels
from lab.components import (
    CONTROLS,
    PAGE_ONLY,
    SHOWN,
    annotated,
    change_rows,
    compared,
    comparison_slider,
    examples,
    flag,
    gallery,
    gallery_item,
    hue_value,
    image_input,
    pick_object,
    read_image,
    results_gallery,
    shown_picture,
    unannotated,
)
from lab.links import LinkState, example_model, example_name, to_query
from lab.tabs import Page, Tab

EXAMPLE_PERTURBATIONS = ("red", "blue", "rotate120", "green", "grey")  # one per example row, in turn


def example_mask(path) -> str:
    """Shapes examples recolour their first object; photos the whole image (DETR-R50 finds objects in them, a
    stand-in with random weights none, and the example must work for both)."""
    return "grabcut" if example_model(path) == "shapes" else "image"


def object_choices(detected, selected: int | None = 0):
    """The object list: one choice per detection, numbered as in the annotated image."""
    choices = [(text.detection_label(index, d), index) for index, d in enumerate(detected.detections)]
    return gr.update(choices=choices, value=selected if choices else None)


def card(state: LinkState, original, perturbed, changes, original_panels, perturbed_panels, classifier: bool = False) -> Card:
    """The perturbation card: the original and the perturbed image, each with its detections (a classifier's
    classes: in the line below) and reconstructions."""
    captions = (text.CARD_ORIGINAL, text.CARD_PERTURBED) if classifier else (text.ORIGINAL, text.PERTURBED)
    rows = [[annotated_panel(original, captions[0]), *gallery_panels(original_panels)],
            [annotated_panel(perturbed, captions[1]), *gallery_panels(perturbed_panels)]]
    table = changes.values.tolist() if changes is not None else []
    return Card(text.perturbation_card_title(state.perturbation, state.hue, classifier), rows, text.changes_line(table))


def build(page: Page) -> Tab:
    """The colour-perturbation tab (api /perturb, and /detect when an image is uploaded)."""

    def run(upload, model_name, object_value, mask_kind, perturbation, hue, optimised=False, progress=gr.Progress()):
        model_name, hue = page.model_name(model_name), hue_value(hue)
        optimised = flag(optimised, text.PERTURB_OPTIMISED)
        image = read_image(upload, page.max_megapixels)
        try:
            object_index = None if object_value in (None, "") else int(object_value)
        except (TypeError, ValueError):
            raise gr.Error(text.BAD_OBJECT.format(value=object_value)) from None
        progress(0.2, desc=text.PERTURBING)
        if page.is_classifier(model_name):
            result = page.gpu.classifier_perturb(model_name, image, mask_kind, perturbation, hue)
            link = LinkState(model=model_name, tab="perturb", example=example_name(upload), mask=mask_kind,
                             perturbation=perturbation, hue=hue, optimised=optimised)
            changes = {"headers": text.CLASS_CHANGE_HEADERS, "data": text.class_change_rows(result.changes)}
            return (unannotated(result.original.view), gr.update(choices=[], value=None), unannotated(result.perturbed.view),
                    changes, gallery(result.original_panels), gallery(result.perturbed_panels), to_query(link))
        result = page.gpu.perturb(model_name, image, object_index, mask_kind, perturbation, hue, optimised, progress)
        if result.note:
            gr.Warning(result.note)
        link = LinkState(model=model_name, tab="perturb", example=example_name(upload), object=result.object_index or 0,
                         mask=mask_kind, perturbation=perturbation, hue=hue, optimised=optimised)
        return (annotated(result.original), object_choices(result.original, result.object_index),
                annotated(result.perturbed, numbered=False), change_rows(result.changes), gallery(result.original_panels),
                gallery(result.perturbed_panels), to_query(link))

    def run_example(*inputs):
        """An example row: the outputs except the object list (Gradio cannot cache choice updates)."""
        original, _, *rest = run(*inputs)
        return original, *rest

    def detect(model_name, upload):
        """The detections of a new image, to choose the object from."""
        if upload is None:
            return None, gr.update(choices=[], value=None)
        model_name, image = page.model_name(model_name), read_image(upload, page.max_megapixels)
        if page.is_classifier(model_name):
            return unannotated(page.gpu.classify(model_name, image).view), gr.update(choices=[], value=None)
        detected = page.gpu.detect(model_name, image)
        return annotated(detected), object_choices(detected)

    def detect_again(model_name, upload):
        """Another model chosen: the detections of the image already there, if any."""
        return detect(model_name, upload) if upload is not None else (gr.skip(), gr.skip())

    with gr.Tab(text.PERTURB_TAB, id="perturb"):
        with gr.Row():
            with gr.Column(scale=1, elem_classes=CONTROLS):
                picture = image_input(page.catalogue.limits.max_upload_mb)
                chosen = gr.Dropdown(label=text.OBJECT, choices=[], value=0, allow_custom_value=True)
                mask = gr.Radio(text.MASK_CHOICES, value="grabcut", label=text.MASK)
                kind = gr.Radio(text.PERTURBATION_CHOICES, value="red", label=text.PERTURBATION)
                hue = gr.Slider(0, 179, value=90, step=1, label=text.HUE)
                optimised = gr.Checkbox(label=text.PERTURB_OPTIMISED, info=text.PERTURB_OPTIMISED_INFO)
                button = gr.Button(text.PERTURB, variant="primary")
            with gr.Column(scale=2, elem_classes=SHOWN):
                with gr.Row():
                    original = gr.AnnotatedImage(label=text.ORIGINAL, height=300, elem_id="perturb-original")
                    perturbed = gr.AnnotatedImage(label=text.PERTURBED, height=300, elem_id="perturb-perturbed")
                changes = gr.Dataframe(headers=text.CHANGE_HEADERS, label=text.CHANGES, interactive=False, max_height=300)
        with gr.Row(equal_height=True, elem_classes="comparison-row"):
            with gr.Column(scale=3):
                original_gallery = results_gallery(text.ORIGINAL_GALLERY, elem_id="original-gallery")
                perturbed_gallery = results_gallery(text.PERTURBED_GALLERY, elem_id="perturb-gallery")
            with gr.Column(scale=2):
                images_slider = comparison_slider("perturb-slider")
                reconstructions_slider = comparison_slider("perturb-reconstruction-slider")
        inputs = [picture, page.model, chosen, mask, kind, hue, optimised]
        outputs = [original, chosen, perturbed, changes, original_gallery, perturbed_gallery, page.link]
        examples(run_example, inputs, [output for output in outputs if output is not chosen],
                 [[str(path), example_model(path), 0, example_mask(path), EXAMPLE_PERTURBATIONS[i % len(EXAMPLE_PERTURBATIONS)],
                   90, False] for i, path in enumerate(page.examples)])
        card_maker(page, "perturb", [original, perturbed, changes, original_gallery, perturbed_gallery],
                   lambda state, *values: card(state, *values, classifier=page.shows_classifier(state)))
    button.click(run, inputs, outputs, api_name="perturb", api_visibility=PAGE_ONLY, **MODEL_EVENT)
    picture.input(detect, [page.model, picture], [original, chosen], api_name="detect", api_visibility=PAGE_ONLY,
                  **MODEL_EVENT)
    original.select(pick_object, None, chosen, api_visibility="private")

    def compare_reconstructions(original_panels, perturbed_panels, index: int = 0):
        """The original's and the perturbed image's reconstructions from one stage (the first: after a result)."""
        (before, caption), (after, _) = gallery_item(original_panels, index), gallery_item(perturbed_panels, index)
        return compared(before, after, text.perturbation_compared(caption))

    def compare_all(original_view, perturbed_view, original_panels, perturbed_panels):
        return (compared(shown_picture(original_view), shown_picture(perturbed_view), text.PERTURBED_COMPARED),
                compare_reconstructions(original_panels, perturbed_panels))

    def compare_chosen(original_panels, perturbed_panels, event: gr.SelectData):
        return compare_reconstructions(original_panels, perturbed_panels, event.index)

    perturbed.change(compare_all, [original, perturbed, original_gallery, perturbed_gallery],
                     [images_slider, reconstructions_slider], api_visibility="private", queue=False)
    for shown in (original_gallery, perturbed_gallery):
        shown.select(compare_chosen, [original_gallery, perturbed_gallery], reconstructions_slider,
                     api_visibility="private", queue=False)
    page.model.input(detect_again, [page.model, picture], [original, chosen], api_visibility="private")

    def restore(state: LinkState, image: str | None, model_name: str):
        return image or gr.skip(), state.object, state.mask, state.perturbation, state.hue, state.optimised

    return Tab("perturb", [picture, chosen, mask, kind, hue, optimised], restore, run, inputs, outputs)
