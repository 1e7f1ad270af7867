"""Image quality works for every shape an input can take, including slivers of one pixel."""

import pytest
import torch

from inversion.core.metrics import image_quality, ssim_sigma


@pytest.mark.parametrize("height, width", [(1, 10000), (10000, 1), (3, 128), (128, 5), (10, 10), (11, 40), (128, 128)])
def test_quality_of_any_shape(height, width):
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(3, height, width, generator=generator)
    noisy = (target + 0.1 * torch.randn(3, height, width, generator=generator)).clamp(0, 1)
    perfect, degraded = image_quality(target, target), image_quality(noisy, target)
    assert perfect["ssim"] == pytest.approx(1.0, abs=1e-4) and perfect["mse"] == 0.0
    assert degraded["ssim"] < 0.99 and 15 < degraded["psnr"] < 25


def test_the_window_fits_the_shorter_side():
    for side in range(1, 30):
        window = 2 * int(3.5 * ssim_sigma(side) + 0.5) + 1
        assert window <= side
    assert ssim_sigma(128) == 1.5
