"""The model families: each transformers detection architecture the library captures, re-runs and inverts.

A family is chosen from a config's `model_type` before any weights are read (`family_for`); nothing
outside this package names a family. One module per architecture; `base.Family` is the protocol.
"""

from __future__ import annotations

from transformers import PretrainedConfig

from ..errors import UserFacingError
from .base import Changes, Family, Forward, Sizes
from .conditional_detr import ConditionalDetr
from .dab_detr import DabDetr
from .deformable_detr import DeformableDetr
from .detr import Detr, TableTransformer
from .rt_detr import RtDetr
from .yolos import Yolos

FAMILIES: tuple[Family, ...] = (Detr(), TableTransformer(), ConditionalDetr(), DabDetr(), DeformableDetr(), RtDetr(), Yolos())


class UnsupportedModel(UserFacingError):
    """A model whose architecture no family serves; the message names the supported ones."""


def supported() -> str:
    """The supported families and their config model types, for messages."""
    return ", ".join(f"{family.name} ({'/'.join(family.model_types)})" for family in FAMILIES)


def family_for(config: PretrainedConfig | str) -> Family:
    """The family serving a config (or a `model_type` string); UnsupportedModel for any other."""
    model_type = config if isinstance(config, str) else getattr(config, "model_type", None)
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    raise UnsupportedModel(
        f"A {model_type or 'model of unknown type'!r} model is not a detection transformer this library captures. "
        f"Supported: {supported()}."
    )


__all__ = ["FAMILIES", "Changes", "Family", "Forward", "Sizes", "UnsupportedModel", "family_for", "supported"]
