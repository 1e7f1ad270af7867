"""The model registry: `space_config.yaml` names each model, a detector (or a classifier) with its inverters.

    load_model("shapes")              # a name in the space config
    load_model("runs/my-inverters")   # any inverter checkpoint folder (it names its own detector)
    build_classifier_model(model_specs()["shapes-vit"])   # a classifier entry (`classifier:` in the config)

The config is the file named by $INVERSION_SPACE_CONFIG, else `space_config.yaml` in the current
folder, else the project's own (beside the package), so the bundled models load from any folder.
Local paths in it are relative to the file's own folder; a checkpoint's detector, to the
checkpoint's folder. `build_model` is the one place a `Model` is assembled, `build_classifier_model` a
`ClassifierModel`, `build_any_model` either, by the spec's kind. `find_spec` gives a detector's spec, and with
`kinds=NETWORK_KINDS` a classifier's too (the commands that train, cache, evaluate and publish take both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .checkpoints import CheckpointError, checkpoint_folder, load_inverters, read_config, recorded_detector_folder
from .classifier import Classifier
from .classifier_checkpoints import load_classifier_inverters
from .classifier_inverters import ClassifierInverterStack
from .detector import DEFAULT_THRESHOLD, Detector
from .inverters import InverterStack

CONFIG_VARIABLE = "INVERSION_SPACE_CONFIG"
CONFIG_NAME = "space_config.yaml"
PROJECT_CONFIG = Path(__file__).resolve().parents[2] / CONFIG_NAME  # the project's, beside the package
DETECTOR, CLASSIFIER = "detector", "classifier"  # the kinds of model, named by an entry's key for its network
NETWORK_KINDS = (DETECTOR, CLASSIFIER)


@dataclass
class ModelSpec:
    """One model: where its network and inverters live, its working size and score threshold.

    `kind` is DETECTOR or CLASSIFIER; `detector` is the network's Hub repo id or local path (a classifier's
    for kind CLASSIFIER, whose working size is empty: it resizes images to its own input size), `inverters`
    likewise; `root` is the folder local paths are relative to. `detector` as written is the identity
    inverter checkpoints record; `detector_folder`, when set, is where that detector lies (resolved from a
    checkpoint).
    """

    name: str
    label: str
    detector: str
    revision: str | None
    inverters: str | None
    inverters_revision: str | None
    working_size: tuple[int, int]
    threshold: float
    root: Path
    detector_folder: Path | None = None
    kind: str = DETECTOR

    def locate(self, name_or_path: str) -> str:
        """A local path resolved against `root` when it exists there; a Hub id as is."""
        local = self.root / name_or_path
        return str(local) if local.exists() else name_or_path

    def detector_location(self) -> str:
        """Where to load the detector from: its resolved folder, else `detector` located against `root`."""
        return str(self.detector_folder) if self.detector_folder else self.locate(self.detector)


class Placed:
    """What a loaded model knows of where it runs: its `device`, decided once at load (its parameters may say
    otherwise: on ZeroGPU they report "cuda" only on the thread that loaded them, "cpu" in every request's)."""

    device: str

    @property
    def on_gpu(self) -> bool:
        """Whether the model runs on a GPU (as decided when it was loaded, not as a parameter reports now)."""
        return self.device != "cpu"


@dataclass
class Model(Placed):
    """A loaded detector with its inverters (None when it has none, or they did not load)."""

    spec: ModelSpec
    detector: Detector
    inverters: InverterStack | None
    inverters_problem: str | None = None  # why the inverters the spec names could not be loaded
    device: str = "cpu"  # where it was placed at load (`Placed`)

    def require_inverters(self) -> InverterStack:
        """The inverters, or a CheckpointError saying that this model has none (and why)."""
        if self.inverters is None:
            reason = f": {self.inverters_problem}" if self.inverters_problem else " yet"
            raise CheckpointError(f"The model {self.spec.label!r} has no trained inverters{reason}.")
        return self.inverters


@dataclass
class ClassifierModel(Placed):
    """A loaded image classifier with its inverters (None when it has none, or they did not load)."""

    spec: ModelSpec
    classifier: Classifier
    inverters: ClassifierInverterStack | None
    inverters_problem: str | None = None  # why the inverters the spec names could not be loaded
    device: str = "cpu"  # where it was placed at load (`Placed`)


def space_config_path(path: str | os.PathLike | None = None) -> Path:
    """The space config in use: `path`, else $INVERSION_SPACE_CONFIG, else ./space_config.yaml, else the project's."""
    named = path or os.environ.get(CONFIG_VARIABLE)
    if named:
        if not Path(named).is_file():
            source = "the config argument" if path else f"${CONFIG_VARIABLE}"
            raise CheckpointError(f"No space config at {named} (named by {source}): check the path.")
        return Path(named)
    for candidate in (Path(CONFIG_NAME), PROJECT_CONFIG):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"No space config: none in the current folder nor at {PROJECT_CONFIG}; name one with ${CONFIG_VARIABLE}, "
        "or load an inverter checkpoint folder by its path."
    )


