"""The frozen detection transformer whose representations we invert: preprocessing, one capturing forward, detections.

Any model of a supported family works (`families`: DETR, Table Transformer, Conditional DETR,
DAB-DETR): a Hub repo at a pinned commit, a local folder, a tiny random config. Images are fitted
inside a fixed working canvas keeping their aspect ratio and padded bottom/right; the pixel mask
tells the model (and the inverters) where the padding is.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import logging as transformers_logging

from .errors import UserFacingError
from .families import Changes, Family, Sizes, UnsupportedModel, family_for
from .hub import WeightsNotFound, resolve_folder
from .stages import Detection, Representations

DEFAULT_WORKING_SIZE = (480, 640)  # the paper's canvas for DETR-R50 (a 15 x 20 grid at stride 32)
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"  # all a detector needs: never pickles
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
TRAINING_ONLY = "num_batches_tracked"  # BatchNorm's step counter: saved by some checkpoints, never used to infer
DEFAULT_THRESHOLD = 0.7  # the score above which a query counts as a detection (DETR's own demos)


@dataclass
class Canvas:
    """A batch of images fitted into the working size: pixels in [0, 1] and the pixel mask."""

    pixels: torch.Tensor  # B x 3 x H x W, zero on padding
    pixel_mask: torch.Tensor  # B x H x W, 1 on image, 0 on padding
    content_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]


def fit_to_canvas(images: list[Image.Image], working_size: tuple[int, int]) -> Canvas:
    """Resize each RGB image to fit inside `working_size` (height, width), keep its aspect ratio, pad."""
    canvas_height, canvas_width = working_size
    pixels = torch.zeros(len(images), 3, canvas_height, canvas_width)
    content_sizes, original_sizes = [], []
    for index, image in enumerate(images):
        scale = min(canvas_height / image.height, canvas_width / image.width)
        height = max(1, min(canvas_height, round(image.height * scale)))
        width = max(1, min(canvas_width, round(image.width * scale)))
        resized = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        array = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
        pixels[index, :, :height, :width] = array.view(height, width, 3).permute(2, 0, 1) / 255.0
        content_sizes.append((height, width))
        original_sizes.append((image.height, image.width))
    pixel_mask = torch.zeros(len(images), canvas_height, canvas_width, dtype=torch.long)
    for index, (height, width) in enumerate(content_sizes):
        pixel_mask[index, :height, :width] = 1
    return Canvas(pixels, pixel_mask, content_sizes, original_sizes)


class Detector(nn.Module):
    """A frozen detection transformer in eval mode that captures every stage of its forward pass."""

    def __init__(
        self,
        model: PreTrainedModel,
        working_size: tuple[int, int] = DEFAULT_WORKING_SIZE,
        name: str = "detr",
        revision: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ):
        super().__init__()
        self.family: Family = family_for(model.config)
        self.model = model.eval().requires_grad_(False)
        self.working_size = tuple(int(side) for side in working_size)
        self.name = name
        self.revision = revision
        self.threshold = threshold
        if min(self.working_size) < self.stride:
            raise UserFacingError(
                f"The working size {self.working_size[0]} x {self.working_size[1]} is below this detector's stride "
                f"({self.stride} pixels a feature cell): give at least {self.stride} x {self.stride}."
            )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        revision: str | None = None,
        working_size: tuple[int, int] = DEFAULT_WORKING_SIZE,
        threshold: float = DEFAULT_THRESHOLD,
        name: str | None = None,
    ) -> Detector:
        """Load a detector of a supported family from a local folder or a Hub repo id at a pinned `revision`.

        Its config is read first and an unsupported architecture refused before any weights are read; the
        weights come from model.safetensors only (nothing is unpickled; a backbone's own ImageNet weights
        are never fetched: the checkpoint carries them). `name` is the identity inverter checkpoints record
        (default: `name_or_path`).
        """
        label = str(name_or_path)
        folder = resolve_folder(name_or_path, revision, (CONFIG_FILE,))
        family = family_for(_read_config_type(folder / CONFIG_FILE, label))
        folder = _weights_folder(folder, name_or_path, revision, label)
        model = _load_quietly(family, folder, label)
        return cls(model, working_size, name=name or label, revision=revision, threshold=threshold)

    @property
    def config(self):
        return self.model.config

    @property
    def sizes(self) -> Sizes:
        """Its width, queries, layers and heads, read by its family from the config."""
        return self.family.sizes(self.config)

    @functools.cached_property
    def stride(self) -> int:
        """Image pixels per feature-grid cell, measured by running the backbone on a blank image."""
        probe = torch.zeros(1, 3, 256, 256, device=self.device)
        with torch.no_grad():
            feature_map = self.backbone_map(probe, torch.ones(1, 256, 256, dtype=torch.long, device=self.device))
        return 256 // feature_map.shape[-1]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> Detector:
        """The detector stays in eval mode: its targets must not see dropout or batch statistics."""
        return super().train(False)

    def preprocess(self, images: list[Image.Image]) -> Canvas:
        """Fit RGB images into this detector's working canvas."""
        return fit_to_canvas(images, self.working_size)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] canvas pixels as this detector's input (its family's normalisation)."""
        return self.family.normalise(pixels)

    @torch.no_grad()
    def capture(self, images: list[Image.Image] | Canvas, attention: bool = False) -> Representations:
        """Run the detector once on a batch and return every stage, every layer and the detections
        (and, with `attention`, the attention weights of the same forward)."""
        canvas = images if isinstance(images, Canvas) else self.preprocess(images)
        representations = self.forward_stages(canvas.pixels.to(self.device), canvas.pixel_mask.to(self.device),
                                              attention=attention)
        representations.content_sizes = canvas.content_sizes
        representations.original_sizes = canvas.original_sizes
        representations.detections = self.detections(representations.logits, representations.boxes, canvas.original_sizes)
        return representations

    @torch.no_grad()
    def capture_backbone(self, images: list[Image.Image] | Canvas) -> Representations:
        """The backbone stage alone, without the transformer (what an inverse backbone trains on): its maps, masks and
        canvas as `capture` returns them; the transformer's stages are empty and there are no detections."""
        canvas = images if isinstance(images, Canvas) else self.preprocess(images)
        pixels, pixel_mask = canvas.pixels.to(self.device), canvas.pixel_mask.to(self.device)
        grid, *extra_levels = self.backbone_levels(pixels, pixel_mask)
        return Representations(backbone=grid, encoder=[], decoder=[], logits=grid.new_empty(0), boxes=grid.new_empty(0),
                               grid_mask=_grid_mask(pixel_mask, grid), pixels=pixels, content_sizes=canvas.content_sizes,
                               original_sizes=canvas.original_sizes, extra_levels=extra_levels)

    def forward_stages(self, pixels: torch.Tensor, pixel_mask: torch.Tensor, changes: Changes = Changes(),
                       attention: bool = False) -> Representations:
        """The differentiable forward behind `capture`: [0, 1] canvas pixels in, every stage out.

        Gradients flow to `pixels` (the detector's own weights stay frozen); the sizes default to the
        whole canvas and no detections are computed. `changes` replace stages or skip layers on the way;
        `attention` records the attention weights (`Representations.encoder_attention`, `cross_attention`).
        """
        forward = self.family.forward(self.model, pixels, pixel_mask, changes, attention)
        canvas_size = tuple(pixels.shape[-2:])
        return Representations(
            backbone=forward.backbone,
            encoder=forward.encoder,
            decoder=forward.decoder,
            logits=forward.logits,
            boxes=forward.boxes,
            grid_mask=_grid_mask(pixel_mask, forward.backbone),
            pixels=pixels,
            content_sizes=[canvas_size] * len(pixels),
            original_sizes=[canvas_size] * len(pixels),
            encoder_attention=forward.encoder_attention,
            cross_attention=forward.cross_attention,
            extra_levels=forward.extra_levels,
            attention_level=forward.attention_level,
        )

    def backbone_levels(self, pixels: torch.Tensor, pixel_mask: torch.Tensor) -> list[torch.Tensor]:
        """The backbone stage's maps (B x d x h_l x w_l, the grid first) of [0, 1] canvas pixels, without the
        transformer (differentiable with respect to `pixels`)."""
        return self.family.backbone_levels(self.model, pixels, pixel_mask)

    def backbone_map(self, pixels: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        """The backbone stage's grid map (B x d x h x w) of [0, 1] canvas pixels, without the transformer."""
        return self.backbone_levels(pixels, pixel_mask)[0]

    def class_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """B x Q x C: each query's probability of each class (softmax without "no object", or sigmoid)."""
        return self.family.class_probabilities(logits.float())

    def detections(
        self,
        logits: torch.Tensor,
        boxes: torch.Tensor,
        original_sizes: list[tuple[int, int]],
        threshold: float | None = None,
    ) -> list[list[Detection]]:
        """Each image's queries scoring above `threshold` for their best class, as labelled boxes in
        original-image pixels (x0, y0, x1, y1), highest score first."""
        threshold = self.threshold if threshold is None else threshold
        scores, labels = self.class_probabilities(logits).cpu().max(-1)
        id2label = self.config.id2label
        found = []
        for image, (height, width) in enumerate(original_sizes):
            cx, cy, w, h = boxes[image].float().cpu().unbind(-1)
            corners = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * torch.tensor([width, height] * 2)
            kept = sorted((scores[image] > threshold).nonzero().flatten().tolist(), key=lambda q: -float(scores[image, q]))
            found.append([
                Detection(id2label.get(int(labels[image, q]), str(int(labels[image, q]))), int(labels[image, q]),
                          float(scores[image, q]), tuple(corners[q].tolist()))
                for q in kept
            ])
        return found

    def detection_queries(self, representations: Representations, image: int, threshold: float | None = None) -> list[int]:
        """The query behind each of `representations.detections[image]`, in the same order (by falling score)."""
        scores = self.class_probabilities(representations.logits[image]).max(-1).values.cpu()
        threshold = self.threshold if threshold is None else threshold
        return sorted((scores > threshold).nonzero().flatten().tolist(), key=lambda query: -float(scores[query]))


def _grid_mask(pixel_mask: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """B x h x w: True where the feature grid (B x d x h x w) covers the image (the pixel mask, nearest)."""
    return nn.functional.interpolate(pixel_mask[None].float(), size=grid.shape[-2:])[0].bool()


def _weights_folder(folder: Path, name_or_path: str, revision: str | None, label: str) -> Path:
    """The folder with config.json and model.safetensors, once the config alone (in `folder`) chose a family: a Hub
    repo is fetched again with its weights; weights only pickled are refused."""
    if (folder / WEIGHTS_FILE).is_file():
        return folder
    if any((folder / pickled).is_file() for pickled in PICKLED_WEIGHTS):
        raise WeightsNotFound(
            f"{label!r} holds its weights only as a pickled pytorch_model.bin, which this project never loads "
            "(unpickling runs code): save the model with save_pretrained (safetensors) and try again."
        )
    return resolve_folder(name_or_path, revision, (CONFIG_FILE, WEIGHTS_FILE))


def _read_config_type(path: Path, label: str) -> str:
    """The `model_type` of a config.json, or WeightsNotFound saying why it cannot be read."""
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise WeightsNotFound(f"{label!r}: its config.json cannot be read ({error.__class__.__name__}).") from error
    if not model_type:
        raise UnsupportedModel(f"{label!r}: its config.json names no model_type, so no family can be chosen.")
    return model_type


def _load_quietly(family: Family, folder: Path, label: str, model_class: type[PreTrainedModel] | None = None) -> PreTrainedModel:
    """The family's model (or `model_class`) from a folder, transformers' load report kept from the user: a mismatch
    is one line."""
    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        model, loading = (model_class or family.model_class).from_pretrained(folder, use_safetensors=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        if "size" in str(error) and "mismatch" in str(error).lower():
            reason = "the sizes in config.json contradict the weights"
        raise WeightsNotFound(f"{label!r} is not a loadable {family.name} (config.json + model.safetensors): {reason}.") from error
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()
    problems = [f"missing {key}" for key in sorted(loading["missing_keys"])]
    problems += [f"mismatched {key[0] if isinstance(key, tuple) else key}" for key in loading["mismatched_keys"]]
    problems += [f"unexpected {key}" for key in sorted(loading["unexpected_keys"]) if not key.endswith(TRAINING_ONLY)]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise WeightsNotFound(f"{label!r}: the weights do not match the config: {shown}.")
    return model
