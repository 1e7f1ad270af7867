"""The page: a header with the model choice and its notices, one tab per view, and links that restore a result."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from inversion.core.registry import ClassifierModel
from inversion.figures import qr_code
from lab import text
from lab.admission import MODEL_EVENT
from lab.catalogue import Catalogue
from lab.classifier_service import has_cls_token
from lab.components import CONTROLS, as_file
from lab.gpu import gpu_calls
from lab.links import EXAMPLES_DIR, example_files, example_model, from_query
from lab.tabs import Page, Tab, about, attend, layer_swap, perturb, stages, tradeoff
from lab.tools import register as register_tools

# When a result changes the link, put it in the address bar (keeping the page's view) and show the full URL.
LINK_JS = """(query) => {
    if (!query || !query.startsWith("?")) return query;
    const url = new URL(window.location.href);
    const view = url.searchParams.get("view");
    url.search = query;
    if (view) url.searchParams.set("view", view);
    window.history.replaceState(null, "", url);
    return url.toString();
}"""

# ?view=present: the presenter view (lab/page.css, the page's only style sheet, says what it hides and enlarges)
PRESENTER_JS = """() => {
    if (new URLSearchParams(window.location.search).get("view") === "present") document.body.classList.add("presenter");
}"""
PAGE_CSS = Path(__file__).with_name("page.css")

CACHE_CLEANUP = (3600, 3600)  # every hour, delete uploads and results cached more than an hour ago


def model_notice(catalogue: Catalogue, model_name: str) -> str:
    """Which models are missing or incomplete (what still works, what to do), and what the chosen one cannot do."""
    lines = list(catalogue.problems.values())
    model = catalogue.models.get(model_name)
    if isinstance(model, ClassifierModel):
        lines.append(text.classifier_notice(model.spec.label, has_cls_token(model)))
    elif model is not None and model.inverters is None:
        lines.append(text.no_inverters(model.spec.label))
    return text.notice(lines)


def build_demo(catalogue: Catalogue, optimise_steps: int | None = None) -> gr.Blocks:
    """The whole app for a catalogue of models (optimise_steps: steps of a request; None: each model's budget).

    Call it at import on ZeroGPU (its GPU functions are decorated here); serve it with lab.server.
    """
    examples = [path for path in example_files() if example_model(path) in catalogue.models]
    with gr.Blocks(title=text.TITLE, delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(text.INTRO, elem_classes=CONTROLS)
        choices = [(model.spec.label, name) for name, model in catalogue.models.items()]
        model = gr.Dropdown(choices=choices, value=catalogue.default, label=text.MODEL, interactive=True,
                            elem_classes=CONTROLS)
        notice = gr.Markdown(model_notice(catalogue, catalogue.default), elem_id="model-notice", elem_classes=CONTROLS)
        link = gr.Textbox(label=text.LINK, info=text.LINK_INFO, buttons=["copy"], interactive=False, elem_id="result-link",
                          render=False)
        page = Page(catalogue, gpu_calls(catalogue, optimise_steps), model, link, examples)
        with gr.Tabs() as tabs:
            restorable = [stages.build(page), layer_swap.build(page), perturb.build(page), tradeoff.build(page),
                          attend.build(page)]
            about.build(page)
        share_row(link)
        register_tools(page)
        model.change(lambda name: model_notice(catalogue, name), model, notice, api_visibility="private")
        demo.load(None, js=PRESENTER_JS, api_visibility="private")
        open_links(demo, page, tabs, restorable)
    return demo


def share_row(link: gr.Textbox) -> None:
    """The durable link with its QR code, and the deep-link button that also carries uploads (after a result)."""
    with gr.Row(elem_id="share"):
        with gr.Column(scale=3):
            link.render()
            deep_link = gr.DeepLinkButton(text.DEEP_LINK, text.DEEP_LINK_COPIED, interactive=False, size="md")
            gr.Markdown(text.deep_link_info(CACHE_CLEANUP[1] // 60), elem_id="deep-link-info")
        code = gr.Image(label=text.QR, format="png", height=240, interactive=False, elem_id="link-qr", scale=1)

    def shown_link(url: str):
        """The QR code of a full link, and the deep-link button enabled (a bare query is on its way to the address bar)."""
        if not url or url.startswith("?"):
            return gr.skip(), gr.skip()
        return as_file(qr_code(url)), gr.DeepLinkButton(interactive=True)

    link.change(None, link, link, js=LINK_JS, api_visibility="private")
    link.change(shown_link, link, [code, deep_link], api_visibility="private", queue=False)


def open_links(demo: gr.Blocks, page: Page, tabs: gr.Tabs, restorable: list[Tab]) -> None:
    """On page load, set the model, tab and controls a link names, then re-run that tab's action on its example."""
    pending = gr.State("")  # the tab whose action to re-run ("" when it needs an example the link does not name)
    names = [path.name for path in page.examples]

    def open_link(request: gr.Request):
        state = from_query(dict(request.query_params), list(page.catalogue.models), names)
        model_name = state.model or page.catalogue.default
        image = str(EXAMPLES_DIR / state.example) if state.example else None
        updates = [update for tab in restorable
                   for update in tab.restore(state, image if state.tab == tab.name else None, model_name)]
        rerun_tab = state.tab if image or any(tab.name == state.tab and not tab.needs_example for tab in restorable) else ""
        return model_name, gr.update(selected=state.tab), rerun_tab, *updates

    controls = [control for tab in restorable for control in tab.controls]
    event = demo.load(open_link, None, [page.model, tabs, pending, *controls], api_visibility="private")
    for tab in restorable:
        event = event.then(rerun(tab), [pending, *tab.inputs], tab.outputs, api_visibility="private", **MODEL_EVENT)


def rerun(tab: Tab):
    """A handler that re-runs `tab`'s action after its link is opened, and does nothing otherwise."""

    def run(pending, *inputs):
        return tab.run(*inputs) if pending == tab.name else (gr.skip(),) * len(tab.outputs)

    return run
