"""DETR Inversion Lab: the Gradio app (a Hugging Face Space on ZeroGPU, or `python app.py` on a laptop).

The UI only: each user action loads its image on the CPU, then makes one @spaces.GPU call to a
function of inversion.experiments, and renders what it returns. The models come from
space_config.yaml (the environment variable INVERSION_SPACE_CONFIG names another file); they
are loaded and placed on the device at import, as ZeroGPU requires. INVERSION_OPTIMISE_STEPS sets
the steps per stage of optimisation-based inversion (default: each model's budget).
"""

import spaces  # noqa: I001  (first: ZeroGPU patches torch before anything touches CUDA)

import base64
import os
from pathlib import Path
from contextlib import contextmanager

import gradio as gr
import torch

from lab import service as experiments
from lab.catalogue import load_catalogue
from lab.links import EXAMPLES_DIR, LinkState, example_files, example_model, example_name, from_query, to_query
from inversion.core.errors import UserFacingError
from inversion.core.images import load_image
from inversion.experiments.colour import PERTURBATIONS
from inversion.tradeoff import live as tradeoff

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CATALOGUE = load_catalogue(device=DEVICE)
MODELS = CATALOGUE.models
OPTIMISE_STEPS = int(os.environ.get("INVERSION_OPTIMISE_STEPS", 0)) or None  # None: experiments.optimise_budget
EXAMPLES = [path for path in example_files() if example_model(path) in MODELS]
SWEEP = tradeoff.load_sweep(Path(__file__).parent / "checkpoints" / "tradeoff" / "results.json")

MASK_CHOICES = [("GrabCut inside its box", "grabcut"), ("its whole box", "box"), ("the whole image", "image")]
PERTURBATION_CHOICES = [
    ("hue to red", "red"), ("hue to green", "green"), ("hue to blue", "blue"), ("rotate hue 120°", "rotate120"),
    ("rotate hue 240°", "rotate240"), ("grey", "grey"), ("free hue (slider)", "hue"),
]
assert {value for _, value in PERTURBATION_CHOICES} == {*PERTURBATIONS, "hue"}
ENTRY_CHOICES = [("as the backbone map", "backbone"), ("as the final encoder output", "encoder")]


def raw_upload(payload):
    """An image input's file as uploaded (a path, or bytes from a data URL), for load_image to judge.

    gr.Image's own preprocessing opens the file with PIL first and fails on non-images with a
    message naming a temporary path; load_image explains every bad file instead.
    """
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        return base64.b64decode(payload.url.split(",", 1)[1])
    return payload.path


# ---------------------------------------------------------------- GPU calls, one per user action


def gpu_seconds(model_name: str, images: int, reconstructions: int, optimisation_steps: int = 0) -> int:
    """A generous ZeroGPU budget for one request: grows with the canvas and the work asked for.

    At 480x640, a second per image and reconstruction and a tenth of one per optimisation step.
    """
    height, width = MODELS[model_name].spec.working_size
    return int(5 + (images * (1 + reconstructions) + optimisation_steps / 10) * height * width / (480 * 640))


def stage_seconds(model_name: str, image, all_layers: bool, optimised: bool, progress=None) -> int:
    """The budget of a stage-reconstruction request (gpu_stages' arguments): reconstructions and optimisation."""
    model = MODELS[model_name]
    learned = 0 if model.inverters is None else 20 if all_layers else 4
    steps = experiments.optimised_stage_steps(model, optimised, OPTIMISE_STEPS)
    return gpu_seconds(model_name, 1, learned, 4 * steps)  # the four stages


@contextmanager
def user_errors():
    """Problems the user can fix become a gr.Error with the library's message."""
    try:
        yield
    except UserFacingError as error:
        raise gr.Error(str(error), print_exception=False) from None


@spaces.GPU(duration=lambda model_name, image: gpu_seconds(model_name, 1, 0))
def gpu_detect(model_name, image):
    with user_errors():
        return experiments.detect(MODELS[model_name], image)


@spaces.GPU(duration=stage_seconds)
def gpu_stages(model_name, image, all_layers, optimised, progress):
    with user_errors():
        return experiments.stage_reconstructions(
            MODELS[model_name], image, all_layers, optimised, OPTIMISE_STEPS,
            progress=lambda fraction, text: progress(fraction, desc=text),
        )


