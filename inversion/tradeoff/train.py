"""The study's loss with its gradient routing, and one training run.

    loss = lambda * MSE(reconstruction, image) + (1 - lambda) * CE(logits, label)

Routing (the paper's): the decoder learns only from the MSE, the classifier only from the CE,
the encoder from the weighted sum. `route(z, w)` is the identity going forward and multiplies the
gradient by w going back, so one backward of `mse + ce` with
    reconstruction = decoder(route(z, lambda)),   logits = classifier(route(z, 1 - lambda))
gives: decoder <- d MSE (its own loss, never the CE: no path from the CE reaches it),
classifier <- d CE, encoder <- lambda * d MSE / dz + (1 - lambda) * d CE / dz.
So at lambda = 0 the encoder is a pure classifier and the decoder learns to invert it (a detector
and its inverse); at lambda = 1 it is a pure autoencoder and the head is a probe of its latent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .data import Dataset, Split
from .models import ModelConfig, TradeoffModel

Progress = Callable[[float, str], None]


class _GradientScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return z.view_as(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.weight, None


def route(z: torch.Tensor, weight: float) -> torch.Tensor:
    """z unchanged; the gradient flowing back through it is multiplied by `weight`."""
    return _GradientScale.apply(z, float(weight))


def routed_losses(model: TradeoffModel, images: torch.Tensor, labels: torch.Tensor, lam: float) -> dict[str, torch.Tensor]:
    """'mse' and 'ce' (each reaching the encoder scaled by its weight), 'routed' = mse + ce to call
    backward on, and 'loss' = lambda * mse + (1 - lambda) * ce, the reported value (no graph)."""
    z = model.encoder(images)
    mse = nn.functional.mse_loss(model.decoder(route(z, lam)), images)
    ce = nn.functional.cross_entropy(model.classifier(route(z, 1.0 - lam)), labels)
    return {"mse": mse, "ce": ce, "routed": mse + ce, "loss": (lam * mse + (1.0 - lam) * ce).detach()}


# Optimizer steps per architecture at batch 64 (1,000 steps = 45 epochs of digits); fewer for the
# costlier ones so that a live run of any of them stays well within 20 s on a busy 2-core CPU.
DEFAULT_STEPS = {"fc-s": 1000, "fc-m": 1000, "fc-l": 1000, "cnn": 800, "vit": 500, "vit-cls": 500}


@dataclass
class RunConfig:
    arch: str = "fc-m"
    latent: int = 8
    lam: float = 0.5
    seed: int = 0
    steps: int | None = None  # None: DEFAULT_STEPS[arch]
    batch_size: int = 64
    lr: float = 2e-3

    def __post_init__(self):
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lambda must lie in [0, 1], got {self.lam}.")
        if self.steps is None:
            self.steps = DEFAULT_STEPS.get(self.arch, 1000)


@dataclass
class RunResult:
    """One configuration's test metrics (MSE per pixel in [0, 1] space) and cost."""

    arch: str
    latent: int
    lam: float
    seed: int
    accuracy: float
    mse: float
    train_accuracy: float
    train_mse: float
    seconds: float
    parameters: int
    steps: int | None = None  # optimizer steps taken (fewer than configured only if max_seconds ran out)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate(model: TradeoffModel, split: Split, batch_size: int = 1024) -> tuple[float, float]:
    """(accuracy, reconstruction MSE) of a split."""
    model.eval()
    correct, squared = 0, 0.0
    for start in range(0, len(split), batch_size):
        images, labels = split.images[start:start + batch_size], split.labels[start:start + batch_size]
        _, reconstruction, logits = model(images)
        correct += int((logits.argmax(1) == labels).sum())
        squared += float(((reconstruction - images) ** 2).sum())
    model.train()
    return correct / len(split), squared / split.images.numel()


def batches(split: Split, batch_size: int, steps: int, generator: torch.Generator):
    """`steps` mini-batches, drawn epoch by epoch from fresh permutations."""
    step = 0
    while True:
        order = torch.randperm(len(split), generator=generator)
        for start in range(0, len(split) - batch_size + 1, batch_size):
            if step == steps:
                return
            index = order[start:start + batch_size]
            yield split.images[index], split.labels[index]
            step += 1


def train_run(
    config: RunConfig, dataset: Dataset, progress: Progress | None = None, max_seconds: float | None = None
) -> tuple[TradeoffModel, RunResult]:
    """Train one model from scratch (Adam, cosine-decayed learning rate) and measure it on the test
    split. With `max_seconds`, training stops early once that much time has passed (for the app on
    a busy machine); the result records the steps actually taken."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = TradeoffModel(ModelConfig(config.arch, config.latent, dataset.image_shape, dataset.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    every, taken = max(1, config.steps // 50), 0
    for step, (images, labels) in enumerate(batches(dataset.train, config.batch_size, config.steps, generator)):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
        losses = routed_losses(model, images, labels, config.lam)
        optimizer.zero_grad(set_to_none=True)
        losses["routed"].backward()
        optimizer.step()
        schedule.step()
        taken = step + 1
        if progress is not None and step % every == 0:
            progress(step / config.steps, f"step {step}/{config.steps}, loss {float(losses['loss']):.4f}")
    accuracy, mse = evaluate(model, dataset.test)
    train_accuracy, train_mse = evaluate(model, dataset.train)
    if progress is not None:
        early = f" (time limit: stopped after {taken} of {config.steps} steps)" if taken < config.steps else ""
        progress(1.0, f"done: accuracy {accuracy:.3f}, MSE {mse:.4f}{early}")
    return model, RunResult(
        config.arch, config.latent, config.lam, config.seed, round(accuracy, 5), round(mse, 6),
        round(train_accuracy, 5), round(train_mse, 6), round(time.perf_counter() - start, 3),
        sum(model.parameter_counts().values()), taken,
    )


@contextlib.contextmanager
def threads(count: int = 1):
    """Run torch on `count` threads inside the block (these models are tiny; one is fastest)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
