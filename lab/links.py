"""What a link to the app carries: model, tab, example, each tab's settings and the view, as URL query parameters.

    ?model=shapes&tab=perturb&example=shapes_05.png&object=0&mask=grabcut&perturbation=red

Parsing is forgiving: an unknown or malformed value is dropped and its default used, so an old
or hand-edited link still opens the app. Uploaded images cannot travel in a link; examples can
(the page's deep-link button shares uploads for as long as the Space keeps its session files).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlencode

from inversion.experiments.colour import PERTURBATIONS
from inversion.experiments.interventions import TRANSPLANT_STAGES
from lab import SPACE_ROOT
from lab.service import ENTRIES, MASK_KINDS

EXAMPLES_DIR = SPACE_ROOT / "examples"
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
TABS = ("stages", "swap", "perturb", "tradeoff", "attend", "about")
ACTIONS = ("attention", "transplant", "skip")  # the attention tab's actions
VIEWS = ("present",)  # "present": the presenter view (controls hidden, one result large)
_LAYER_STAGES = {"e": "encoder", "d": "decoder"}  # a layer's short name in links: 'e3' is 'encoder 3'
_SKIP_STAGES = {**_LAYER_STAGES, "b": "block"}  # a skip also names a classifier's block: 'b2' is 'block 2'
_SWAP_STAGES = {**_SKIP_STAGES, "m": "merging"}  # a swap also a classifier's embedding ('b0') and mergings ('m1')
_NUMBER = re.compile(r"[0-9]{1,6}")  # ASCII digits only ("²" is a digit to str.isdigit), and short
_NAME = re.compile(r"[a-z0-9-]{1,20}")  # an architecture's name
_SIGNED = re.compile(r"-?[0-9]{1,3}")  # a transplant's offset in cells
_TENTHS = re.compile(r"0(\.[0-9])?|1(\.0)?")  # λ: 0, 0.1, ..., 1


@dataclass
class LinkState:
    """Everything a link restores; the defaults are what a fresh page shows."""

    model: str | None = None
    tab: str = "stages"
    example: str | None = None
    view: str | None = None  # None: the normal page; a name in VIEWS
    layers: bool = False  # stage tab: every encoder and decoder layer too
    optimised: bool = False  # stage tab: the optimisation-based row too; perturbation tab: optimised reconstructions
    swap: list[str] = field(default_factory=list)  # layer swap: "encoder 3", "decoder 2" (a classifier's "block 2",
    # "merging 1"; "block 0": its embedding); empty = all
    entry: str = "backbone"
    object: int = 0
    mask: str = "grabcut"
    perturbation: str = "red"
    hue: int = 90
    arch: str = "fc-m"  # classification vs reconstruction: the architecture (the tab keeps only those it has)
    latent: int = 8  # ... its latent size
    lam: float = 0.5  # ... and λ, in tenths from 0 to 1
    action: str = "attention"  # attention tab: a name in ACTIONS (a transplant takes `object` of the first image)
    second: str | None = None  # ... the second image of a transplant (an example's name)
    decoder_layer: int | None = None  # ... the attention maps' layers (None: the last) and head (None: their mean)
    encoder_layer: int | None = None
    head: int | None = None
    point_x: int | None = None  # ... the point the encoder map looks from, in view pixels (None: the centre)
    point_y: int | None = None
    at: str = "encoder"  # ... where a transplant goes in: "backbone" or "encoder"
    rows: int = 0  # ... and how far it moves, in grid cells
    columns: int = 0
    skip: str = "encoder 1"  # ... the layer a layer skip leaves out


def to_query(state: LinkState) -> str:
    """The query string ('?...') of a state, leaving out values equal to the defaults."""
    default = LinkState()
    params = {}
    for item in fields(LinkState):
        value = getattr(state, item.name)
        if value in (None, getattr(default, item.name)):
            continue
        if item.name == "swap":
            value = ",".join(map(_short_layer, value))
        elif item.name == "skip":
            value = _short_layer(value)
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, float):
            value = f"{value:g}"
        params[item.name] = value
    return "?" + urlencode(params)


def from_query(params: dict[str, str], models: list[str], examples: list[str]) -> LinkState:
    """The state a link describes, keeping only values that exist here."""
    state = LinkState()
    if params.get("model") in models:
        state.model = params["model"]
    if params.get("tab") in TABS:
        state.tab = params["tab"]
    if params.get("example") in examples:
        state.example = params["example"]
    if params.get("view") in VIEWS:
        state.view = params["view"]
    state.layers = params.get("layers") == "1"
    state.optimised = params.get("optimised") == "1"
    state.swap = [name for name in (_layer_name(short, _SWAP_STAGES) for short in params.get("swap", "").split(",")) if name]
    if params.get("entry") in ENTRIES:
        state.entry = params["entry"]
    state.object = _integer(params.get("object"), 0, 999, state.object)
    if params.get("mask") in MASK_KINDS:
        state.mask = params["mask"]
    if params.get("perturbation") in (*PERTURBATIONS, "hue"):
        state.perturbation = params["perturbation"]
    state.hue = _integer(params.get("hue"), 0, 179, state.hue)
    if _NAME.fullmatch(params.get("arch", "")):
        state.arch = params["arch"]
    state.latent = _integer(params.get("latent"), 1, 4096, state.latent)
    if _TENTHS.fullmatch(params.get("lam", "")):
        state.lam = round(float(params["lam"]), 1)
    if params.get("action") in ACTIONS:
        state.action = params["action"]
    if params.get("second") in examples:
        state.second = params["second"]
    state.decoder_layer = _integer(params.get("decoder_layer"), 1, 99, None)
    state.encoder_layer = _integer(params.get("encoder_layer"), 1, 99, None)
    state.head = _integer(params.get("head"), 0, 99, None)
    state.point_x = _integer(params.get("point_x"), 0, 99999, None)
    state.point_y = _integer(params.get("point_y"), 0, 99999, None)
    if params.get("at") in TRANSPLANT_STAGES:
        state.at = params["at"]
    state.rows = _signed(params.get("rows"), state.rows)
    state.columns = _signed(params.get("columns"), state.columns)
    skipped = _layer_name(params.get("skip", ""), _SKIP_STAGES)
    if skipped and not skipped.endswith(" 0"):  # layers count from 1 (0 is the input of the first)
        state.skip = skipped
    return state


def example_files() -> list[Path]:
    """The example images, by name."""
    return sorted(path for path in EXAMPLES_DIR.iterdir() if path.suffix.lower() in EXAMPLE_SUFFIXES)


def example_model(path: Path) -> str:
    """The model an example was chosen for: Shapes images for the Shapes world, photos for DETR-R50."""
    return "shapes" if path.name.startswith("shapes_") else "detr-resnet-50"


def example_name(upload: str | bytes | None) -> str | None:
    """The example file an input holds (compared by content, since uploads are copied), or None."""
    if not isinstance(upload, str) or not Path(upload).is_file():
        return None
    digest = _digest(Path(upload))
    return next((path.name for path in example_files() if _digest(path) == digest), None)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layer_name(short: str, stages: dict[str, str] = _LAYER_STAGES) -> str | None:
    """'e3' -> 'encoder 3', 'd2' -> 'decoder 2' (with _SKIP_STAGES also 'b2' -> 'block 2'); anything else -> None."""
    stage = stages.get(short[:1])
    return f"{stage} {int(short[1:])}" if stage and _NUMBER.fullmatch(short[1:]) else None


def _short_layer(name: str) -> str:
    """'encoder 3' -> 'e3'."""
    return name[0] + name.split()[1]


def _integer(text: str | None, low: int, high: int, default: int | None) -> int | None:
    return int(text) if text is not None and _NUMBER.fullmatch(text) and low <= int(text) <= high else default


def _signed(text: str | None, default: int) -> int:
    return int(text) if text is not None and _SIGNED.fullmatch(text) else default
