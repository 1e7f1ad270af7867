"""Optimisation-based inversion (Mahendran and Vedaldi, CVPR 2015): no trained inverter needed.

Start from a flat grey image and follow (Adam, cosine-decayed step size) the gradient of
    ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2  +  tv_weight * TV(x)  +  range_weight * R(x)
with respect to the pixels x, where phi is the frozen detector up to the chosen stage and layer,
TV is the total variation (neighbouring pixels alike) and R penalises values outside [0, 1].
A fixed iteration budget keeps the cost predictable; progress is reported as it goes.

    python -m inversion.optimise --model shapes --data DIR --n 10   (optimised vs learned, per stage)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..core.detector import Detector
from ..core.stages import Representations, Source


@dataclass
class OptimiseConfig:
    """The optimisation's budget and priors."""

    steps: int = 200
    learning_rate: float = 0.03
    tv_weight: float = 10.0
    range_weight: float = 10.0
    seed: int = 0


@dataclass
class OptimisedInversion:
    """The reconstruction (3 x h x w in [0, 1], padding cropped) and the relative feature error per step."""

    image: torch.Tensor
    feature_errors: list[float] = field(default_factory=list)


def stage_features(representations: Representations, source: Source) -> torch.Tensor:
    """The tensor a source names, flattened into one vector per image (predictions: logits and boxes)."""
    tensor = representations.tensor(source)
    if source.stage == "prediction":
        logits, boxes = tensor
        tensor = torch.cat([logits, boxes], dim=-1)
    return tensor.flatten(1)


def total_variation(pixels: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between vertically and horizontally neighbouring pixels."""
    vertical = (pixels[..., 1:, :] - pixels[..., :-1, :]).pow(2).mean()
    horizontal = (pixels[..., :, 1:] - pixels[..., :, :-1]).pow(2).mean()
    return vertical + horizontal


def range_penalty(pixels: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of pixel values outside [0, 1]."""
    return (torch.relu(pixels - 1) + torch.relu(-pixels)).pow(2).mean()


def optimise_inversion(
    detector: Detector,
    representations: Representations,
    source: Source,
    index: int = 0,
    config: OptimiseConfig = OptimiseConfig(),
    progress: Callable[[float, str], None] | None = None,
) -> OptimisedInversion:
    """Reconstruct image `index` of a capture from one source's tensor by gradient descent on pixels."""
    target = stage_features(representations, source)[index : index + 1].detach()
    target_energy = target.pow(2).sum().clamp_min(1e-12)
    height, width = representations.content_sizes[index]
    canvas = representations.pixels[index : index + 1]
    pixel_mask = torch.zeros(1, *canvas.shape[-2:], dtype=torch.long, device=canvas.device)
    pixel_mask[:, :height, :width] = 1
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    noise = 0.02 * torch.randn(canvas.shape, generator=generator).to(canvas.device)
    pixels = (torch.full_like(canvas, 0.5) + noise).requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    errors = []
    for step in range(config.steps):
        shown = pixels * pixel_mask[:, None]
        features = stage_features(detector.forward_stages(shown, pixel_mask), source)
        feature_error = (features - target).pow(2).sum() / target_energy
        inside = shown[..., :height, :width]
        loss = feature_error + config.tv_weight * total_variation(inside) + config.range_weight * range_penalty(inside)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        errors.append(float(feature_error.detach()))
        if progress is not None:
            progress((step + 1) / config.steps, f"optimising pixels for {source.label}: step {step + 1}/{config.steps}")
    image = pixels.detach()[0, :, :height, :width].clamp(0, 1)
    return OptimisedInversion(image, errors)


def compare_with_learned(model, images: list, config: OptimiseConfig = OptimiseConfig()) -> dict:
    """Per stage: mean PSNR/SSIM of optimised and of learned reconstructions, and seconds per optimisation."""
    from ..core.metrics import image_quality
    from ..core.reconstruct import input_image, reconstruct
    from ..core.stages import STAGE_SOURCES

    rows: dict[str, dict[str, list[float]]] = {}
    for image in tqdm(images, desc="optimised vs learned"):
        reps = model.detector.capture([image])
        target = input_image(reps)
        learned = reconstruct(model.inverters, reps, STAGE_SOURCES) if model.inverters is not None else {}
        for source in STAGE_SOURCES:
            row = rows.setdefault(source.stage, {})
            start = time.perf_counter()
            optimised = optimise_inversion(model.detector, reps, source, config=config).image
            row.setdefault("seconds", []).append(time.perf_counter() - start)
            for name, value in image_quality(optimised, target).items():
                row.setdefault(f"optimised_{name}", []).append(value)
            if source in learned:
                for name, value in image_quality(learned[source][0], target).items():
                    row.setdefault(f"learned_{name}", []).append(value)
    return {stage: {key: sum(values) / len(values) for key, values in row.items()} for stage, row in rows.items()}
