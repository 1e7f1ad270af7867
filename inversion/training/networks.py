"""The frozen network a training run inverts, by kind: a detector or an image classifier, behind one face.

The trainer asks a network for its stage names and default learning rates, the settings it cannot train with,
its capture, the objective over a new (or initial) inverter stack, the reconstructions validation scores, the
checkpoint its inverters are saved as and what a feature cache of it holds; it never asks which kind it has.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import torch

from ..core.checkpoints import load_inverters, save_inverters
from ..core.classifier import Classifier
from ..core.classifier_checkpoints import load_classifier_inverters, save_classifier_inverters
from ..core.classifier_inverters import ClassifierInverterConfig, ClassifierInverterStack
from ..core.classifier_stages import CLASSIFIER_STAGES, ClassifierRepresentations, ClassifierSource
from ..core.detector import DEFAULT_WORKING_SIZE, Detector
from ..core.errors import DatasetError, UserFacingError
from ..core.inverters import InverterConfig, InverterStack
from ..core.reconstruct import input_image, reconstruct
from ..core.registry import CLASSIFIER, DETECTOR, NETWORK_KINDS, ModelSpec, classifier_spec, detector_spec, find_spec, load_detector
from ..core.stages import STAGE_SOURCES, STAGES, Representations, Source
from .classifier_cache import CLASSIFIER_CACHED_STAGES, cached_classifier_representations
from .classifier_objectives import DEFAULT_CLASSIFIER_LEARNING_RATES, ClassifierModularObjective
from .feature_cache import CACHED_STAGES, cached_representations
from .objectives import DEFAULT_FEATURE_WEIGHT, DEFAULT_LEARNING_RATES, EndToEndObjective, ModularObjective

Reconstruction = tuple[str, torch.Tensor, torch.Tensor]  # (stage, one reconstruction, the image it should give back)


class DetectorNetwork:
    """A frozen detector and the inverse modules of its four stages (modular or end-to-end)."""

    kind = DETECTOR
    stages = STAGES
    learning_rates = DEFAULT_LEARNING_RATES
    cached_stages = CACHED_STAGES

    def __init__(self, detector: Detector, folder: Path | None = None):
        self.model, self.folder = detector, folder
        self.init_notes: dict | None = None  # the notes of the checkpoint a run starts from, read with its weights

    @staticmethod
    def feature_weight(objective: str) -> float:
        """The default weight of the feature-matching term: the modular objective's inverse backbone has it."""
        return DEFAULT_FEATURE_WEIGHT if objective == "modular" else 0.0

    @staticmethod
    def problems(config) -> list[str]:
        """The settings a detector's run cannot use."""
        if config.objective == "end_to_end" and tuple(config.stages) != STAGES:
            return ["stages choose modules of the modular objective; end_to_end trains one chain per stage, all four"]
        return []

    def objective(self, config) -> ModularObjective | EndToEndObjective:
        """The objective module holding the inverter stack(s) being trained."""
        if config.init:
            stack, start = load_inverters(config.init, detector=self.model, warm_start=True)
            self.init_notes = start["notes"]
            architecture = stack.config
        else:
            architecture = InverterConfig.for_detector(self.model, **config.architecture)
            stack = InverterStack(architecture)
        if config.objective == "modular":
            return ModularObjective(stack, tuple(config.stages) or self.stages, config.feature_weight,
                                    self.model.backbone_levels, config.adversarial_weight)
        for flag, weight in (("--feature-weight", config.feature_weight), ("--adversarial-weight", config.adversarial_weight)):
            if weight:
                raise UserFacingError(f"{flag} applies to the modular objective's inverse backbone: drop it, "
                                      "or train with --objective modular.")
        if config.objective == "end_to_end":
            if config.feature_cache:
                raise DatasetError("The end-to-end objective needs pixels: it cannot train from a feature cache.")
            return EndToEndObjective(architecture, stack if config.init else None)
        raise ValueError(f"Unknown objective {config.objective!r}: choose 'modular' or 'end_to_end'.")

    def capture(self, images: list, stages: tuple[str, ...]) -> Representations:
        """The detector's capture of a batch for `stages` (those trained, or scored): the backbone stage alone when
        they need nothing more (an inverse backbone trained by itself), which spares the transformer's forward."""
        return self.model.capture_backbone(images) if set(stages) == {"backbone"} else self.model.capture(images)

    def reconstructions(self, objective, reps, trained: tuple[str, ...]) -> Iterator[Reconstruction]:
        """Every image reconstructed from every `trained` stage by the objective's stack(s), with its target."""
        for name, stack in objective.stacks().items():
            sources = STAGE_SOURCES if not name else [Source(name.removeprefix("chain-"))]
            sources = [source for source in sources if source.stage in trained]
            for source, images in (reconstruct(stack, reps, sources) if sources else {}).items():
                for index, image in enumerate(images):
                    yield source.stage, image, input_image(reps, index)

    def save(self, stack: InverterStack, folder: Path, notes: dict) -> None:
        save_inverters(stack, folder, self.model, notes, self.folder)

    def cached(self, batch: dict[str, torch.Tensor], device: torch.device):
        return cached_representations(batch, device)


