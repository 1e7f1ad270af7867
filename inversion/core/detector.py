"""The frozen DETR whose representations we invert: preprocessing, one capturing forward, detections.

Any `DetrForObjectDetection` works (the Hub's facebook/detr-resnet-50, a local folder, a tiny
random config). Images are fitted inside a fixed working canvas keeping their aspect ratio and
padded bottom/right; DETR's pixel mask tells the model (and the inverters) where the padding is.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn
from transformers import DetrForObjectDetection, DetrImageProcessorPil

from .hub import WeightsNotFound, resolve_folder
from .stages import Detection, Representations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_WORKING_SIZE = (480, 640)  # the paper's canvas for DETR-R50 (a 15 x 20 grid at stride 32)
DETECTOR_FILES = ("config.json", "model.safetensors")  # all a detector needs: never pickles, never ImageNet weights
TRAINING_ONLY = "num_batches_tracked"  # BatchNorm's step counter: saved by some checkpoints, never used to infer
DEFAULT_THRESHOLD = 0.7  # the score above which a query counts as a detection (DETR's own demos)


@dataclass
class Canvas:
    """A batch of images fitted into the working size: pixels in [0, 1] and DETR's pixel mask."""

    pixels: torch.Tensor  # B x 3 x H x W, zero on padding
    pixel_mask: torch.Tensor  # B x H x W, 1 on image, 0 on padding
    content_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]


def fit_to_canvas(images: list[Image.Image], working_size: tuple[int, int]) -> Canvas:
    """Resize each RGB image to fit inside `working_size` (height, width), keep its aspect ratio, pad."""
    canvas_height, canvas_width = working_size
    pixels = torch.zeros(len(images), 3, canvas_height, canvas_width)
    pixel_mask = torch.zeros(len(images), canvas_height, canvas_width, dtype=torch.long)
    content_sizes, original_sizes = [], []
    for index, image in enumerate(images):
        scale = min(canvas_height / image.height, canvas_width / image.width)
        height = max(1, min(canvas_height, round(image.height * scale)))
        width = max(1, min(canvas_width, round(image.width * scale)))
        resized = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        array = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
        pixels[index, :, :height, :width] = array.view(height, width, 3).permute(2, 0, 1) / 255.0
        pixel_mask[index, :height, :width] = 1
        content_sizes.append((height, width))
        original_sizes.append((image.height, image.width))
    return Canvas(pixels, pixel_mask, content_sizes, original_sizes)


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] RGB pixels (B x 3 x H x W) to DETR's ImageNet-normalised input."""
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels - mean) / std


