"""The models the app serves: every entry of the space config that loads, and why the others did not.

A model whose detector loads but whose inverters do not is still served (detections and
optimisation-based reconstructions); a model that cannot be loaded at all, for any reason (the
Hub unreachable, a missing package, a broken file), is left out, its reason logged and kept so
the page can say so. The app always starts while one model loads.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from inversion.core.registry import Model, build_model, model_specs, read_space_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the app (space_config.yaml, `limits`)."""

    max_megapixels: float  # larger images are refused
    max_upload_mb: float  # larger uploads are refused before they are read


@dataclass
class Catalogue:
    models: dict[str, Model]  # the models that loaded, in config order
    problems: dict[str, str]  # model label -> why it is missing or incomplete
    default: str  # the model selected when a page opens
    limits: Limits


def load_catalogue(path: str | os.PathLike | None = None, device: str = "cpu") -> Catalogue:
    """Load every model of the space config (see `inversion.core.registry`); raise only if none loads."""
    config = read_space_config(path)
    models, problems = {}, {}
    for name, spec in model_specs(path).items():
        try:
            model = build_model(spec, device, strict=False)
        except Exception as error:  # noqa: BLE001  (any failure of one model must leave the others serving)
            problems[spec.label] = f"it could not be loaded ({error.__class__.__name__}: {error})"
            log.warning("model %s not served: %s", name, problems[spec.label])
            continue
        models[name] = model
        if model.inverters_problem:
            problems[spec.label] = model.inverters_problem
            log.warning("model %s served without inverters: %s", name, model.inverters_problem)
    if not models:
        raise RuntimeError("No model of the space config could be loaded: " + "; ".join(f"{k}: {v}" for k, v in problems.items()))
    default = config.get("default_model")
    return Catalogue(models, problems, default if default in models else next(iter(models)), Limits(**config["limits"]))
