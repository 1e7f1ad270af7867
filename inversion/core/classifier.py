"""The frozen image-classification transformer whose representations we invert: loading, preprocessing, capture.

Any model of a classification family (`families.classifiers`: ViT, DeiT, Swin) works: a Hub repo at a pinned
commit, a local folder, a tiny random config. Images are resized to the model's own input size (as its image
processor does); the stages are those of `classifier_stages`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from transformers import AutoConfig, PreTrainedModel

from .classifier_stages import ClassifierRepresentations, Prediction
from .detector import CONFIG_FILE, _load_quietly, _read_config_type, _weights_folder
from .families.classifier_base import ClassifierChanges, ClassifierFamily
from .families.classifiers import classifier_family_for
from .hub import WeightsNotFound, resolve_folder

DEFAULT_TOP_K = 5
PREPROCESSOR_FILE = "preprocessor_config.json"  # the image processor's settings: its normalisation is read
Normalisation = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std) per RGB channel
PRESENT_THRESHOLD = 0.5  # a multi-label classifier gives an image a class whose probability is above this


class Classifier(nn.Module):
    """A frozen image classifier in eval mode that captures every stage of its forward pass."""

    def __init__(self, model: PreTrainedModel, name: str = "classifier", revision: str | None = None,
                 top_k: int = DEFAULT_TOP_K, normalisation: Normalisation | None = None):
        super().__init__()
        family = classifier_family_for(model.config)
        if normalisation is not None and normalisation != (family.pixel_mean, family.pixel_std):
            family = copy.copy(family)  # this checkpoint's own normalisation; the family's default stays as it is
            family.pixel_mean, family.pixel_std = normalisation
        self.family: ClassifierFamily = family
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.revision = revision
        self.top_k = top_k

    @classmethod
    def from_pretrained(cls, name_or_path: str, revision: str | None = None, name: str | None = None,
                        top_k: int = DEFAULT_TOP_K) -> Classifier:
        """Load a classifier of a supported family from a local folder or a Hub repo id at a pinned `revision`.

        Its config is read first and an unsupported architecture refused before any weights are read; the
        weights come from model.safetensors only (nothing is unpickled).
        """
        label = str(name_or_path)
        folder = resolve_folder(name_or_path, revision, (CONFIG_FILE, PREPROCESSOR_FILE))
        family = classifier_family_for(_read_config_type(folder / CONFIG_FILE, label))
        normalisation = _read_normalisation(folder / PREPROCESSOR_FILE, label)
        folder = _weights_folder(folder, name_or_path, revision, label)
        model_class = family.model_class(AutoConfig.from_pretrained(folder))
        model = _load_quietly(family, folder, label, model_class)
        return cls(model, name=name or label, revision=revision, top_k=top_k, normalisation=normalisation)

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the model's input."""
        return self.family.image_size(self.config)

    @property
    def multi_label(self) -> bool:
        """Whether each class is scored alone (a sigmoid per class) rather than all against each other."""
        return self.config.problem_type == "multi_label_classification"

    def train(self, mode: bool = True) -> Classifier:
        """The classifier stays in eval mode: its targets must not see dropout."""
        return super().train(False)

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """RGB images resized to the model's input size, as B x 3 x H x W pixels in [0, 1]."""
        height, width = self.image_size
        pixels = torch.zeros(len(images), 3, height, width)
        for index, image in enumerate(images):
            resized = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
            array = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
            pixels[index] = array.view(height, width, 3).permute(2, 0, 1) / 255.0
        return pixels

    @torch.no_grad()
    def capture(self, images: list[Image.Image] | torch.Tensor, attention: bool = False) -> ClassifierRepresentations:
        """Run the classifier once on a batch (images, or [0, 1] pixels at its input size): every stage and the
        top predictions (and, with `attention`, the attention weights of the same forward)."""
        pixels = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        representations = self.forward_stages(pixels.to(self.device), attention=attention)
        representations.predictions = self.predictions(representations.logits)
        return representations

    def forward_stages(self, pixels: torch.Tensor, changes: ClassifierChanges = ClassifierChanges(),
                       attention: bool = False) -> ClassifierRepresentations:
        """The differentiable forward behind `capture`: [0, 1] pixels in, every stage out (no predictions)."""
        forward = self.family.forward(self.model, pixels, changes, attention)
        return ClassifierRepresentations(forward.embedding, forward.encoder, self.family.levels(self.config),
                                         forward.pooled, forward.logits, pixels, attention=forward.attention,
                                         final=forward.final)

    def class_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """B x C: a sigmoid per class for a multi-label model, else a softmax over the classes."""
        return logits.float().sigmoid() if self.multi_label else logits.float().softmax(-1)

    def present(self, logits: torch.Tensor) -> torch.Tensor:
        """B x C booleans, the classes each image is given: above PRESENT_THRESHOLD for a multi-label model, else
        its most probable class."""
        probabilities = self.class_probabilities(logits)
        if self.multi_label:
            return probabilities > PRESENT_THRESHOLD
        return nn.functional.one_hot(probabilities.argmax(-1), probabilities.shape[-1]).bool()

    def predictions(self, logits: torch.Tensor, top_k: int | None = None) -> list[list[Prediction]]:
        """Each image's `top_k` classes, highest score first."""
        probabilities = self.class_probabilities(logits).cpu()
        scores, labels = probabilities.topk(min(top_k or self.top_k, probabilities.shape[-1]), dim=-1)
        id2label = self.config.id2label
        return [[Prediction(id2label.get(int(label), str(int(label))), int(label), float(score))
                 for score, label in zip(image_scores, image_labels)] for image_scores, image_labels in zip(scores, labels)]


def _read_normalisation(path: Path, label: str) -> Normalisation | None:
    """The (mean, std) a checkpoint's image processor normalises with (none without the file: the family's
    default); WeightsNotFound naming the field when it is unusable."""
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text())
        if not settings.get("do_normalize", True):
            return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        mean, std = (tuple(float(value) for value in settings[key]) for key in ("image_mean", "image_std"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise WeightsNotFound(f"{label!r}: its {PREPROCESSOR_FILE} gives no usable image_mean and image_std "
                              f"({error.__class__.__name__}): fix or remove the file.") from error
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise WeightsNotFound(f"{label!r}: its {PREPROCESSOR_FILE} needs three image_mean values and three positive "
                              "image_std values: fix or remove the file.")
    return mean, std
