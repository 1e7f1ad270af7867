"""The models the app serves: every entry of a space config that loads, and why the others did not.

A model whose detector loads but whose inverters do not is still served (detections only); a
model whose detector cannot be fetched (the Hub unreachable) is left out and its reason kept,
so the app can say so on screen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .checkpoints import CheckpointError
from .models import SPACE_CONFIG, Model, ModelSpec, load_detector, load_inverters_for, model_specs, read_space_config


@dataclass
class Catalogue:
    models: dict[str, Model]  # the models that loaded, in config order
    problems: dict[str, str]  # model label -> why it is missing or incomplete
    default: str  # the model selected when a page opens


def load_spec(spec: ModelSpec, device: str = "cpu") -> tuple[Model, str | None]:
    """A model from its spec, plus a note when its inverters could not be loaded (then None)."""
    detector = load_detector(spec.detector, spec.revision, spec.working_size, spec.threshold).to(device)
    try:
        return Model(spec, detector, load_inverters_for(spec, detector, device)), None
    except CheckpointError as error:
        return Model(spec, detector, None), f"its inverters could not be loaded: {error}"


def load_catalogue(path: str | os.PathLike = SPACE_CONFIG, device: str = "cpu") -> Catalogue:
    """Load every model of the config at `path`; raise only if none loads at all."""
    models, problems = {}, {}
    for name, spec in model_specs(path).items():
        try:
            models[name], note = load_spec(spec, device)
        except CheckpointError as error:
            problems[spec.label] = f"it could not be loaded: {error}"
            continue
        if note:
            problems[spec.label] = note
    if not models:
        raise RuntimeError(f"No model in {path} could be loaded: " + "; ".join(f"{k}: {v}" for k, v in problems.items()))
    default = read_space_config(path).get("default_model")
    return Catalogue(models, problems, default if default in models else next(iter(models)))
