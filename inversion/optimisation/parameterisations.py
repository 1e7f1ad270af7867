"""Image parameterisations: modules whose forward() gives the B x 3 x H x W image being optimised.

Each holds the free parameters the optimiser moves and maps them to pixels in [0, 1]
(`squash="sigmoid"`) or, for `PixelImage(squash="none")` (Mahendran and Vedaldi's raw pixels),
to unbounded values that a range penalty keeps near [0, 1].

- PixelImage: one free value per pixel.
- FourierImage: the image's 2-D spectrum, scaled by 1/f so that coarse structure moves first,
  in a decorrelated colour space (Olah et al. 2017; Mordvintsev et al. 2018, "Differentiable
  Image Parameterizations").
- PyramidImage: a Laplacian pyramid, the sum of upsampled levels at halving resolutions.
`make_image(config_name, ...)` builds one by name.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Square root of the colour covariance of natural images (ImageNet), as used by Lucid: a step
# along one parameter moves luminance or an opponent colour, not one RGB channel.
COLOUR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_CORRELATION_SQRT = COLOUR_CORRELATION_SQRT / COLOUR_CORRELATION_SQRT.norm(dim=0).max()
DATASET_MEAN = (0.485, 0.456, 0.406)  # ImageNet's mean colour: a prior, not the input's own colour


def image_noise(batch: int, shapes: list[tuple[int, ...]], scale: float, generator=None) -> list[torch.Tensor]:
    """Gaussian noise of each shape for `batch` images, drawn image by image: an image's start does
    not depend on how many others share its batch."""
    drawn = [[scale * torch.randn(shape, generator=generator) for shape in shapes] for _ in range(batch)]
    return [torch.stack(level) for level in zip(*drawn)]


def logit(colour: torch.Tensor) -> torch.Tensor:
    """The inverse of the sigmoid, for colours in (0, 1)."""
    colour = colour.clamp(1e-3, 1 - 1e-3)
    return torch.log(colour / (1 - colour))


class ImageParameterisation(nn.Module):
    """Base: a bias colour plus a parameterised residual, squashed into [0, 1]."""

    def __init__(self, batch: int, size: tuple[int, int], init_colour=DATASET_MEAN, squash: str = "sigmoid",
                 decorrelate: bool = False):
        super().__init__()
        if squash not in ("sigmoid", "none"):
            raise ValueError(f"squash must be 'sigmoid' or 'none', not {squash!r}")
        self.batch, self.size, self.squash, self.decorrelate = batch, tuple(size), squash, decorrelate
        colour = torch.as_tensor(init_colour, dtype=torch.float32).expand(batch, 3).clone()
        self.register_buffer("bias", (logit(colour) if squash == "sigmoid" else colour).view(batch, 3, 1, 1))
        self.register_buffer("colour_matrix", COLOUR_CORRELATION_SQRT.clone())

    def residual(self) -> torch.Tensor:
        """The parameterised part, B x 3 x H x W."""
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        residual = self.residual()
        if self.decorrelate:
            residual = torch.einsum("bchw,dc->bdhw", residual, self.colour_matrix)
        values = self.bias + residual
        return torch.sigmoid(values) if self.squash == "sigmoid" else values


class PixelImage(ImageParameterisation):
    """One free parameter per pixel and channel (small noise around the initial colour)."""

    def __init__(self, batch: int, size: tuple[int, int], noise: float = 0.02, generator=None, **options):
        super().__init__(batch, size, **options)
        self.pixels = nn.Parameter(image_noise(batch, [(3, *self.size)], noise, generator)[0])

    def residual(self) -> torch.Tensor:
        return self.pixels


class FourierImage(ImageParameterisation):
    """The real 2-D FFT of the image as parameters, each frequency scaled by 1 / max(f, 1/size)^decay.

    Under Adam (which normalises each parameter's step) the scaling is a per-frequency step size:
    low frequencies, i.e. layout and colour, move first and most.
    """

    def __init__(self, batch: int, size: tuple[int, int], decay_power: float = 1.0, noise: float = 0.01,
                 generator=None, decorrelate: bool = True, **options):
        super().__init__(batch, size, decorrelate=decorrelate, **options)
        height, width = self.size
        fy = torch.fft.fftfreq(height)[:, None]
        fx = torch.fft.rfftfreq(width)[None, :]
        frequency = torch.sqrt(fx * fx + fy * fy)
        scale = 1.0 / frequency.clamp_min(1.0 / max(height, width)) ** decay_power
        self.register_buffer("scale", scale * math.sqrt(height * width) / max(height, width))
        self.spectrum = nn.Parameter(image_noise(batch, [(3, height, width // 2 + 1, 2)], noise, generator)[0])

    def residual(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho")


class PyramidImage(ImageParameterisation):
    """A Laplacian pyramid: levels at 1, 1/2, 1/4... of the size, bilinearly upsampled and summed.

    Level k's values are multiplied by `level_gain ** k`, so coarse levels take bigger steps.
    """

    def __init__(self, batch: int, size: tuple[int, int], levels: int = 5, level_gain: float = 2.0,
                 noise: float = 0.01, generator=None, **options):
        super().__init__(batch, size, **options)
        height, width = self.size
        shapes = [(max(1, math.ceil(height / 2**k)), max(1, math.ceil(width / 2**k))) for k in range(levels)]
        self.levels = nn.ParameterList(
            nn.Parameter(level) for level in image_noise(batch, [(3, *shape) for shape in shapes], noise, generator)
        )
        self.gains = [level_gain**k for k in range(levels)]

    def residual(self) -> torch.Tensor:
        total = 0
        for level, gain in zip(self.levels, self.gains):
            if level.shape[-2:] != self.size:
                level = nn.functional.interpolate(level, size=self.size, mode="bilinear", align_corners=False)
            total = total + gain * level
        return total


PARAMETERISATIONS = {"pixel": PixelImage, "fourier": FourierImage, "pyramid": PyramidImage}


def make_image(name: str, batch: int, size: tuple[int, int], **options) -> ImageParameterisation:
    """A parameterisation by name ("pixel", "fourier", "pyramid") with its options."""
    if name not in PARAMETERISATIONS:
        raise ValueError(f"Unknown parameterisation {name!r}: choose one of {', '.join(PARAMETERISATIONS)}.")
    return PARAMETERISATIONS[name](batch, size, **options)
