"""Image-quality metrics of a reconstruction against its input (torchmetrics), all in [0, 1] pixels."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def image_quality(reconstruction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """MSE, PSNR (dB) and SSIM of one 3 x h x w reconstruction against its 3 x h x w target."""
    prediction = reconstruction.detach().float().clamp(0, 1)[None]
    reference = target.detach().float().to(prediction.device)[None]
    kernel = min(11, _odd_at_most(min(prediction.shape[-2:])))
    return {
        "mse": float(torch.mean((prediction - reference) ** 2)),
        "psnr": float(peak_signal_noise_ratio(prediction, reference, data_range=1.0)),
        "ssim": float(structural_similarity_index_measure(prediction, reference, data_range=1.0, kernel_size=kernel)),
    }


def _odd_at_most(size: int) -> int:
    """The largest odd number not above `size` (SSIM's window must fit the image)."""
    return max(1, size if size % 2 else size - 1)