@spaces.GPU(duration=lambda model_name, image, layers, entry: gpu_seconds(model_name, 1, len(layers)))
def gpu_swap(model_name, image, layers, entry):
    with user_errors():
        return experiments.layer_swap(MODELS[model_name], image, layers, entry)


@spaces.GPU(duration=lambda model_name, image, *settings: gpu_seconds(model_name, 2, 4))
def gpu_perturb(model_name, image, object_index, mask_kind, perturbation, hue):
    with user_errors():
        return experiments.colour_perturbation(MODELS[model_name], image, object_index, mask_kind, perturbation, hue)


# ---------------------------------------------------------------- event handlers (CPU side)


def read_image(upload):
    if upload is None:
        raise gr.Error("Upload an image, take one with the webcam, or click an example first.")
    with user_errors():
        return load_image(upload, CATALOGUE.limits.max_megapixels)


def annotated(detected, numbered: bool = True):
    """(image, boxes) for gr.AnnotatedImage; numbered labels match the object list."""
    boxes = [
        (tuple(round(value) for value in d.box), f"{index}: {d.label} {d.score:.2f}" if numbered else f"{d.label} {d.score:.2f}")
        for index, d in enumerate(detected.detections)
    ]
    return detected.view, boxes


def gallery(panels):
    return [(panel.image, panel.caption) for panel in panels]


def detection_summary(model_name: str, detected) -> str:
    if not detected.detections:
        threshold = MODELS[model_name].detector.threshold
        return f"No object detected (score threshold {threshold:g}): the reconstructions show what DETR kept anyway."
    found = ", ".join(f"{d.label} {d.score:.2f}" for d in detected.detections)
    return f"{len(detected.detections)} detected: {found}."


def object_choices(detected, selected: int | None = 0):
    choices = [(f"{index}: {d.label} {d.score:.2f}", index) for index, d in enumerate(detected.detections)]
    return gr.update(choices=choices, value=selected if choices else None)


def layer_update(model_name: str, selected: list[str] | None = None):
    choices = experiments.layer_choices(MODELS[model_name])
    return gr.update(choices=choices, value=[name for name in selected or choices if name in choices])


def change_rows(changes) -> list[list[str]]:
    def text(detection):
        return "—" if detection is None else f"{detection.label} {detection.score:.2f}"

    return [
        [text(change.before), text(change.after),
         "—" if change.score_delta is None else f"{change.score_delta:+.2f}", change.status]
        for change in changes
    ]


def run_stages(upload, model_name, all_layers, optimised, progress=gr.Progress()):
    image = read_image(upload)
    progress(0.2, desc="Running DETR and the inverters")
    result = gpu_stages(model_name, image, bool(all_layers), bool(optimised), progress)
    link = LinkState(model=model_name, tab="stages", example=example_name(upload), layers=bool(all_layers))
    summary = "\n\n".join(text for text in (detection_summary(model_name, result.input), result.note) if text)
    return annotated(result.input), gallery(result.panels), gallery(result.optimised_panels), summary, to_query(link)


def run_swap(upload, model_name, layers, entry, progress=gr.Progress()):
    image = read_image(upload)
    progress(0.2, desc="Running DETR and the inverters")
    result = gpu_swap(model_name, image, list(layers or []), entry)
    shown = [] if set(layers) == set(experiments.layer_choices(MODELS[model_name])) else list(layers)
    link = LinkState(model=model_name, tab="swap", example=example_name(upload), swap=shown, entry=entry)
    return gallery(result.panels), result.heat_map, to_query(link)


def swap_example(upload, model_name, entry):
    """An example row: every layer of the example's model."""
    return run_swap(upload, model_name, experiments.layer_choices(MODELS[model_name]), entry)


def detect_objects(model_name, upload):
    if upload is None:
        return None, gr.update(choices=[], value=None)
    detected = gpu_detect(model_name, read_image(upload))
    return annotated(detected), object_choices(detected)


