"""Live training and the sweep's results as data, for an app or a notebook (no Gradio here).

    result = train_live("fc-m", latent=8, lam=0.5, progress=lambda f, text: ...)   # one small model, seconds
    result.grid()                                   # PIL image: test digits over their reconstructions
    results = load_sweep("checkpoints/tradeoff/results.json")
    sweep_frame(results, "fc-m")                    # rows for gr.LinePlot / gr.ScatterPlot
    figure(results, "frontier", highlight=result.point())   # or a matplotlib figure
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import Dataset, load_digits
from .sweep import figure  # noqa: F401  (re-exported for the app)
from .train import Progress, RunConfig, threads, train_run

LIVE_SECONDS = 17.0  # training time limit of a live run; evaluation and set-up add about a second

_DIGITS: Dataset | None = None


def digits() -> Dataset:
    """The digits data set, loaded once per process."""
    global _DIGITS
    if _DIGITS is None:
        _DIGITS = load_digits()
    return _DIGITS


@dataclass
class LiveResult:
    arch: str
    latent: int
    lam: float
    seed: int
    accuracy: float  # on the whole test split, in [0, 1]
    mse: float  # reconstruction MSE per pixel on the test split, pixels in [0, 1]
    seconds: float
    steps: int  # optimizer steps taken
    planned_steps: int  # the sweep's steps for this architecture (more than `steps` if time ran out)
    images: np.ndarray  # n x 8 x 8 test digits, float in [0, 1] (one per class)
    reconstructions: np.ndarray  # n x 8 x 8, float in [0, 1]
    labels: np.ndarray  # n true classes
    predictions: np.ndarray  # n predicted classes

    def grid(self, scale: int = 12, gap: int = 2) -> Image.Image:
        """Test digits (top row) over their reconstructions (bottom row), grey scale, upscaled."""
        count, height, width = self.images.shape
        canvas = np.full((2 * height + gap, count * (width + gap) - gap), 0.5, dtype=np.float32)
        for index in range(count):
            left = index * (width + gap)
            canvas[:height, left:left + width] = self.images[index]
            canvas[height + gap:, left:left + width] = self.reconstructions[index]
        image = Image.fromarray((canvas * 255).round().astype(np.uint8))  # 2-D uint8: grey scale
        return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)

    def point(self) -> dict:
        """The run as a point for `figure(..., highlight=)` and the plot rows."""
        return {"arch": self.arch, "latent": self.latent, "lam": self.lam, "accuracy": self.accuracy, "mse": self.mse}


def train_live(
    arch: str = "fc-m", latent: int = 8, lam: float = 0.5, seed: int = 0, progress: Progress | None = None,
    steps: int | None = None, max_seconds: float | None = LIVE_SECONDS,
) -> LiveResult:
    """Train one model on digits (the sweep's settings, so it lands on the shipped curves) and show
    one test digit per class with its reconstruction. `progress(fraction, description)` is called
    about 50 times (a gr.Progress works as is). Training stops early after `max_seconds` if the
    machine is too busy to finish (`result.steps < result.planned_steps` then). Uses one torch thread."""
    start = time.perf_counter()
    dataset = digits()
    config = RunConfig(arch, int(latent), float(lam), int(seed), steps)
    with threads(1):
        model, result = train_run(config, dataset, progress, max_seconds)
        index = np.array([int(np.flatnonzero(dataset.test.labels.numpy() == label)[0]) for label in range(dataset.classes)])
        with torch.no_grad():
            model.eval()
            images = dataset.test.images[index]
            _, reconstructions, logits = model(images)
    return LiveResult(
        arch, int(latent), float(lam), int(seed), result.accuracy, result.mse, round(time.perf_counter() - start, 2),
        result.steps, config.steps, images[:, 0].numpy(), reconstructions[:, 0].numpy(),
        dataset.test.labels[index].numpy(), logits.argmax(1).numpy(),
    )


def load_sweep(path: str | Path) -> dict:
    """A sweep's results.json (the repository ships one: checkpoints/tradeoff/results.json)."""
    return json.loads(Path(path).read_text())


def sweep_rows(results: dict, arch: str | None = None) -> list[dict]:
    """One row per (arch, latent, lambda), means over seeds: arch, latent (a string, for colour
    grouping), lam, accuracy, accuracy_std, mse, mse_std, seeds."""
    return [dict(row, latent=str(row["latent"])) for row in results["summary"] if arch is None or row["arch"] == arch]


def sweep_frame(results: dict, arch: str | None = None):
    """`sweep_rows` as a pandas DataFrame (what gr.LinePlot and gr.ScatterPlot take)."""
    import pandas

    return pandas.DataFrame(sweep_rows(results, arch))


def architectures(results: dict) -> list[str]:
    return list(results["config"]["archs"])


def latents(results: dict) -> list[int]:
    return list(results["config"]["latents"])
