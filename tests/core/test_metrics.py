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


def test_a_batch_scores_each_image_alone_and_gives_the_means():
    generator = torch.Generator().manual_seed(1)
    targets = torch.rand(3, 3, 24, 32, generator=generator)
    noisy = (targets + torch.tensor([0.02, 0.1, 0.3])[:, None, None, None] * torch.randn(3, 3, 24, 32, generator=generator)).clamp(0, 1)
    alone = [image_quality(noisy[index], targets[index]) for index in range(3)]
    batch = image_quality(noisy, targets)
    for metric in ("mse", "psnr", "ssim"):
        assert batch[metric] == pytest.approx(sum(one[metric] for one in alone) / 3, rel=1e-6)
    assert image_quality(noisy[:1], targets[:1]) == pytest.approx(alone[0])  # a 1 x 3 x H x W batch


def test_pil_images_are_scored_in_zero_to_one_pixels():
    from inversion.core.images import to_pil

    target = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(2))
    assert image_quality(to_pil(target), target)["mse"] < (0.5 / 255) ** 2 * 1.01  # only rounding to 8 bits


def test_mismatched_or_malformed_inputs_are_named():
    with pytest.raises(ValueError, match=r"one shape; got \(1, 3, 8, 8\) and \(1, 3, 8, 9\)"):
        image_quality(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match=r"got \(8, 8\)"):
        image_quality(torch.zeros(8, 8), torch.zeros(8, 8))