def run_perturb(upload, model_name, object_value, mask_kind, perturbation, hue, progress=gr.Progress()):
    image = read_image(upload)
    try:
        object_index = None if object_value in (None, "") else int(object_value)
    except (TypeError, ValueError):
        raise gr.Error(f"Choose an object from the list (got {object_value!r}).") from None
    progress(0.2, desc="Running DETR on both images and the inverters")
    result = gpu_perturb(model_name, image, object_index, mask_kind, perturbation, int(hue))
    link = LinkState(model=model_name, tab="perturb", example=example_name(upload), object=result.object_index or 0,
                     mask=mask_kind, perturbation=perturbation, hue=int(hue))
    return (
        annotated(result.original),
        object_choices(result.original, result.object_index),
        annotated(result.perturbed, numbered=False),
        change_rows(result.changes),
        gallery(result.original_panels),
        gallery(result.perturbed_panels),
        to_query(link),
    )


def perturb_example(*inputs):
    """An example row: the perturbation's outputs except the object list (Gradio cannot cache choice updates)."""
    original, _, *rest = run_perturb(*inputs)
    return original, *rest


def show(visible: bool):
    """Show or hide a component (the optimised gallery follows its checkbox)."""
    return gr.update(visible=visible)


def pick_object(event: gr.SelectData):
    """Clicking a box in the annotated image selects that object."""
    return event.index


def run_tradeoff(arch, latent, lam, progress=gr.Progress()):
    """Train one small classifier-autoencoder on digits (CPU, seconds) and place it on the shipped sweep."""
    result = tradeoff.train_live(arch, int(latent), float(lam), progress=progress)
    stopped = "" if result.steps >= result.planned_steps else f" (stopped after {result.steps} of {result.planned_steps} steps: the machine is busy)"
    summary = (f"**{arch}, latent {result.latent}, λ = {result.lam:g}**: test accuracy {result.accuracy:.1%}, "
               f"reconstruction MSE {result.mse:.4f}, trained in {result.seconds:.1f} s{stopped}.")
    return result.grid(), summary, tradeoff.figure(SWEEP, "frontier", archs=[arch], highlight=result.point())


def model_notice(model_name: str) -> str:
    lines = [f"**{label}** is not available here: {why}" for label, why in CATALOGUE.problems.items()]
    model = MODELS.get(model_name)
    if model is not None and model.inverters is None:
        lines.append(f"**{model.spec.label}** has no trained inverters yet: stage reconstructions are "
                     "optimisation-based (slower), and the layer swap and colour perturbation need trained inverters.")
    return "\n\n".join(f"⚠️ {line}" for line in lines)


def on_model_change(model_name, layers):
    """Another model: its notice, and its layers in the layer-swap tab (keeping the chosen ones it has)."""
    return model_notice(model_name), layer_update(model_name, layers)


def on_model_input(model_name, perturb_upload):
    """The user picked a model: its detections in the perturbation tab."""
    return detect_objects(model_name, perturb_upload) if perturb_upload is not None else (gr.skip(), gr.skip())


def restore(request: gr.Request):
    """Open the page in the state its link describes; returns the tab to re-run (when an example is named)."""
    state = from_query(dict(request.query_params), list(MODELS), [path.name for path in EXAMPLES])
    model_name = state.model or CATALOGUE.default
    image = str(EXAMPLES_DIR / state.example) if state.example else None

    def for_tab(tab):
        return image if state.tab == tab and image else gr.skip()

    return (
        model_name, gr.update(selected=state.tab),
        for_tab("stages"), state.layers,
        for_tab("swap"), layer_update(model_name, state.swap), state.entry,
        for_tab("perturb"), state.object, state.mask, state.perturbation, state.hue,
        state.tab if image else "",
    )


def rerun(tab, handler, outputs: int):
    """A handler that re-runs `tab`'s action after a link is opened, and does nothing for other tabs."""

    def run(pending, *inputs):
        return handler(*inputs) if pending == tab else (gr.skip(),) * outputs

    return run


# ---------------------------------------------------------------- the page

# When a link is opened, show its URL; when a result changes the link, put it in the address bar.
LINK_JS = """(query) => {
    if (!query || !query.startsWith("?")) return query;
    const url = new URL(window.location.href);
    url.search = query;
    window.history.replaceState(null, "", url);
    return url.toString();
}"""

