"""Colour perturbation: recolour one object, compare detections and reconstructions before and after."""

from __future__ import annotations

import gradio as gr

from lab import gpu, text
from lab.components import annotated, examples, gallery, image_input, read_image
from lab.links import LinkState, example_model, example_name, to_query
from lab.tabs import Tab

EXAMPLE_PERTURBATIONS = ("red", "blue", "rotate120", "green", "grey")  # one per example row, in turn


def object_choices(detected, selected: int | None = 0):
    choices = [(f"{index}: {d.label} {d.score:.2f}", index) for index, d in enumerate(detected.detections)]
    return gr.update(choices=choices, value=selected if choices else None)


def change_rows(changes) -> list[list[str]]:
    """The detections before and after, one row per object: labels, score change, what happened."""
    def shown(detection):
        return "—" if detection is None else f"{detection.label} {detection.score:.2f}"

    return [[shown(change.before), shown(change.after),
             "—" if change.score_delta is None else f"{change.score_delta:+.2f}", change.status] for change in changes]


def pick_object(event: gr.SelectData):
    """Clicking a box in the annotated image selects that object."""
    return event.index


def build(page):
    limits = page.catalogue.limits

    def run(upload, model_name, object_value, mask_kind, perturbation, hue, progress=gr.Progress()):
        image = read_image(upload, limits.max_megapixels)
        try:
            object_index = None if object_value in (None, "") else int(object_value)
        except (TypeError, ValueError):
            raise gr.Error(text.BAD_OBJECT.format(value=object_value)) from None
        progress(0.2, desc="Running DETR on both images and the inverters")
        result = gpu.perturb(model_name, image, object_index, mask_kind, perturbation, int(hue))
        link = LinkState(model=model_name, tab="perturb", example=example_name(upload), object=result.object_index or 0,
                         mask=mask_kind, perturbation=perturbation, hue=int(hue))
        return (annotated(result.original), object_choices(result.original, result.object_index),
                annotated(result.perturbed, numbered=False), change_rows(result.changes), gallery(result.original_panels),
                gallery(result.perturbed_panels), to_query(link))

    def run_example(*inputs):
        """An example row: the outputs except the object list (Gradio cannot cache choice updates)."""
        original, _, *rest = run(*inputs)
        return original, *rest

    def detect(model_name, upload):
        if upload is None:
            return None, gr.update(choices=[], value=None)
        detected = gpu.detect(model_name, read_image(upload, limits.max_megapixels))
        return annotated(detected), object_choices(detected)

    with gr.Tab("Colour perturbation", id="perturb"):
        with gr.Row():
            with gr.Column(scale=1):
                picture = image_input()
                chosen = gr.Dropdown(label="Object (or click its box)", choices=[], value=0, allow_custom_value=True)
                mask = gr.Radio(text.MASK_CHOICES, value="grabcut", label="Recolour")
                kind = gr.Radio(text.PERTURBATION_CHOICES, value="red", label="Perturbation")
                hue = gr.Slider(0, 179, value=90, step=1, label="Free hue (OpenCV units, degrees / 2)")
                button = gr.Button("Perturb", variant="primary")
            with gr.Column(scale=2):
                with gr.Row():
                    original = gr.AnnotatedImage(label="Original and its detections", height=300)
                    perturbed = gr.AnnotatedImage(label="Perturbed and its detections", height=300)
                changes = gr.Dataframe(headers=["original", "perturbed", "score change", "what happened"],
                                       label="Detections before and after", interactive=False, max_height=300)
        original_gallery = gr.Gallery(label="Reconstructions of the original", columns=4, object_fit="contain", format="png",
                                      height=300)
        perturbed_gallery = gr.Gallery(label="Reconstructions of the perturbed image", columns=4, object_fit="contain",
                                       format="png", height=300, elem_id="perturb-gallery")
        inputs = [picture, page.model, chosen, mask, kind, hue]
        outputs = [original, chosen, perturbed, changes, original_gallery, perturbed_gallery, page.link]
        examples(run_example, inputs, [output for output in outputs if output is not chosen],
                 [[str(path), example_model(path), 0, "grabcut", EXAMPLE_PERTURBATIONS[i % len(EXAMPLE_PERTURBATIONS)], 90]
                  for i, path in enumerate(page.examples)])
    button.click(run, inputs, outputs, api_name="perturb")
    picture.input(detect, [page.model, picture], [original, chosen], api_name="detect")
    original.select(pick_object, None, chosen, api_visibility="private")
    page.model.input(lambda model_name, upload: detect(model_name, upload) if upload is not None else (gr.skip(), gr.skip()),
                     [page.model, picture], [original, chosen], api_visibility="private")

    def restore(state: LinkState, image: str | None, model_name: str):
        return image or gr.skip(), state.object, state.mask, state.perturbation, state.hue

    return Tab("perturb", [picture, chosen, mask, kind, hue], restore, run, inputs, outputs)
