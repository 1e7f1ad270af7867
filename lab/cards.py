"""Result cards in the app: each tab's button turns the result on screen into a slide (PNG and PDF) with its link.

The figure is the library's (`inversion.figures.result_card`); this module only reads the tab's
displayed result back (the visitor's own, sent by their page: no GPU call, no shared state) and
wires the button. A tab declares a builder, (its link's LinkState, its displayed outputs...) -> Card,
and calls `card_maker` inside its gr.Tab.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import gradio as gr
import numpy as np
from PIL import Image

from inversion.figures import CardPanel, model_line, result_card, save_card
from lab import text
from lab.components import PAGE_ONLY, fresh_file
from lab.links import LinkState, from_query

# A link belongs to the tab it names (no tab: the default one); each tab keeps the last link of its own.
OWN_LINK_JS = """(link, own) => {
    const query = link && link.includes("?") ? link.slice(link.indexOf("?")) : "";
    return (new URLSearchParams(query).get("tab") || "__DEFAULT__") === "__TAB__" ? link : own;
}"""

CARD_FORMATS = (".png", ".pdf")


@dataclass
class Card:
    """What a tab's result puts on its card (the model line: None for the link's model)."""

    title: str
    rows: list[list[CardPanel]]
    subtitle: str = ""
    model: str | None = None


def picture(value, mode: str = "RGB") -> Image.Image:
    """A displayed image (a file path, or an array from gr.Image) as a PIL image in `mode`; anything else (a card
    endpoint called with another file) is a gr.Error that says so."""
    try:
        if isinstance(value, str | Path):
            with Image.open(value) as image:
                return image.convert(mode)
        return Image.fromarray(np.asarray(value)).convert(mode)
    except (OSError, ValueError, TypeError) as error:
        raise gr.Error(text.CARD_NOT_AN_IMAGE.format(why=error.__class__.__name__), print_exception=False) from None


def displayed_path(payload):
    """A gr.Image's value as the card reads it: the file's path, opened by `picture` (gr.Image's own
    preprocessing opens it first and fails on a file that is not an image with Gradio's raw message)."""
    return None if payload is None else payload.path


def annotated_panel(value, caption: str) -> CardPanel:
    """A gr.AnnotatedImage's value (its image and one mask file per labelled box) as a card panel with those boxes."""
    image_path, annotations = value
    return CardPanel(picture(image_path), caption, [(mask_box(mask), label) for mask, label in annotations])


def mask_box(mask_path: str) -> tuple[float, float, float, float]:
    """The box a gr.AnnotatedImage drew as a mask (its visible pixels), as (x0, y0, x1, y1)."""
    alpha = np.asarray(picture(mask_path, "RGBA"))[..., 3]
    rows, columns = np.nonzero(alpha)
    return float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1)


def gallery_panels(value, prefix: str = "") -> list[CardPanel]:
    """A results gallery's (image, 'label · PSNR … · SSIM …') items as panels, the label on its own line."""
    return [CardPanel(picture(path), prefix + (caption or "").replace(" · ", "\n", 1)) for path, caption in value or []]


def card_link(page_link: str, tab_link: str) -> str:
    """The full link of a tab's result: the page's address with the tab's query, keeping the page's view."""
    if tab_link.startswith("http"):
        return tab_link
    page = urlsplit(page_link)
    params = dict(parse_qsl(tab_link.lstrip("?")))
    view = dict(parse_qsl(page.query)).get("view")
    if view and "view" not in params:
        params["view"] = view
    return urlunsplit((page.scheme, page.netloc, page.path, urlencode(params), ""))


def card_maker(page, tab_name: str, inputs: list, builder: Callable[..., Card]) -> None:
    """The tab's card button and the files it makes: `builder(link state, *values of inputs)` describes the
    card of the result on screen, which carries the tab's last link (the page's moves on with other tabs)."""
    tab_link = gr.Textbox(visible=False)
    with gr.Row(elem_classes="result-card"):
        button = gr.Button(text.CARD, variant="secondary", elem_id=f"{tab_name}-card-button", scale=0, min_width=240)
        files = gr.File(label=text.CARD_FILES, file_count="multiple", interactive=False, visible=False,
                        elem_id=f"{tab_name}-card-files")
    for component in inputs:
        if isinstance(component, gr.Image):  # read by the card only: its file is judged by `picture`
            component.preprocess = displayed_path
    own_link_js = OWN_LINK_JS.replace("__DEFAULT__", LinkState().tab).replace("__TAB__", tab_name)
    page.link.change(None, [page.link, tab_link], tab_link, js=own_link_js, api_visibility="private")

    def make(page_link: str, own_link: str, *values):
        if not own_link or not page_link:
            raise gr.Error(text.NO_RESULT_FOR_CARD, print_exception=False)
        link = card_link(page_link, own_link)
        state = from_query(dict(parse_qsl(urlsplit(link).query)), list(page.catalogue.models),
                           [path.name for path in page.examples])
        card = builder(state, *values)
        model = card.model or model_text(page, state.model)
        figure = result_card(card.title, card.rows, model, link, card.subtitle)
        paths = [fresh_file(suffix, prefix=f"result-card-{tab_name}-") for suffix in CARD_FORMATS]
        for path in paths:
            save_card(figure, path)
        return gr.update(value=paths, visible=True)

    button.click(make, [page.link, tab_link, *inputs], files, api_name=f"{tab_name}_card", api_visibility=PAGE_ONLY)


def model_text(page, model_name: str | None) -> str:
    """The card's model line for a model of the page's catalogue (the default when the link names none)."""
    spec = page.catalogue.models[model_name or page.catalogue.default].spec
    return model_line(spec.label, spec.detector, spec.revision)