ABOUT = """
### What you are looking at
DETR runs once on your image. The representation after its **backbone**, after every **encoder** and
**decoder** layer, and its **predictions** (a class and a box per query) are captured and turned back into
images by small inverse networks, one per DETR module, each trained to undo its module while the detector
stays frozen (the *modular* training of the paper). A reconstruction from a deep stage chains the inverses
down to pixels. What survives shows what DETR keeps: shapes and layout survive every stage, colour and
detail fade with depth and drift toward the typical colour of the detected class, and objects the detector
ignores vanish.

- **Stage reconstructions**: the image from each stage (optionally from every layer), with PSNR and SSIM to the input.
- **Layer swap**: a layer fed to an inverse trained for another layer. Neighbouring layers reconstruct well, distant
  ones less so: the residual stream changes gradually. The heat map is the linear CKA between layers.
- **Colour perturbation**: recolour one object and see whether DETR's detections and its reconstructions keep the
  new colour or revert to the class's prototype.

The **Shapes world** (a tiny DETR trained on synthetic shapes whose classes have typical colours: circle red,
square green, triangle blue, star yellow) runs offline; **DETR-R50** is `facebook/detr-resnet-50` from the
Hugging Face Hub. Links restore the model, tab, example and settings of a result.

### Links
[Paper (arXiv:2412.06534)](https://arxiv.org/abs/2412.06534) ·
[the authors' code](https://github.com/wiskott-lab/inverse-tvm) ·
[DETR](https://github.com/facebookresearch/detr)

### Citation
```bibtex
@article{rathjens2024inverting,
  title   = {Inverting Visual Representations with Detection Transformers},
  author  = {Rathjens, Jan and Reyhanian, Shirin and Kappel, David and Wiskott, Laurenz},
  journal = {arXiv preprint arXiv:2412.06534},
  year    = {2024}
}
```
"""


TRADEOFF_ABOUT = """\
**Classification vs reconstruction in one latent** (Rathjens & Wiskott, arXiv:2401.09237).
A small network encodes a digit into a few numbers (the latent); a classifier reads the class from
them and a decoder redraws the digit from them. The encoder is trained on
λ · reconstruction MSE + (1 − λ) · cross-entropy; the decoder learns only from the MSE and the
classifier only from the cross-entropy, so at every λ the decoder shows what the latent still
holds of the image.

A detector such as DETR is the λ = 0 end: trained for its task alone, with nothing asking it to
keep the image. The inversion tabs train decoders on its frozen features after the fact, exactly
like this decoder at λ = 0, and show what survives. Moving λ toward 1 buys back image detail at
the price of accuracy; a wider latent or a bigger network makes the price smaller.
"""


def method_picture() -> str:
    """The forward stages and their inverses as a small HTML diagram."""
    stages = ["image", "backbone", "encoder", "decoder", "prediction"]
    box = "padding:6px 12px;border:1px solid #888;border-radius:6px;background:{};"
    forward = " → ".join(f'<span style="{box.format("#e8f0fe")}">{stage}</span>' for stage in stages)
    inverse = " ← ".join(f'<span style="{box.format("#fdecea")}">{stage}</span>' for stage in stages)
    return (f'<div style="line-height:2.6;font-family:sans-serif;color:#222">DETR: {forward}<br>'
            f"inverses: {inverse}<br><small>each ← is a trained inverse module; chained, they map any stage back "
            "to pixels</small></div>")


def image_input(label="Image"):
    component = gr.Image(label=label, type="filepath", sources=["upload", "webcam", "clipboard"], height=300)
    component.preprocess = raw_upload  # (not a subclass: Gradio would write an app.pyi for it)
    return component


def examples(fn, inputs, outputs, rows):
    """Example rows (image, model, settings...), each run on first click and cached."""
    return gr.Examples(
        examples=rows, inputs=inputs, outputs=outputs, fn=fn, cache_examples=True, cache_mode="lazy",
        example_labels=[example_label(row) for row in rows], examples_per_page=12,
    )


def example_label(row) -> str:
    return f"{os.path.basename(row[0]).rsplit('.', 1)[0]} · {row[1]}"


