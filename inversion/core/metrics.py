"""Image-quality metrics of a reconstruction against its input (torchmetrics), all in [0, 1] pixels."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

SSIM_SIGMA = 1.5  # the standard Gaussian window of SSIM (Wang et al., 2004): 11 x 11 pixels


def image_quality(reconstruction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """MSE, PSNR (dB) and SSIM of one 3 x h x w reconstruction against its 3 x h x w target.

    Images narrower than SSIM's 11-pixel window (a very wide or tall input fitted into the
    canvas can be a few pixels high) get a narrower Gaussian window that fits.
    """
    prediction = reconstruction.detach().float().clamp(0, 1)[None]
    reference = target.detach().float().to(prediction.device)[None]
    return {
        "mse": float(torch.mean((prediction - reference) ** 2)),
        "psnr": float(peak_signal_noise_ratio(prediction, reference, data_range=1.0)),
        "ssim": float(structural_similarity_index_measure(
            prediction, reference, data_range=1.0, sigma=ssim_sigma(min(prediction.shape[-2:]))
        )),
    }


def ssim_sigma(side: int) -> float:
    """The Gaussian window's sigma for an image whose shorter side is `side` pixels.

    torchmetrics sizes the window from sigma alone (2 * int(3.5 sigma + 0.5) + 1 pixels) and
    ignores `kernel_size`, so the window is made to fit by choosing sigma.
    """
    largest_odd = side if side % 2 else side - 1
    if largest_odd >= 11:
        return SSIM_SIGMA
    return max(0.1, (largest_odd - 1) / 7)