def read_space_config(path: str | os.PathLike | None = None) -> dict:
    """The parsed space config (see `space_config_path` for which file)."""
    return yaml.safe_load(space_config_path(path).read_text())


def model_specs(path: str | os.PathLike | None = None) -> dict[str, ModelSpec]:
    """Every model the space config offers, by name, in the file's order."""
    config_path = space_config_path(path)
    root = config_path.resolve().parent
    return {name: _entry_spec(name, entry, root) for name, entry in yaml.safe_load(config_path.read_text())["models"].items()}


def _entry_spec(name: str, entry: dict, root: Path) -> ModelSpec:
    """One space-config entry as a spec: `detector:` names a detector, `classifier:` a classifier."""
    kind = CLASSIFIER if CLASSIFIER in entry else DETECTOR
    if kind == CLASSIFIER and DETECTOR in entry:
        raise CheckpointError(f"The space config's model {name!r} names both a detector and a classifier: keep one.")
    return ModelSpec(
        name=name,
        label=entry.get("label", name),
        detector=entry[kind],
        revision=entry.get("revision"),
        inverters=entry.get("inverters"),
        inverters_revision=entry.get("inverters_revision"),
        working_size=tuple(entry["working_size"]) if kind == DETECTOR else (),
        threshold=float(entry.get("threshold", DEFAULT_THRESHOLD)),
        root=root,
        kind=kind,
    )


def spec_from_checkpoint(folder: str | os.PathLike) -> ModelSpec:
    """A spec for an inverter checkpoint folder that is not in the registry: it names its detector (or classifier),
    found relative to the checkpoint's own folder (see `recorded_detector_folder`), else on the Hub."""
    location = checkpoint_folder(folder).resolve()
    config = read_config(location)
    kind = CLASSIFIER if config.get("kind") == CLASSIFIER else DETECTOR
    network = config.get(kind, {})
    if not network.get("id"):
        raise CheckpointError(f"{location / 'inverters.json'} does not name the {kind} it was trained for.")
    return ModelSpec(
        name=str(folder),
        label=str(folder),
        detector=network["id"],
        revision=network.get("revision"),
        inverters=str(location),
        inverters_revision=None,
        working_size=tuple(config["working_size"]) if kind == DETECTOR else (),
        threshold=DEFAULT_THRESHOLD,
        root=location,
        detector_folder=recorded_detector_folder(config, location, kind),
        kind=kind,
    )


def detector_spec(detector: str, revision: str | None, working_size: tuple[int, int]) -> ModelSpec:
    """A spec for a detector alone (a Hub id or a folder), without inverters."""
    return ModelSpec(
        name=detector, label=detector, detector=detector, revision=revision, inverters=None, inverters_revision=None,
        working_size=tuple(working_size), threshold=DEFAULT_THRESHOLD, root=Path.cwd(),
    )


def classifier_spec(classifier: str, revision: str | None) -> ModelSpec:
    """A spec for a classifier alone (a Hub id or a folder), without inverters."""
    return ModelSpec(
        name=classifier, label=classifier, detector=classifier, revision=revision, inverters=None, inverters_revision=None,
        working_size=(), threshold=DEFAULT_THRESHOLD, root=Path.cwd(), kind=CLASSIFIER,
    )


