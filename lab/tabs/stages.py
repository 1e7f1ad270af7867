"""Stage reconstructions: the image from each stage (and layer), learned or optimisation-based."""

from __future__ import annotations

import gradio as gr

from lab import gpu, text
from lab.components import annotated, examples, gallery, image_input, read_image
from lab.links import LinkState, example_model, example_name, to_query
from lab.tabs import Tab


def build(page):
    limits = page.catalogue.limits

    def run(upload, model_name, all_layers, optimised, progress=gr.Progress()):
        image = read_image(upload, limits.max_megapixels)
        progress(0.2, desc="Running DETR and the inverters")
        result = gpu.stages(model_name, image, bool(all_layers), bool(optimised), progress)
        link = LinkState(model=model_name, tab="stages", example=example_name(upload), layers=bool(all_layers))
        found = result.input.detections
        threshold = gpu.model(model_name).detector.threshold
        summary = "\n\n".join(line for line in (text.detections_found(found) if found else text.no_detection(threshold),
                                                 result.note) if line)
        return annotated(result.input), gallery(result.panels), gallery(result.optimised_panels), summary, to_query(link)

    with gr.Tab("Stage reconstructions", id="stages"):
        with gr.Row():
            with gr.Column(scale=1):
                picture = image_input()
                all_layers = gr.Checkbox(label="Also every encoder and decoder layer")
                optimised = gr.Checkbox(label="Also optimisation-based inversion (slow)",
                                        info="Gradient descent on the pixels, no trained inverter: learned and optimised side by side.")
                button = gr.Button("Reconstruct", variant="primary")
            with gr.Column(scale=2):
                view = gr.AnnotatedImage(label="The detector's view of the input, and its detections", height=360)
                summary = gr.Markdown()
        learned_gallery = gr.Gallery(label="Reconstructions (PSNR and SSIM to the input)", columns=4, object_fit="contain",
                                     format="png", height=300, elem_id="stage-gallery")
        optimised_gallery = gr.Gallery(label="Optimisation-based reconstructions (PSNR and SSIM to the input)", columns=4,
                                       object_fit="contain", format="png", height=300, visible=False, elem_id="optimised-gallery")
        inputs = [picture, page.model, all_layers, optimised]
        outputs = [view, learned_gallery, optimised_gallery, summary, page.link]
        examples(run, inputs, outputs, [[str(path), example_model(path), False, False] for path in page.examples])
    button.click(run, inputs, outputs, api_name="stages")
    optimised.change(lambda visible: gr.update(visible=visible), optimised, optimised_gallery, api_visibility="private")

    def restore(state: LinkState, image: str | None, model_name: str):
        return image or gr.skip(), state.layers

    return Tab("stages", [picture, all_layers], restore, run, inputs, outputs)