with gr.Blocks(title="DETR Inversion Lab") as demo:
    gr.Markdown("# DETR Inversion Lab\nWhat does a Detection Transformer keep of an image? "
                "Reconstruct it from every stage and layer of DETR.")
    model = gr.Dropdown(choices=[(m.spec.label, name) for name, m in MODELS.items()], value=CATALOGUE.default,
                        label="Model", interactive=True)
    notice = gr.Markdown(model_notice(CATALOGUE.default), elem_id="model-notice")
    pending = gr.State("")
    link = gr.Textbox(label="Link to this result", buttons=["copy"], interactive=False, elem_id="result-link",
                      render=False, info="Opens the app with the same model, tab, example and settings "
                                         "(uploaded images are not part of links).")

    with gr.Tabs() as tabs:
        with gr.Tab("Stage reconstructions", id="stages"):
            with gr.Row():
                with gr.Column(scale=1):
                    stage_image = image_input()
                    all_layers = gr.Checkbox(label="Also every encoder and decoder layer")
                    optimised = gr.Checkbox(label="Also optimisation-based inversion (slow)",
                                            info="Gradient descent on the pixels, no trained inverter: "
                                                 "learned and optimised side by side.")
                    stage_button = gr.Button("Reconstruct", variant="primary")
                with gr.Column(scale=2):
                    stage_input = gr.AnnotatedImage(label="The detector's view of the input, and its detections",
                                                    height=360)
                    stage_summary = gr.Markdown()
            stage_gallery = gr.Gallery(label="Reconstructions (PSNR and SSIM to the input)", columns=4,
                                       object_fit="contain", format="png", height=300, elem_id="stage-gallery")
            optimised_gallery = gr.Gallery(label="Optimisation-based reconstructions (PSNR and SSIM to the input)",
                                           columns=4, object_fit="contain", format="png", height=300, visible=False,
                                           elem_id="optimised-gallery")
            stage_in = [stage_image, model, all_layers, optimised]
            stage_out = [stage_input, stage_gallery, optimised_gallery, stage_summary, link]
            examples(run_stages, stage_in, stage_out,
                     [[str(path), example_model(path), False, False] for path in EXAMPLES])

        with gr.Tab("Layer swap", id="swap"):
            with gr.Row():
                with gr.Column(scale=1):
                    swap_image = image_input()
                    default_layers = experiments.layer_choices(MODELS[CATALOGUE.default])
                    swap_layers = gr.CheckboxGroup(default_layers, value=default_layers, label="Source layers")
                    swap_entry = gr.Radio(ENTRY_CHOICES, value="backbone", label="Encoder layers enter the inverse…",
                                          info="Decoder layers always enter the inverse decoder, as its final output.")
                    swap_button = gr.Button("Reconstruct", variant="primary")
                with gr.Column(scale=2):
                    swap_heat = gr.Image(label="Similarity between layers for this image (linear CKA)", format="png",
                                         height=360, elem_id="swap-heat")
            swap_gallery = gr.Gallery(label="Reconstructions from the chosen layers", columns=4, object_fit="contain",
                                      format="png", height=300, elem_id="swap-gallery")
            swap_in = [swap_image, model, swap_layers, swap_entry]
            swap_out = [swap_gallery, swap_heat, link]
            examples(swap_example, [swap_image, model, swap_entry], swap_out,
                     [[str(path), example_model(path), "backbone"] for path in EXAMPLES])

        with gr.Tab("Colour perturbation", id="perturb"):
            with gr.Row():
                with gr.Column(scale=1):
                    perturb_image = image_input()
                    perturb_object = gr.Dropdown(label="Object (or click its box)", choices=[], value=0,
                                                 allow_custom_value=True)
                    perturb_mask = gr.Radio(MASK_CHOICES, value="grabcut", label="Recolour")
                    perturb_kind = gr.Radio(PERTURBATION_CHOICES, value="red", label="Perturbation")
                    perturb_hue = gr.Slider(0, 179, value=90, step=1, label="Free hue (OpenCV units, degrees / 2)")
                    perturb_button = gr.Button("Perturb", variant="primary")
                with gr.Column(scale=2):
                    with gr.Row():
                        perturb_original = gr.AnnotatedImage(label="Original and its detections", height=300)
                        perturb_result = gr.AnnotatedImage(label="Perturbed and its detections", height=300)
                    perturb_changes = gr.Dataframe(headers=["original", "perturbed", "score change", "what happened"],
                                                   label="Detections before and after", interactive=False,
                                                   max_height=300)
            perturb_original_gallery = gr.Gallery(label="Reconstructions of the original", columns=4,
                                                  object_fit="contain", format="png", height=300)
            perturb_result_gallery = gr.Gallery(label="Reconstructions of the perturbed image", columns=4,
                                                object_fit="contain", format="png", height=300,
                                                elem_id="perturb-gallery")
            perturb_in = [perturb_image, model, perturb_object, perturb_mask, perturb_kind, perturb_hue]
            perturb_out = [perturb_original, perturb_object, perturb_result, perturb_changes, perturb_original_gallery,
                           perturb_result_gallery, link]
            kinds = ["red", "blue", "rotate120", "green", "grey"]
            examples(perturb_example, perturb_in, [output for output in perturb_out if output is not perturb_object],
                     [[str(path), example_model(path), 0, "grabcut", kinds[i % len(kinds)], 90]
                      for i, path in enumerate(EXAMPLES)])

        with gr.Tab("Classification vs reconstruction", id="tradeoff"):
            gr.Markdown(TRADEOFF_ABOUT)
            with gr.Row():
                with gr.Column(scale=1):
                    tradeoff_arch = gr.Dropdown(tradeoff.architectures(SWEEP), value="fc-m", label="Architecture")
                    tradeoff_latent = gr.Radio(tradeoff.latents(SWEEP), value=8, label="Latent size")
                    tradeoff_lambda = gr.Slider(0, 1, value=0.5, step=0.1, label="λ (weight of reconstruction)")
                    tradeoff_button = gr.Button("Train on digits", variant="primary")
                with gr.Column(scale=2):
                    tradeoff_digits = gr.Image(label="Test digits (top) and their reconstructions (bottom)",
                                               format="png", elem_id="tradeoff-digits")
                    tradeoff_summary = gr.Markdown()
            tradeoff_plot = gr.Plot(tradeoff.figure(SWEEP, "frontier", archs=["fc-m"]),
                                    label="Shipped digits sweep: accuracy against reconstruction MSE (star: your run)")
            for plot_name in ("accuracy", "mse"):
                gr.Plot(tradeoff.figure(SWEEP, plot_name), label=f"Shipped sweep: test {plot_name} against λ")

        with gr.Tab("About", id="about"):
            gr.HTML(method_picture())
            gr.Markdown(ABOUT)

    link.render()

    stage_button.click(run_stages, stage_in, stage_out, api_name="stages")
    swap_button.click(run_swap, swap_in, swap_out, api_name="layer_swap")
    perturb_button.click(run_perturb, perturb_in, perturb_out, api_name="perturb")
    tradeoff_button.click(run_tradeoff, [tradeoff_arch, tradeoff_latent, tradeoff_lambda],
                          [tradeoff_digits, tradeoff_summary, tradeoff_plot], api_name="tradeoff")
    perturb_image.input(detect_objects, [model, perturb_image], [perturb_original, perturb_object], api_name="detect")
    perturb_original.select(pick_object, None, perturb_object, api_visibility="private")
    optimised.change(show, optimised, optimised_gallery, api_visibility="private")
    model.change(on_model_change, [model, swap_layers], [notice, swap_layers], api_visibility="private")
    model.input(on_model_input, [model, perturb_image], [perturb_original, perturb_object], api_visibility="private")
    link.change(None, link, link, js=LINK_JS, api_visibility="private")

    demo.load(
        restore, None,
        [model, tabs, stage_image, all_layers, swap_image, swap_layers, swap_entry,
         perturb_image, perturb_object, perturb_mask, perturb_kind, perturb_hue, pending],
        api_visibility="private",
    ).then(
        rerun("stages", run_stages, len(stage_out)), [pending, *stage_in], stage_out, api_visibility="private"
    ).then(
        rerun("swap", run_swap, len(swap_out)), [pending, *swap_in], swap_out, api_visibility="private"
    ).then(
        rerun("perturb", run_perturb, len(perturb_out)), [pending, *perturb_in], perturb_out, api_visibility="private"
    )

demo.queue(max_size=20, default_concurrency_limit=1)


def launch(**options):
    """Start the server; `options` go to gr.Blocks.launch (tests pass a port)."""
    return demo.launch(allowed_paths=[str(EXAMPLES_DIR)], show_error=True, **options)


if __name__ == "__main__":
    launch()
