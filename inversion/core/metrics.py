"""Image-quality metrics of a reconstruction against its input (torchmetrics), all in [0, 1] pixels."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

ImageLike = torch.Tensor | Image.Image
SSIM_SIGMA = 1.5  # the standard Gaussian window of SSIM (Wang et al., 2004): 11 x 11 pixels


def image_quality(reconstruction: ImageLike, target: ImageLike) -> dict[str, float]:
    """MSE, PSNR (dB) and SSIM of a reconstruction against its target, in [0, 1] pixels.

    Each is a 3 x h x w tensor, a B x 3 x h x w batch (then the metrics are the means over the
    batch, each image scored alone) or a PIL image. Images narrower than SSIM's 11-pixel window (a
    very wide or tall input fitted into the canvas can be a few pixels high) get a narrower
    Gaussian window that fits.
    """
    prediction, reference = as_batch(reconstruction), as_batch(target)
    if prediction.shape != reference.shape:
        raise ValueError(f"image_quality compares images of one shape; got {tuple(prediction.shape)} and "
                         f"{tuple(reference.shape)} (B x 3 x h x w).")
    prediction = prediction.clamp(0, 1)
    reference = reference.to(prediction.device)
    sigma = ssim_sigma(min(prediction.shape[-2:]))
    scores = [
        {
            "mse": float(torch.mean((one - other) ** 2)),
            "psnr": float(peak_signal_noise_ratio(one, other, data_range=1.0)),
            "ssim": float(structural_similarity_index_measure(one, other, data_range=1.0, sigma=sigma)),
        }
        for one, other in zip(prediction.split(1), reference.split(1))
    ]
    return {name: sum(score[name] for score in scores) / len(scores) for name in scores[0]}


def as_batch(image: ImageLike) -> torch.Tensor:
    """A float B x 3 x h x w tensor of a 3 x h x w tensor, a batch, or a PIL image (scaled to [0, 1])."""
    if isinstance(image, Image.Image):
        image = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or image.shape[-3] != 3 or 0 in image.shape:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image_quality takes 3 x h x w images, B x 3 x h x w batches or PIL images; got {shape}.")
    image = image.detach().float()
    return image[None] if image.ndim == 3 else image


def ssim_sigma(side: int) -> float:
    """The Gaussian window's sigma for an image whose shorter side is `side` pixels.

    torchmetrics sizes the window from sigma alone (2 * int(3.5 sigma + 0.5) + 1 pixels) and
    ignores `kernel_size`, so the window is made to fit by choosing sigma.
    """
    largest_odd = side if side % 2 else side - 1
    if largest_odd >= 11:
        return SSIM_SIGMA
    return max(0.1, (largest_odd - 1) / 7)


def baselines(view: torch.Tensor, stride: int) -> dict[str, torch.Tensor]:
    """What an image needs no features for: its mean colour, and itself averaged over the detector's
    feature (or patch) grid (one colour per cell) and scaled back up: the floor under every stage's quality."""
    height, width = view.shape[-2:]
    cells = (max(1, round(height / stride)), max(1, round(width / stride)))
    grid = nn.functional.adaptive_avg_pool2d(view[None], cells)
    return {
        "mean_colour": view.mean((-2, -1), keepdim=True).expand_as(view),
        "grid_average": nn.functional.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[0],
    }
