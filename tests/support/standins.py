"""Stand-ins of the Shapes model for service tests: its architecture with random weights, with or without inverters."""

from pathlib import Path

from inversion.core.registry import ModelSpec


def standin_spec(entry: dict, inverters: bool = True) -> ModelSpec:
    """The spec of a stand-in saved by `inversion.testing.save_standin` (threshold 0: every query is a detection)."""
    return ModelSpec(name="standin", label="Shapes stand-in", detector=entry["detector"], revision=None,
                     inverters=entry["inverters"] if inverters else None, inverters_revision=None,
                     working_size=(128, 128), threshold=0.0, root=Path.cwd())
