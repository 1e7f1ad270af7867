"""Share links: any query string opens the page (strangers send anything), and every state round-trips."""

import re
from dataclasses import fields
from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from inversion.experiments.interventions import TRANSPLANT_STAGES
from lab.attention_service import SKIP_STAGES
from lab.links import ACTIONS, TABS, VIEWS, LinkState, from_query, to_query
from lab.service import ENTRIES, MASK_KINDS
from lab.text import PERTURBATION_CHOICES

MODELS, EXAMPLES = ["shapes", "detr-resnet-50"], ["shapes_05.png", "cat.png"]
KEYS = ["model", "tab", "example", "view", "layers", "optimised", "swap", "entry", "object", "mask", "perturbation", "hue",
        "arch", "latent", "lam", "action", "second", "decoder_layer", "encoder_layer", "head", "point_x", "point_y", "at",
        "rows", "columns", "skip"]
LAYERS = [f"{stage} {layer}" for stage in ("encoder", "decoder", "block", "merging") for layer in range(7)]  # and a classifier's

states = st.builds(
    LinkState,
    model=st.sampled_from([None, *MODELS]), tab=st.sampled_from(TABS), example=st.sampled_from([None, *EXAMPLES]),
    view=st.sampled_from([None, *VIEWS]), layers=st.booleans(), optimised=st.booleans(),
    swap=st.lists(st.sampled_from(LAYERS), unique=True), entry=st.sampled_from(ENTRIES),
    object=st.integers(0, 999), mask=st.sampled_from(MASK_KINDS),
    perturbation=st.sampled_from([value for _, value in PERTURBATION_CHOICES]), hue=st.integers(0, 179),
    arch=st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True), latent=st.integers(1, 4096),
    lam=st.integers(0, 10).map(lambda tenths: tenths / 10),
    action=st.sampled_from(ACTIONS), second=st.sampled_from([None, *EXAMPLES]),
    decoder_layer=st.one_of(st.none(), st.integers(1, 99)), encoder_layer=st.one_of(st.none(), st.integers(1, 99)),
    head=st.one_of(st.none(), st.integers(0, 99)), point_x=st.one_of(st.none(), st.integers(0, 99999)),
    point_y=st.one_of(st.none(), st.integers(0, 99999)), at=st.sampled_from(TRANSPLANT_STAGES),
    rows=st.integers(-999, 999), columns=st.integers(-999, 999),
    skip=st.builds(lambda stage, layer: f"{stage} {layer}", st.sampled_from([*SKIP_STAGES, "block"]), st.integers(1, 99)),
)


def test_every_setting_is_a_key_of_the_link():
    assert {item.name for item in fields(LinkState)} == set(KEYS)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)),
                       st.one_of(st.text(max_size=300), st.text("0123456789²³e,d", max_size=6000))))
def test_any_query_opens_the_page(params):
    state = from_query(params, MODELS, EXAMPLES)
    assert state.model in (None, *MODELS) and state.example in (None, *EXAMPLES) and state.tab in TABS
    assert 0 <= state.object <= 999 and 0 <= state.hue <= 179 and 1 <= state.latent <= 4096 and 0 <= state.lam <= 1
    assert state.view in (None, *VIEWS) and re.fullmatch(r"[a-z0-9-]{1,20}", state.arch) and state.lam == round(state.lam, 1)
    assert all(re.fullmatch(r"(encoder|decoder|block|merging) [0-9]{1,6}", name) for name in state.swap)  # the model's filter later
    assert state.action in ACTIONS and state.second in (None, *EXAMPLES) and state.at in TRANSPLANT_STAGES
    assert all(value is None or 0 <= value <= 99999
               for value in (state.decoder_layer, state.encoder_layer, state.head, state.point_x, state.point_y))
    assert -999 <= state.rows <= 999 and -999 <= state.columns <= 999
    assert re.fullmatch(r"(encoder|decoder|block) [1-9][0-9]{0,5}", state.skip)


@settings(max_examples=300, deadline=None)
@given(states)
def test_every_setting_round_trips(state):
    assert from_query(dict(parse_qsl(to_query(state)[1:])), MODELS, EXAMPLES) == state


def test_a_classifier_s_swap_layers_travel_short():
    state = LinkState(model="shapes", tab="swap", swap=["block 0", "merging 1", "block 3"], entry="encoder")
    assert to_query(state) == "?model=shapes&tab=swap&swap=b0%2Cm1%2Cb3&entry=encoder"
    assert from_query({"swap": "b0,m1,x2,b3"}, MODELS, EXAMPLES).swap == ["block 0", "merging 1", "block 3"]
