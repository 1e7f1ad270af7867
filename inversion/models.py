"""The model registry: `space_config.yaml` names each detector with its inverters and working size.

`load_model("shapes")` gives the bundled Shapes world; `load_model(FOLDER)` accepts any inverter
checkpoint folder, which names its own detector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .checkpoints import PROJECT_ROOT, CheckpointError, load_inverters, read_config, resolve_folder
from .detector import Detector
from .inverters import InverterStack

SPACE_CONFIG = PROJECT_ROOT / "space_config.yaml"


@dataclass
class ModelSpec:
    """One entry of space_config.yaml."""

    name: str
    label: str
    detector: str
    revision: str | None
    inverters: str | None
    inverters_revision: str | None
    working_size: tuple[int, int]
    threshold: float


@dataclass
class Model:
    """A loaded detector with its inverters (None when no inverters exist for it yet)."""

    spec: ModelSpec
    detector: Detector
    inverters: InverterStack | None


def read_space_config(path: str | os.PathLike = SPACE_CONFIG) -> dict:
    """The parsed space_config.yaml."""
    return yaml.safe_load(Path(path).read_text())


def model_specs(path: str | os.PathLike = SPACE_CONFIG) -> dict[str, ModelSpec]:
    """Every model the project offers, by name."""
    return {
        name: ModelSpec(
            name=name,
            label=entry.get("label", name),
            detector=entry["detector"],
            revision=entry.get("revision"),
            inverters=entry.get("inverters"),
            inverters_revision=entry.get("inverters_revision"),
            working_size=tuple(entry["working_size"]),
            threshold=float(entry.get("threshold", 0.7)),
        )
        for name, entry in read_space_config(path)["models"].items()
    }


def spec_from_checkpoint(folder: str | os.PathLike) -> ModelSpec:
    """A spec for an inverter checkpoint folder that is not in the registry: it names its detector."""
    config = read_config(resolve_folder(folder))
    return ModelSpec(
        name=str(folder),
        label=str(folder),
        detector=config["detector"]["id"],
        revision=config["detector"]["revision"],
        inverters=str(folder),
        inverters_revision=None,
        working_size=tuple(config["working_size"]),
        threshold=0.7,
    )


def find_spec(name_or_folder: str) -> ModelSpec:
    """The registry entry called `name_or_folder`, or a spec read from a checkpoint folder."""
    specs = model_specs()
    if name_or_folder in specs:
        return specs[name_or_folder]
    try:
        return spec_from_checkpoint(name_or_folder)
    except CheckpointError as error:
        raise CheckpointError(
            f"{name_or_folder!r} is neither a model in space_config.yaml ({', '.join(specs)}) "
            f"nor an inverter checkpoint: {error}"
        ) from error


def load_detector(name: str, revision: str | None, working_size: tuple[int, int], threshold: float = 0.7) -> Detector:
    """A detector from a local folder or a Hub repo (safetensors only), named by `name` and `revision`."""
    folder = resolve_folder(name, revision)
    try:
        detector = Detector.from_pretrained(str(folder), working_size=working_size, threshold=threshold)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{name!r} is not a loadable DETR (config.json + model.safetensors): {error}") from error
    detector.name, detector.revision = name, revision
    return detector


def load_inverters_for(spec: ModelSpec, detector: Detector, device: str = "cpu") -> InverterStack | None:
    """The spec's inverters, checked against its detector and on `device`; None when it names none."""
    if spec.inverters is None:
        return None
    inverters, _ = load_inverters(spec.inverters, detector=detector, revision=spec.inverters_revision)
    return inverters.to(device)


def load_model(name_or_folder: str, device: str = "cpu") -> Model:
    """Load a detector and its inverters by registry name or checkpoint folder."""
    spec = find_spec(name_or_folder)
    detector = load_detector(spec.detector, spec.revision, spec.working_size, spec.threshold).to(device)
    return Model(spec, detector, load_inverters_for(spec, detector, device))
