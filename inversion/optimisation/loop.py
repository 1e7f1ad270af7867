"""Optimisation-based inversion of many sources at once: one batch, one forward+backward per step.

Every (source, image) pair of a request gets its own image in one batch and its own objective:
each image follows only its own gradient and, under L-BFGS, its own curvature and step length
(`lbfgs.py`), so the stages share forward passes but never a step. A fixed step budget
keeps the cost predictable (see `cost.py`); progress is reported every step. The defaults are the
choice measured in checkpoints/shapes/optimisation (a Laplacian pyramid, L-BFGS per image, 60 steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..core.detector import Detector
from ..core.stages import Representations, Source
from .forward import batch_features
from .lbfgs import BatchedLBFGS
from .objectives import neutral_penalty, range_penalty, relative_error, source_features, total_variation
from .parameterisations import DATASET_MEAN, make_image
from .transforms import make_transform


@dataclass
class OptimisationConfig:
    """The budget, parameterisation, optimiser and priors of one optimisation."""

    steps: int = 60  # forward+backward passes of the whole batch (L-BFGS: evaluations, line search included)
    parameterisation: str = "pyramid"  # "pixel", "fourier" or "pyramid" (parameterisations.py)
    image_options: dict = field(default_factory=lambda: {"level_gain": 1.0})  # e.g. {"levels": 5}
    squash: str = "sigmoid"  # "sigmoid" keeps pixels in [0, 1]; "none" leaves it to the range penalty
    init_colour: tuple[float, float, float] = DATASET_MEAN
    optimiser: str = "lbfgs"  # "adam" or "lbfgs"
    learning_rate: float = 1.0
    schedule: str = "cosine"  # "cosine" (decays to 0) or "constant"
    tv_weight: float = 10.0
    range_weight: float = 0.0
    neutral_weight: float = 1.0  # pull toward init_colour
    jitter: int = 0  # random shift in pixels per step (Adam only: L-BFGS needs a deterministic objective)
    history_size: int = 20  # L-BFGS: curvature pairs kept
    seed: int = 0


@dataclass
class OptimisedInversions:
    """Per source, one 3 x h x w image in [0, 1] per image of the capture (padding cropped), and
    per source a steps x B tensor of relative feature errors (as seen by each step's forward)."""

    images: dict[Source, list[torch.Tensor]]
    feature_errors: dict[Source, torch.Tensor]


def optimise_inversions(
    detector: Detector,
    representations: Representations,
    sources: list[Source],
    config: OptimisationConfig = OptimisationConfig(),
    progress: Callable[[float, str], None] | None = None,
) -> OptimisedInversions:
    """Reconstruct every image of a capture from every source by gradient descent, all in one batch."""
    items = [(source, index) for source in sources for index in range(representations.batch_size)]
    item_sources = [source for source, _ in items]
    targets = [source_features(representations, source)[index].detach() for source, index in items]
    canvas_size = tuple(representations.pixels.shape[-2:])
    device = representations.pixels.device
    masks = _content_masks(representations, [index for _, index in items]).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    image = make_image(config.parameterisation, len(items), canvas_size, generator=generator, squash=config.squash,
                       init_colour=config.init_colour, **config.image_options).to(device)
    transform = make_transform(config.jitter, generator)
    neutral = torch.tensor(config.init_colour, dtype=torch.float32, device=device)
    errors: list[torch.Tensor] = []

    def objective() -> torch.Tensor:
        pixels = image()
        shown = transform(pixels) * masks
        features = batch_features(detector, shown, masks[:, 0].long(), item_sources)
        feature_error = torch.stack([relative_error(f, t) for f, t in zip(features, targets)])
        loss = feature_error
        if config.tv_weight:
            loss = loss + config.tv_weight * total_variation(pixels, masks)
        if config.range_weight:
            loss = loss + config.range_weight * range_penalty(pixels, masks)
        if config.neutral_weight:
            loss = loss + config.neutral_weight * neutral_penalty(pixels, neutral, masks)
        errors.append(feature_error.detach().cpu())
        if progress is not None:
            progress(min(1.0, len(errors) / config.steps), f"optimising {len(items)} images: step {len(errors)}/{config.steps}")
        return loss

    _run(config, list(image.parameters()), objective)
    final = image().detach().clamp(0, 1)
    history = torch.stack(errors) if errors else torch.zeros(0, len(items))
    batch = representations.batch_size
    images, feature_errors = {}, {}
    for position, source in enumerate(sources):
        rows = range(position * batch, (position + 1) * batch)
        images[source] = [final[row, :, :h, :w] for row, (h, w) in zip(rows, representations.content_sizes)]
        feature_errors[source] = history[:, rows.start : rows.stop]
    return OptimisedInversions(images, feature_errors)


def _run(config: OptimisationConfig, parameters: list[torch.nn.Parameter], objective: Callable[[], torch.Tensor]):
    """Spend exactly `config.steps` evaluations of the objective (one loss per image) with the configured optimiser."""
    if config.optimiser not in ("adam", "lbfgs"):
        raise ValueError(f"Unknown optimiser {config.optimiser!r}: choose 'adam' or 'lbfgs'.")
    if config.optimiser == "lbfgs":
        optimizer = BatchedLBFGS(parameters, history_size=config.history_size, learning_rate=config.learning_rate)
    else:
        optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    for step in range(config.steps):
        for parameter in parameters:
            parameter.grad = None
        losses = objective()
        losses.sum().backward()
        if config.optimiser == "lbfgs":
            optimizer.step(losses)
        else:
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * _schedule(config.schedule, step, config.steps)
            optimizer.step()
    if config.optimiser == "lbfgs":
        optimizer.finish()


def _schedule(name: str, step: int, steps: int) -> float:
    """The learning-rate factor at `step` of `steps`."""
    if name == "constant":
        return 1.0
    if name == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / steps))
    raise ValueError(f"Unknown schedule {name!r}: choose 'cosine' or 'constant'.")


def _content_masks(representations: Representations, indices: list[int]) -> torch.Tensor:
    """N x 1 x H x W: 1 where image `indices[n]` lies inside the canvas, 0 on padding."""
    height, width = representations.pixels.shape[-2:]
    masks = torch.zeros(len(indices), 1, height, width)
    for row, index in enumerate(indices):
        content_height, content_width = representations.content_sizes[index]
        masks[row, :, :content_height, :content_width] = 1
    return masks
