"""The app as tools for AI assistants: Gradio's MCP server (at /gradio_api/mcp/) offers these functions.

Each tool is a typed function whose docstring is what an assistant reads (Gradio builds the tool's
schema from the hints, its description from the docstring's lines, one per parameter). A tool runs
the same GPU call as its tab (one per request, batched, queued and booked per visitor alike) and
returns one picture: the result card, with every caption and number the tab shows. One picture,
not several outputs: Gradio 6.31's MCP server sends a tool with several outputs as one string
unless the client asks for progress reports. The tabs' own events are hidden from the tools (and
from the API page) with PAGE_ONLY; gradio_client still reaches them.

No `from __future__ import annotations` here: Gradio reads the hints as objects.
"""

from typing import Literal

import gradio as gr
from gradio.data_classes import FileData

from inversion.experiments.colour import PERTURBATIONS
from inversion.figures import STAGE_CARD_TITLE, CardPanel, model_line, result_card, save_card
from lab import attention_service, service, text
from lab.admission import MODEL_EVENT
from lab.components import change_rows, flag, fresh_file, hue_value, read_image
from lab.tabs import Page
from lab.tabs.attend import whole_number


def detected_panel(detected: service.Detected, caption: str) -> CardPanel:
    """The detector's view with its numbered boxes, as a card panel."""
    boxes = [(tuple(d.box), text.detection_label(index, d)) for index, d in enumerate(detected.detections)]
    return CardPanel(detected.view, caption, boxes)


def reconstruction_panels(panels: list[service.Panel]) -> list[CardPanel]:
    """Reconstructions with their label, PSNR and SSIM, as card panels."""
    return [CardPanel(panel.image, panel.caption.replace(" · ", "\n", 1)) for panel in panels]


