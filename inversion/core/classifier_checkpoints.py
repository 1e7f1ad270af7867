"""Checkpoints of a classifier's inverters: the same two files as the detection inverters' (inverters.json with
format version, architecture, the classifier's identity, input size and normalisation, notes; inverters.safetensors),
marked `"kind": "classifier"` so that neither loader takes the other's. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from .checkpoints import CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE, checkpoint_folder, load_weights, read_config, with_folder
from .classifier import Classifier
from .classifier_inverters import ClassifierInverterConfig, ClassifierInverterStack
from .errors import CheckpointError

KIND = "classifier"


def classifier_identity(classifier: Classifier) -> dict:
    """What a checkpoint records about the classifier it was trained for."""
    return {"id": classifier.name, "revision": classifier.revision, "family": classifier.family.name}


def save_classifier_inverters(stack: ClassifierInverterStack, folder: str | os.PathLike, classifier: Classifier,
                              notes: dict | None = None, classifier_folder: str | os.PathLike | None = None) -> Path:
    """Write the stack's weights and config into `folder`: the classifier's identity, and `classifier_folder` (the
    local folder it was loaded from, if any) relative to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "architecture": stack.config.to_dict(),
        "classifier": with_folder(classifier_identity(classifier), folder, classifier_folder),
        "input_size": list(classifier.image_size),
        "normalisation": {"mean": list(classifier.family.pixel_mean), "std": list(classifier.family.pixel_std)},
        "notes": notes or {},
    }
    save_file({name: tensor.detach().contiguous().cpu() for name, tensor in stack.state_dict().items()}, folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return folder


def load_classifier_inverters(name_or_path: str | os.PathLike, classifier: Classifier | None = None,
                              revision: str | None = None, warm_start: bool = False) -> tuple[ClassifierInverterStack, dict]:
    """Load a classifier's inverter stack (and its config dict) from a folder or Hub repo; with a classifier,
    refuse a checkpoint made for another (its sizes, identity or family differ: each is named; a `warm_start`
    needs only the sizes and family)."""
    folder = checkpoint_folder(name_or_path, revision)
    config = read_config(folder)
    if config.get("kind") != KIND:
        raise CheckpointError(f"{folder} holds a detector's inverters, not a classifier's: load it with load_inverters.")
    try:
        architecture = ClassifierInverterConfig(**config["architecture"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{folder / CONFIG_FILE} has an unusable architecture: {error}.") from error
    if classifier is not None:
        check_classifier_match(config, architecture, classifier, same_classifier=not warm_start)
    stack = ClassifierInverterStack(architecture)
    load_weights(stack, folder / WEIGHTS_FILE)
    return stack.eval(), config


MIRRORED_FIELDS = ("architecture", "image_size", "patch_size", "special_tokens", "pooled_tokens", "num_labels", "levels")


def check_classifier_match(config: dict, architecture: ClassifierInverterConfig, classifier: Classifier,
                           same_classifier: bool = True) -> None:
    """Raise CheckpointError if these inverters were not made for `classifier` (with `same_classifier` False: for a
    classifier of its sizes and family)."""
    expected = ClassifierInverterConfig.for_classifier(classifier)
    mismatches = [f"its {field} differs from the classifier's" for field in MIRRORED_FIELDS
                  if getattr(architecture, field) != getattr(expected, field)]
    trained_for = config.get("classifier", {})
    if same_classifier and (trained_for.get("id") != classifier.name or trained_for.get("revision") != classifier.revision):
        mismatches.append(f"it was trained for classifier {trained_for.get('id')!r} at revision {trained_for.get('revision')!r}, "
                          f"not {classifier.name!r} at revision {classifier.revision!r}")
    if trained_for.get("family") != classifier.family.name:
        mismatches.append(f"it was trained for a {trained_for.get('family')}, not a {classifier.family.name}")
    if mismatches:
        raise CheckpointError("These inverters do not fit this classifier: " + "; ".join(mismatches) + ".")