class Detector(nn.Module):
    """A frozen DETR in eval mode that captures every stage of its forward pass."""

    def __init__(
        self,
        model: DetrForObjectDetection,
        working_size: tuple[int, int] = DEFAULT_WORKING_SIZE,
        name: str = "detr",
        revision: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.working_size = tuple(working_size)
        self.name = name
        self.revision = revision
        self.threshold = threshold
        self.postprocessor = DetrImageProcessorPil()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        revision: str | None = None,
        working_size: tuple[int, int] = DEFAULT_WORKING_SIZE,
        threshold: float = DEFAULT_THRESHOLD,
        name: str | None = None,
    ) -> Detector:
        """Load a DETR from a local folder or a Hub repo id at a pinned `revision` (config.json and
        model.safetensors only; a timm backbone's own ImageNet weights are never fetched: the
        checkpoint carries them). `name` is the identity inverter checkpoints record (default:
        `name_or_path`)."""
        folder = resolve_folder(name_or_path, revision, DETECTOR_FILES)
        try:
            model, loading = DetrForObjectDetection.from_pretrained(folder, output_loading_info=True)
        except (OSError, ValueError) as error:
            raise WeightsNotFound(
                f"{str(name_or_path)!r} is not a loadable DETR (config.json + model.safetensors): {error}"
            ) from error
        problems = [f"missing {key}" for key in sorted(loading["missing_keys"])]
        problems += [f"mismatched {key[0] if isinstance(key, tuple) else key}" for key in loading["mismatched_keys"]]
        problems += [f"unexpected {key}" for key in sorted(loading["unexpected_keys"]) if not key.endswith(TRAINING_ONLY)]
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise WeightsNotFound(f"{str(name_or_path)!r}: the weights do not match the config: {shown}.")
        return cls(model, working_size, name=name or str(name_or_path), revision=revision, threshold=threshold)

    @property
    def config(self):
        return self.model.config

    @functools.cached_property
    def stride(self) -> int:
        """Image pixels per feature-grid cell, measured by running the backbone on a blank image."""
        probe = torch.zeros(1, 3, 256, 256, device=self.device)
        with torch.no_grad():
            feature_map, _ = self.model.model.backbone(probe, torch.ones(1, 256, 256, device=self.device))[-1]
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

    @torch.no_grad()
    def capture(self, images: list[Image.Image] | Canvas) -> Representations:
        """Run DETR once on a batch and return every stage, every layer and the detections."""
        canvas = images if isinstance(images, Canvas) else self.preprocess(images)
        representations = self.forward_stages(canvas.pixels.to(self.device), canvas.pixel_mask.to(self.device))
        representations.content_sizes = canvas.content_sizes
        representations.original_sizes = canvas.original_sizes
        representations.detections = self.detections(representations.logits, representations.boxes, canvas.original_sizes)
        return representations

    def forward_stages(self, pixels: torch.Tensor, pixel_mask: torch.Tensor) -> Representations:
        """The differentiable forward behind `capture`: [0, 1] canvas pixels in, every stage out.

        Gradients flow to `pixels` (the detector's own weights stay frozen); the sizes default to
        the whole canvas and no detections are computed.
        """
        detr = self.model.model
        with _record_outputs(detr.input_projection, detr.encoder.layers, detr.decoder.layers) as recorded:
            output = self.model(pixel_values=normalise(pixels), pixel_mask=pixel_mask)
        backbone = recorded["input_projection"][0]
        grid_mask = nn.functional.interpolate(pixel_mask[None].float(), size=backbone.shape[-2:])[0].bool()
        decoder_layers = [detr.decoder.layernorm(hidden) for hidden in recorded["decoder"][:-1]]
        canvas_size = tuple(pixels.shape[-2:])
        return Representations(
            backbone=backbone,
            encoder=[backbone.flatten(2).transpose(1, 2), *recorded["encoder"]],
            decoder=[torch.zeros_like(output.last_hidden_state), *decoder_layers, output.last_hidden_state],
            logits=output.logits,
            boxes=output.pred_boxes,
            grid_mask=grid_mask,
            pixels=pixels,
            content_sizes=[canvas_size] * len(pixels),
            original_sizes=[canvas_size] * len(pixels),
        )

    def backbone_map(self, pixels: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        """The projected backbone map (B x d x h x w) of [0, 1] canvas pixels, without the transformer
        (differentiable with respect to `pixels`)."""
        detr = self.model.model
        feature_map, _ = detr.backbone(normalise(pixels), pixel_mask)[-1]
        return detr.input_projection(feature_map)

    def heads(self, decoder_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply DETR's class and box heads to a B x Q x d decoder output."""
        logits = self.model.class_labels_classifier(decoder_output)
        boxes = self.model.bbox_predictor(decoder_output).sigmoid()
        return logits, boxes

    def detections(
        self,
        logits: torch.Tensor,
        boxes: torch.Tensor,
        original_sizes: list[tuple[int, int]],
        threshold: float | None = None,
    ) -> list[list[Detection]]:
        """Post-process logits and boxes into labelled detections in original-image pixels."""
        outputs = _HeadOutputs(logits=logits.float().cpu(), pred_boxes=boxes.float().cpu())
        threshold = self.threshold if threshold is None else threshold
        results = self.postprocessor.post_process_object_detection(outputs, threshold, list(original_sizes))
        id2label = self.config.id2label
        return [
            [
                Detection(id2label.get(int(label), str(int(label))), int(label), float(score), tuple(box.tolist()))
                for score, label, box in sorted(
                    zip(result["scores"], result["labels"], result["boxes"]), key=lambda item: -float(item[0])
                )
            ]
            for result in results
        ]


@dataclass
class _HeadOutputs:
    """The two fields of a DETR output that the post-processor reads."""

    logits: torch.Tensor
    pred_boxes: torch.Tensor


@contextmanager
def _record_outputs(input_projection: nn.Module, encoder_layers: nn.ModuleList, decoder_layers: nn.ModuleList):
    """Record the outputs of the input projection and of every encoder and decoder layer, in this thread's
    forward only (the hooks see every thread's forward through the model: the app serves requests in threads)."""
    recorded: dict[str, list[torch.Tensor]] = {"input_projection": [], "encoder": [], "decoder": []}
    owner = threading.get_ident()

    def keep(key):
        def hook(module, inputs, output):
            if threading.get_ident() == owner:
                recorded[key].append(output[0] if isinstance(output, tuple) else output)

        return hook

    handles = [input_projection.register_forward_hook(keep("input_projection"))]
    handles += [layer.register_forward_hook(keep("encoder")) for layer in encoder_layers]
    handles += [layer.register_forward_hook(keep("decoder")) for layer in decoder_layers]
    try:
        yield recorded
    finally:
        for handle in handles:
            handle.remove()
