"""Inverter checkpoints: safetensors weights plus a JSON config, from a local folder or a Hub repo.

A checkpoint folder holds
    inverters.json         format version, architecture, detector id and revision (and, for a detector
                           in a local folder, that folder relative to the checkpoint's own), working
                           size, normalisation, and free-form training notes
    inverters.safetensors  the InverterStack's weights
(a training run also keeps its optimizer state beside them: inversion.training.state).
Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .detector import Detector
from .errors import CheckpointError
from .hub import resolve_folder
from .inverters import InverterConfig, InverterStack

FORMAT_VERSION = 1
CONFIG_FILE = "inverters.json"
WEIGHTS_FILE = "inverters.safetensors"

# The fields of InverterConfig that must equal the detector's own sizes.
MIRRORED_FIELDS = ("d_model", "num_queries", "num_logits", "stride", "class_scores")


def checkpoint_folder(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local folder of an inverter checkpoint: a folder, or a Hub repo's two files fetched at `revision`."""
    return resolve_folder(name_or_path, revision, (CONFIG_FILE, WEIGHTS_FILE))


def detector_identity(detector: Detector) -> dict:
    """What a checkpoint records about the detector it was trained for."""
    return {"id": detector.name, "revision": detector.revision, "family": detector.family.name}


def detector_reference(detector: Detector, checkpoint: Path, detector_folder: str | os.PathLike | None) -> dict:
    """The detector's identity, plus where it lies relative to `checkpoint` when it comes from a local folder
    (so that the checkpoint finds it from any current folder, and after both are moved together)."""
    return with_folder(detector_identity(detector), checkpoint, detector_folder)


def with_folder(identity: dict, checkpoint: Path, network_folder: str | os.PathLike | None) -> dict:
    """A network's `identity`, plus its local `network_folder` (if any) relative to `checkpoint`."""
    if network_folder is not None and Path(network_folder).is_dir():
        return {**identity, "folder": os.path.relpath(Path(network_folder).resolve(), checkpoint.resolve())}
    return identity


def recorded_detector_folder(config: dict, checkpoint: Path, key: str = "detector") -> Path | None:
    """The local detector (or, with `key` "classifier", classifier) folder a checkpoint's config points to,
    resolved against the checkpoint's own folder.

    Checkpoints record `folder` (relative to themselves); older ones only an `id`, which, when it is a relative
    path, is looked up against the checkpoint's folder and each folder above it. None: the id is a Hub repo.
    """
    recorded = config.get(key, {})
    checkpoint = checkpoint.resolve()
    if recorded.get("folder"):
        return (checkpoint / recorded["folder"]).resolve()
    name = recorded.get("id")
    if not name:
        return None
    path = Path(name).expanduser()
    if path.is_absolute():
        return path if path.is_dir() else None
    return next((base / path for base in (checkpoint, *checkpoint.parents) if (base / path).is_dir()), None)


def save_inverters(stack: InverterStack, folder: str | os.PathLike, detector: Detector, notes: dict | None = None,
                   detector_folder: str | os.PathLike | None = None) -> Path:
    """Write the stack's weights and config into `folder`: the detector's identity, and `detector_folder`
    (the local folder it was loaded from, if any) relative to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "architecture": stack.config.to_dict(),
        "detector": detector_reference(detector, folder, detector_folder),
        "working_size": list(detector.working_size),
        "normalisation": {"mean": list(detector.family.pixel_mean), "std": list(detector.family.pixel_std)},
        "notes": notes or {},
    }
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in stack.state_dict().items()}
    save_file(state, folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return folder


def read_config(folder: Path) -> dict:
    """Read and check an inverters.json: present, valid JSON, a format version we understand."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}: it is not an inverter checkpoint.")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}).") from error
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version!r}; this code reads version {FORMAT_VERSION}. "
            "Retrain or convert the checkpoint with a matching release."
        )
    return config


def load_inverters(
    name_or_path: str | os.PathLike, detector: Detector | None = None, revision: str | None = None,
    warm_start: bool = False,
) -> tuple[InverterStack, dict]:
    """Load an InverterStack (and its config dict) from a folder or Hub repo.

    With a detector, refuse a checkpoint made for another detector: different sizes, or a
    different detector id or revision, are named in the error. A `warm_start` (weights to train
    on, e.g. for a fine-tune of the detector they were made for) needs only the sizes and family.
    """
    folder = checkpoint_folder(name_or_path, revision)
    config = read_config(folder)
    try:
        architecture = InverterConfig(**config["architecture"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{folder / CONFIG_FILE} has an unusable architecture: {error}.") from error
    if detector is not None:
        check_detector_match(config, architecture, detector, same_detector=not warm_start)
    stack = InverterStack(architecture)
    load_weights(stack, folder / WEIGHTS_FILE)
    return stack.eval(), config


def check_detector_match(config: dict, architecture: InverterConfig, detector: Detector, same_detector: bool = True) -> None:
    """Raise CheckpointError if these inverters were not made for `detector` (with `same_detector` False: for a
    detector of its sizes and family)."""
    expected = InverterConfig.for_detector(detector)
    mismatches = [
        f"{field} is {getattr(architecture, field)} in the checkpoint but {getattr(expected, field)} in the detector"
        for field in MIRRORED_FIELDS
        if getattr(architecture, field) != getattr(expected, field)
    ]
    trained_for = config.get("detector", {})
    if same_detector and (trained_for.get("id") not in (None, detector.name) or trained_for.get("revision") != detector.revision):
        mismatches.append(
            f"it was trained for detector {trained_for.get('id')!r} at revision {trained_for.get('revision')!r}, "
            f"not {detector.name!r} at revision {detector.revision!r}"
        )
    if trained_for.get("family") not in (None, detector.family.name):  # checkpoints before families name none
        mismatches.append(f"it was trained for a {trained_for['family']}, not a {detector.family.name}")
    if mismatches:
        raise CheckpointError("These inverters do not fit this detector: " + "; ".join(mismatches) + ".")


def load_weights(stack: InverterStack, path: Path) -> None:
    """Load safetensors weights into `stack`, naming missing, unexpected or mis-shaped tensors."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint has a config but no weights.")
    try:
        weights = load_file(path)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({error}).") from error
    expected = stack.state_dict()
    problems = [f"missing {name}" for name in expected if name not in weights]
    problems += [f"unexpected {name}" for name in weights if name not in expected]
    problems += [
        f"{name} has shape {tuple(weights[name].shape)}, expected {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in weights and weights[name].shape != tensor.shape
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CheckpointError(f"{path} does not match the architecture in its config: {shown}.")
    stack.load_state_dict(weights)
