"""The classification families: each transformers image classifier the library captures and inverts.

Chosen from a config's `model_type` before any weights are read (`classifier_family_for`), as the detection
families are (`families.family_for`); any other model is refused in one line naming the supported ones.
"""

from __future__ import annotations

from transformers import PretrainedConfig

from ..errors import UserFacingError
from .classifier_base import ClassifierFamily
from .swin import Swin
from .vit import Deit, Vit

CLASSIFIER_FAMILIES: tuple[ClassifierFamily, ...] = (Vit(), Deit(), Swin())


class UnsupportedClassifier(UserFacingError):
    """A model whose architecture no classification family serves; the message names the supported ones."""


def supported_classifiers() -> str:
    """The supported classification families and their config model types, for messages."""
    return ", ".join(f"{family.name} ({'/'.join(family.model_types)})" for family in CLASSIFIER_FAMILIES)


def classifier_family_for(config: PretrainedConfig | str) -> ClassifierFamily:
    """The family serving a config (or a `model_type` string); UnsupportedClassifier for any other."""
    model_type = config if isinstance(config, str) else getattr(config, "model_type", None)
    for family in CLASSIFIER_FAMILIES:
        if model_type in family.model_types:
            return family
    raise UnsupportedClassifier(
        f"A {model_type or 'model of unknown type'!r} model is not an image-classification transformer this library "
        f"captures. Supported: {supported_classifiers()}."
    )