def register(page: Page) -> None:
    """Add the tools to the page being built (inside its gr.Blocks), typed with its models' names."""
    models = page.catalogue.models
    ModelName = Literal[tuple(models)]  # the models served, as the schema's choices
    default = page.catalogue.default

    def card_file(title: str, rows: list[list[CardPanel]], model_name: str, subtitle: str = "") -> FileData:
        spec = models[model_name].spec
        figure = result_card(title, rows, model_line(spec.label, spec.detector, spec.revision), None, subtitle)
        path = fresh_file(".png", prefix="tool-")
        save_card(figure, path)
        return FileData(path=path, mime_type="image/png")

    def image_of(image):
        upload = image.get("path") if isinstance(image, dict) else getattr(image, "path", None)
        return read_image(upload, page.max_megapixels)

    def summary_of(detected: service.Detected, model_name: str) -> str:
        found = detected.detections
        return text.detections_found(found) if found else text.no_detection(models[model_name].detector.threshold)

    def no_progress(fraction, desc=""):
        return None

    def detect_objects(image: FileData, model: ModelName = default) -> FileData:
        """Detect objects in an image with a DETR.

        Returns one picture: the image as the detector sees it (resized to its working size), each detection
        boxed, numbered and labelled with its class and score; the line under the title lists them.

        Args:
            image: the photo or drawing to look at (a URL of an image file).
            model: the detector, by name (shapes: a tiny DETR that knows only coloured shapes; detr-resnet-50: COCO's 91 classes).
        """
        model = page.detector_name(model, "tool")
        found = page.gpu.detect(model, image_of(image))
        return card_file(text.DETECT_TOOL_TITLE, [[detected_panel(found, text.CARD_INPUT)]], model, summary_of(found, model))

    def reconstruct_stages(image: FileData, model: ModelName = default, every_layer: bool = False) -> FileData:
        """Show what a DETR keeps of an image at each stage of its forward pass.

        The image is run through the detector once and turned back into pixels from the backbone's feature map,
        the encoder's output, the decoder's output and the predictions alone (by learned inverse networks, or by
        optimisation for a model without them). Returns one picture: the input with its detections, then each
        reconstruction captioned with its stage, its PSNR and its SSIM to the input (higher: closer). Colours,
        textures and positions that survive a stage are what the detector still knows there.

        Args:
            image: the photo or drawing to invert (a URL of an image file).
            model: which detector to invert: a model name as listed here.
            every_layer: also reconstruct from every encoder and decoder layer (needs trained inverters; more, smaller pictures).
        """
        model, every_layer = page.detector_name(model, "tool"), flag(every_layer, "every_layer")
        result = page.gpu.stages(model, image_of(image), every_layer, False, no_progress)
        rows = [[detected_panel(result.input, text.CARD_INPUT), *reconstruction_panels(result.panels)]]
        subtitle = " ".join(line for line in (summary_of(result.input, model), result.note) if line)
        return card_file(STAGE_CARD_TITLE, rows, model, subtitle)

    def attention_maps(image: FileData, model: ModelName = default, decoder_layer: int | None = None,
                       encoder_layer: int | None = None, head: int | None = None, point_x: int | None = None,
                       point_y: int | None = None) -> FileData:
        """Show where a DETR looks, from its attention weights (no trained inverter needed).

        For each detection, its object query's cross-attention over the image in one decoder layer (captioned
        with the share of it inside the detection's box), and the encoder's self-attention from one point of the
        image. Returns one picture: the input with its numbered detections, one heat map per detection, and the
        point's map.

        Args:
            image: the photo or drawing to look at (a URL of an image file).
            model: which detector: a model name as listed here.
            decoder_layer: the decoder layer of the cross-attention, counted from 1; None for the last.
            encoder_layer: the encoder layer of the point's self-attention, counted from 1; None for the last.
            head: one attention head, counted from 0; None for the mean of all heads.
            point_x: the point's x in the detector's view (pixels from the left of the returned input); None for the centre.
            point_y: the point's y in the detector's view (pixels from the top); None for the centre.
        """
        model = page.detector_name(model, "tool")
        numbers = {name: None if value is None else whole_number(value, name)
                   for name, value in (("decoder_layer", decoder_layer), ("encoder_layer", encoder_layer), ("head", head),
                                       ("point_x", point_x), ("point_y", point_y))}
        point = None if numbers["point_x"] is None or numbers["point_y"] is None else (numbers["point_x"], numbers["point_y"])
        result = page.gpu.attention(model, image_of(image), numbers["decoder_layer"], numbers["encoder_layer"],
                                    numbers["head"], point)
        maps = [CardPanel(shown.image, shown.caption) for shown in result.query_maps]
        rows = [[detected_panel(result.input, text.CARD_INPUT), *maps],
                [CardPanel(result.point_map.image, result.point_map.caption)]]
        return card_file(text.attend_card_title("attention"), rows, model, summary_of(result.input, model))

    def colour_perturbation(image: FileData, model: ModelName = default, object_index: int | None = 0,
                            mask: Literal[service.MASK_KINDS] = "grabcut",
                            perturbation: Literal[(*PERTURBATIONS, "hue")] = "red", hue: int = 90) -> FileData:
        """Recolour one detected object (or the whole image): does a DETR still find it, and keep the new colour?

        Returns one picture with two rows, the original and the perturbed image, each with its detections and
        its reconstructions from every stage (PSNR and SSIM); the line under the title says what became of each
        detection (kept, relabelled, lost) and its score.

        Args:
            image: the photo or drawing to perturb (a URL of an image file).
            model: which detector: a model name as listed here.
            object_index: the detection to recolour, numbered as detect_objects numbers them; None for the whole image.
            mask: which pixels change: "grabcut" (the object segmented inside its box), "box" (its whole box) or "image" (everything).
            perturbation: red, green or blue (the hue set to it), rotate120 or rotate240 (rotated), grey, or hue (set to `hue`).
            hue: the hue for perturbation "hue", in OpenCV units 0 to 179 (degrees halved: 0 red, 60 green, 120 blue).
        """
        model, hue = page.detector_name(model, "tool"), hue_value(hue)
        object_index = None if object_index is None else whole_number(object_index, "object_index")
        result = page.gpu.perturb(model, image_of(image), object_index, mask, perturbation, hue, False, no_progress)
        rows = [[detected_panel(result.original, text.ORIGINAL), *reconstruction_panels(result.original_panels)],
                [detected_panel(result.perturbed, text.PERTURBED), *reconstruction_panels(result.perturbed_panels)]]
        subtitle = " ".join(line for line in (text.changes_line(change_rows(result.changes)), result.note) if line)
        return card_file(text.perturbation_card_title(perturbation, hue), rows, model, subtitle)

    def skip_layer(image: FileData, model: ModelName = default,
                   stage: Literal[attention_service.SKIP_STAGES] = "encoder", layer: int = 1) -> FileData:
        """Run a DETR with one encoder or decoder layer left out (the identity in its place): what does it still find?

        Returns one picture: the image's detections by the unmodified run and by the run without the layer (and,
        for a model with trained inverters, the changed representation's reconstructions); the line under the
        title says what became of each detection.

        Args:
            image: the photo or drawing to run (a URL of an image file).
            model: which detector: a model name as listed here.
            stage: "encoder" or "decoder": where the layer is.
            layer: which layer of that stage to skip, counted from 1 (DETR-R50 has 6 of each).
        """
        model = page.detector_name(model, "tool")
        result = page.gpu.skip_layer(model, image_of(image), stage, whole_number(layer, "layer"))
        rows = [[detected_panel(result.before, text.ATTEND_VIEW), detected_panel(result.after, text.AFTER)]]
        if result.panels:
            rows.append(reconstruction_panels(result.panels))
        subtitle = " ".join(line for line in (result.summary, text.changes_line(change_rows(result.changes)), result.note) if line)
        return card_file(text.attend_card_title("skip"), rows, model, subtitle)

    for tool in (detect_objects, reconstruct_stages, attention_maps, colour_perturbation, skip_layer):
        gr.api(tool, api_name=tool.__name__, **MODEL_EVENT)