def find_spec(name_or_folder: str, config: str | os.PathLike | None = None,
              kinds: tuple[str, ...] = (DETECTOR,)) -> ModelSpec:
    """The space config's model called `name_or_folder`, or a spec read from a checkpoint folder; a model of a kind
    not in `kinds` (by default: a classifier) is refused in one line, naming the models that fit."""
    if not Path(name_or_folder).is_dir():
        specs = model_specs(config)
        if name_or_folder in specs:
            return _of_kind(specs[name_or_folder], kinds, lambda: specs)
        offered = f" ({', '.join(specs)})"
    else:
        offered = ""
    try:
        spec = spec_from_checkpoint(name_or_folder)
    except CheckpointError as error:
        raise CheckpointError(
            f"{name_or_folder!r} is neither a model in the space config{offered} nor an inverter checkpoint: {error}"
        ) from error
    return _of_kind(spec, kinds, lambda: model_specs(config))


def _of_kind(spec: ModelSpec, kinds: tuple[str, ...], specs) -> ModelSpec:
    """`spec` when its kind is one of `kinds`; else a CheckpointError naming the configured models that are."""
    if spec.kind in kinds:
        return spec
    try:
        fitting = ", ".join(name for name, other in specs().items() if other.kind in kinds)
    except CheckpointError:
        fitting = "none configured"
    wanted = " or ".join(f"an image {kind}" if kind == CLASSIFIER else f"a {kind}" for kind in kinds)
    wrong = "an image classifier, not a detector" if spec.kind == CLASSIFIER else "a detector, not an image classifier"
    raise CheckpointError(f"{spec.name!r} is {wrong}: this command takes {wanted} ({fitting}); train, cache-features, "
                          "evaluate and publish take either, and the app serves both (python app.py).")


def load_detector(spec: ModelSpec, device: str = "cpu") -> Detector:
    """The spec's detector at its pinned revision, working size and threshold, on `device`."""
    detector = Detector.from_pretrained(
        spec.detector_location(), spec.revision, spec.working_size, spec.threshold, name=spec.detector
    )
    return detector.to(device)


def build_model(spec: ModelSpec, device: str = "cpu", strict: bool = True) -> Model:
    """Load a spec's detector and inverters (checked against each other) onto `device`, recorded on the model.

    A detector that cannot be loaded always raises. Inverters that cannot be loaded raise when
    `strict`; otherwise the model comes without them and `inverters_problem` says why.
    """
    if spec.kind != DETECTOR:
        raise CheckpointError(f"{spec.name!r} is an image classifier, not a detector: load it with build_classifier_model.")
    detector = load_detector(spec, device)
    if spec.inverters is None:
        return Model(spec, detector, None, device=device)
    try:
        inverters, _ = load_inverters(spec.locate(spec.inverters), detector=detector, revision=spec.inverters_revision)
    except CheckpointError as error:
        if strict:
            raise
        return Model(spec, detector, None, f"its inverters could not be loaded: {error}", device=device)
    return Model(spec, detector, inverters.to(device), device=device)


def build_classifier_model(spec: ModelSpec, device: str = "cpu", strict: bool = True) -> ClassifierModel:
    """Load a classifier spec's classifier and inverters (checked against each other) onto `device`, as
    `build_model` does for a detector (`strict` alike)."""
    if spec.kind != CLASSIFIER:
        raise CheckpointError(f"{spec.name!r} is a detector, not an image classifier: load it with build_model.")
    classifier = Classifier.from_pretrained(spec.detector_location(), spec.revision, name=spec.detector).to(device)
    if spec.inverters is None:
        return ClassifierModel(spec, classifier, None, device=device)
    try:
        inverters, _ = load_classifier_inverters(spec.locate(spec.inverters), classifier, spec.inverters_revision)
    except CheckpointError as error:
        if strict:
            raise
        return ClassifierModel(spec, classifier, None, f"its inverters could not be loaded: {error}", device=device)
    return ClassifierModel(spec, classifier, inverters.to(device), device=device)


def build_any_model(spec: ModelSpec, device: str = "cpu", strict: bool = True) -> Model | ClassifierModel:
    """`build_model` or `build_classifier_model`, by the spec's kind."""
    return (build_classifier_model if spec.kind == CLASSIFIER else build_model)(spec, device, strict)


def load_model(name_or_folder: str, device: str = "cpu", config: str | os.PathLike | None = None) -> Model | ClassifierModel:
    """Load a model (a detector or a classifier) by space-config name or inverter checkpoint folder, with its inverters."""
    return build_any_model(find_spec(name_or_folder, config, NETWORK_KINDS), device)
