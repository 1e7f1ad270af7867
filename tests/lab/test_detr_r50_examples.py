"""Every tab's DETR-R50 example rows (the CC0 photos) work, offline, on a Hugging Face cache laid out as a
download of facebook/detr-resnet-50 at the pinned commit leaves it (random weights, so the detections
are arbitrary): each row gives a result, or a result with the plain note of what needs inverters,
never an error.

The rows are the ones the app registers: `examples` is wrapped while the page is built, so each tab's
example function is called with its own rows, as a visitor's click would.
"""

import gradio as gr
import pytest
from huggingface_hub import constants

from lab.catalogue import load_catalogue
from lab.page import build_demo
from support.detr_r50_cache import build_fake_detr_r50_cache
from support.paths import REPO

pytestmark = pytest.mark.slow

TABS = ("stages", "layer_swap", "perturb", "attend")  # the tabs with example rows


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """(tab module, example function, rows) of every example set the app builds, DETR-R50 loaded from the cache."""
    cache = tmp_path_factory.mktemp("hf-hub")
    build_fake_detr_r50_cache(cache, refs=())
    found = []

    def recording(module):
        def examples(fn, inputs, outputs, rows, **options):
            found.append((module, fn, rows))
        return examples

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_CACHE", str(cache))
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        catalogue = load_catalogue(REPO / "space_config.yaml")
        for tab in TABS:
            patch.setattr(f"lab.tabs.{tab}.examples", recording(tab))
        build_demo(catalogue, optimise_steps=1)
    assert "detr-resnet-50" in catalogue.models and catalogue.models["detr-resnet-50"].inverters is None
    return found


def test_each_tab_offers_the_photos_with_detr_r50(registered):
    photos = {"astronaut.png", "cat.png", "coffee.png", "rocket.jpg"}
    for tab in TABS:
        for rows in (rows for name, _, rows in registered if name == tab):  # the attention tab has two example sets
            assert {row[0].rsplit("/", 1)[-1] for row in rows if "detr-resnet-50" in row} == photos, tab
    assert {tab for tab, _, _ in registered} == set(TABS)


@pytest.mark.parametrize("tab", TABS)
def test_every_detr_r50_example_row_gives_a_result(registered, tab, monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda message, *args, **kwargs: warnings.append(message))
    for function, rows in [(fn, rows) for name, fn, rows in registered if name == tab]:
        for row in [row for row in rows if "detr-resnet-50" in row]:
            outputs = function(*row)  # raises gr.Error on any failure
            assert outputs[0] is not None, row
    assert all("no trained inverters" in note or "need trained inverters" in note for note in warnings), warnings
