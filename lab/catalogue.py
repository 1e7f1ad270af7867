"""The models the app serves: every entry of the space config that loads, and why the others did not.

Detectors and image classifiers alike (`ModelSpec.kind`): a classifier comes as a `ClassifierModel`.

A model whose detector loads but whose inverters do not is still served (detections and
optimisation-based reconstructions); a model that cannot be loaded at all, for any reason (the
Hub unreachable, a missing package, a broken file), is left out. The technical cause goes to the
log; the page gets what a visitor needs (lab.text: what is missing, what still works, what to do).
The app always starts while one model loads.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from inversion.core.hub import WeightsNotFound, is_hub_id
from inversion.core.registry import (
    CLASSIFIER,
    ClassifierModel,
    Model,
    build_classifier_model,
    build_model,
    model_specs,
    read_space_config,
)
from lab import text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the app (space_config.yaml, `limits`)."""

    max_megapixels: float  # larger images are refused
    max_upload_mb: float  # larger uploads are refused before they are read


@dataclass
class Catalogue:
    models: dict[str, Model | ClassifierModel]  # the models that loaded, in config order
    problems: dict[str, str]  # model label -> what a visitor reads about it (missing or incomplete)
    default: str  # the model selected when a page opens
    limits: Limits


def load_catalogue(path: str | os.PathLike | None = None, device: str = "cpu") -> Catalogue:
    """Load every model of the space config (see `inversion.core.registry`); raise only if none loads."""
    config = read_space_config(path)
    models, missing, causes, incomplete = {}, {}, {}, {}
    for name, spec in model_specs(path).items():
        try:
            build = build_classifier_model if spec.kind == CLASSIFIER else build_model
            model = build(spec, device, strict=False)
        except Exception as error:  # noqa: BLE001  (any failure of one model must leave the others serving)
            causes[spec.label] = f"{error.__class__.__name__}: {error}"
            missing[spec.label] = isinstance(error, WeightsNotFound) and is_hub_id(spec.detector)
            log.warning("model %s not served: it could not be loaded (%s)", name, causes[spec.label])
            continue
        models[name] = model
        if model.inverters_problem:
            incomplete[spec.label] = isinstance(model, ClassifierModel)
            log.warning("model %s served without inverters: %s", name, model.inverters_problem)
    if not models:
        raise RuntimeError("No model of the space config could be loaded: " + "; ".join(f"{k}: {v}" for k, v in causes.items()))
    serving = [model.spec.label for model in models.values()]
    problems = {label: text.hub_unreachable(label, serving) if from_hub else text.not_loaded(label, serving)
                for label, from_hub in missing.items()}
    problems |= {label: text.inverters_not_loaded(label, classifier) for label, classifier in incomplete.items()}
    default = config.get("default_model")
    return Catalogue(models, problems, default if default in models else next(iter(models)), Limits(**config["limits"]))