class ClassifierNetwork:
    """A frozen image classifier (ViT, DeiT, Swin) and the inverse modules of its four stages (modular only)."""

    kind = CLASSIFIER
    stages = CLASSIFIER_STAGES
    learning_rates = DEFAULT_CLASSIFIER_LEARNING_RATES
    cached_stages = CLASSIFIER_CACHED_STAGES
    tunable = ("mlp_ratio", "level_blocks", "pooled_layers", "head_hidden")  # what config.architecture may set

    def __init__(self, classifier: Classifier, folder: Path | None = None):
        self.model, self.folder = classifier, folder
        self.init_notes: dict | None = None  # the notes of the checkpoint a run starts from, read with its weights

    @staticmethod
    def feature_weight(objective: str) -> float:
        """0: the feature-matching term is a detector's inverse-backbone term."""
        return 0.0

    @classmethod
    def problems(cls, config) -> list[str]:
        """The settings a classifier's run cannot use."""
        problems = []
        if config.objective != "modular":
            problems.append(f"a classifier's inverters train with the modular objective, not {config.objective}")
        problems += [f"{name} is a detector's inverse-backbone term: a classifier's inverters take none"
                     for name in ("feature_weight", "adversarial_weight") if getattr(config, name)]
        if config.working_size is not None:
            problems.append("working_size is a detector's canvas: a classifier resizes images to its own input size")
        foreign = sorted(set(config.architecture) - set(cls.tunable))
        if foreign:
            problems.append(f"the architecture settings {', '.join(foreign)} shape a detector's inverters; a classifier's "
                            f"take {', '.join(cls.tunable)}")
        return problems

    def objective(self, config) -> ClassifierModularObjective:
        """The modular objective over a new stack sized from the classifier (or the `init` checkpoint's)."""
        if config.init:
            stack, start = load_classifier_inverters(config.init, self.model, warm_start=True)
            self.init_notes = start["notes"]
        else:
            stack = ClassifierInverterStack(ClassifierInverterConfig.for_classifier(self.model, **config.architecture))
        return ClassifierModularObjective(stack, tuple(config.stages) or self.stages)

    def capture(self, images: list, stages: tuple[str, ...]) -> ClassifierRepresentations:
        """The classifier's capture of a batch (every stage, whichever `stages` are trained)."""
        return self.model.capture(images)

    def reconstructions(self, objective, reps, trained: tuple[str, ...]) -> Iterator[Reconstruction]:
        """Every image reconstructed from every `trained` stage's output, with the classifier's input as its target."""
        for stage in trained:
            for image, target in zip(objective.stack.invert(reps, ClassifierSource(stage)), reps.pixels):
                yield stage, image, target

    def save(self, stack: ClassifierInverterStack, folder: Path, notes: dict) -> None:
        save_classifier_inverters(stack, folder, self.model, notes, self.folder)

    def cached(self, batch: dict[str, torch.Tensor], device: torch.device):
        return cached_classifier_representations(batch, device, self.model.family.levels(self.model.config))


Network = DetectorNetwork | ClassifierNetwork
NETWORKS = {network.kind: network for network in (DetectorNetwork, ClassifierNetwork)}


def network_source(config) -> ModelSpec:
    """The spec of the network a run's inverters are trained for: --classifier's, --detector's (at 480x640 by
    default), or the model's (a detector at the run's working size, if it sets one)."""
    if config.detector and config.classifier:
        raise UserFacingError("--detector and --classifier exclude each other: name one network.")
    if config.classifier:
        return classifier_spec(config.classifier, config.revision)
    if config.detector:
        return detector_spec(config.detector, config.revision, config.working_size or DEFAULT_WORKING_SIZE)
    spec = find_spec(config.model, kinds=NETWORK_KINDS)
    if spec.kind == CLASSIFIER or config.working_size is None:
        return spec
    return dataclasses.replace(spec, working_size=tuple(config.working_size))


def network_type(config) -> type[Network]:
    """The kind of network a run trains for (reads the space config, no weights)."""
    return NETWORKS[network_source(config).kind]


def with_defaults(config, network: type[Network]):
    """The config with its stages (none: all the network's), learning rates (the network's, overridden by the
    config's) and feature weight (none: the network's for the objective) filled in: what a run records and runs with."""
    feature_weight = network.feature_weight(config.objective) if config.feature_weight is None else config.feature_weight
    return dataclasses.replace(config, stages=tuple(config.stages) or network.stages, feature_weight=feature_weight,
                               learning_rates={**network.learning_rates, **config.learning_rates})


def network_for(config) -> Network:
    """The frozen network the inverters are trained for (see `network_source`), with the local folder it was loaded
    from (recorded in its checkpoints; None for a Hub model)."""
    spec = network_source(config)
    location = Path(spec.detector_location())
    folder = location.resolve() if location.is_dir() else None
    if spec.kind == CLASSIFIER:
        return ClassifierNetwork(Classifier.from_pretrained(str(location), spec.revision, name=spec.detector), folder)
    return DetectorNetwork(load_detector(spec), folder)
