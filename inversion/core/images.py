"""Turning whatever a user gives us into a plain 8-bit RGB image, or a clear error.

Users upload photos from phones (EXIF rotation), PNGs with transparency, palette GIFs, 16-bit
scans and CMYK JPEGs. Everything downstream expects an upright RGB PIL image of sane size.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserFacingError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(pixels: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN,
              std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """Map [0, 1] RGB pixels (B x 3 x H x W) to a detector's input: minus `mean`, over `std` (ImageNet's by default)."""
    mean = torch.tensor(mean, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.tensor(std, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels - mean) / std


class ImageInputError(UserFacingError):
    """An input that is not a usable image; the message says what is wrong and what to do."""


def to_rgb(image: Image.Image, max_megapixels: float | None = None) -> Image.Image:
    """Return `image` upright (EXIF orientation applied) as 8-bit RGB.

    Transparent images are composited on white; 16-bit and float images are rescaled to their
    full range; palette, grey, CMYK and other modes are converted.
    """
    check_size(image.width, image.height, max_megapixels)
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def check_size(width: int, height: int, max_megapixels: float | None = None) -> None:
    """Refuse empty images and images over `max_megapixels` (None: no limit), naming the size found."""
    if width < 1 or height < 1:
        raise ImageInputError(f"The image is empty ({width}x{height} pixels).")
    megapixels = width * height / 1e6
    if max_megapixels is not None and megapixels > max_megapixels:
        raise ImageInputError(
            f"The image is {width}x{height} pixels ({megapixels:.1f} megapixels), over the "
            f"{max_megapixels:g} megapixel limit: scale it down and try again."
        )


def load_image(
    source: str | os.PathLike | bytes | Image.Image | np.ndarray, max_megapixels: float | None = None
) -> Image.Image:
    """Open a path, raw bytes, a numpy array or a PIL image as upright 8-bit RGB.

    `max_megapixels` refuses larger images (the app's limit is in space_config.yaml); Pillow's
    decompression-bomb guard applies always.
    Raises ImageInputError with a readable message for files that are not images, truncated
    or corrupt files, and images that are too large.
    """
    if isinstance(source, Image.Image):
        return to_rgb(source, max_megapixels)
    if isinstance(source, np.ndarray):
        return to_rgb(_from_array(source), max_megapixels)
    name = "the upload" if isinstance(source, bytes) else Path(source).name
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as opened:
                check_size(opened.width, opened.height, max_megapixels)
                opened.load()
                return to_rgb(opened, max_megapixels)
    except FileNotFoundError as error:
        raise ImageInputError(f"No such file: {source}.") from error
    except UnidentifiedImageError as error:
        raise ImageInputError(
            f"{name} is not an image we can read: upload a PNG, JPEG, WebP, GIF, BMP or TIFF file."
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageInputError(
            f"{name} is too large to decode safely: scale it down and try again."
        ) from error
    except ImageInputError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(f"{name} is truncated or corrupt ({error}): save it again and retry.") from error


def _from_array(array: np.ndarray) -> Image.Image:
    """A PIL image from an H x W, H x W x 3 or H x W x 4 array (uint8, uint16 or float in [0, 1])."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageInputError(f"An image array must be H x W or H x W x 3/4; got shape {array.shape}.")
    check_size(array.shape[1], array.shape[0])  # (the caller's limit is checked by to_rgb)
    if array.dtype == np.uint16:
        array = (array / 257.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def to_pil(image: torch.Tensor, size: tuple[int, int] | None = None) -> Image.Image:
    """A 3 x h x w tensor in [0, 1] as a PIL image, optionally resized to (height, width)."""
    array = (image.clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)
    picture = Image.fromarray(array)
    return picture if size is None else picture.resize((size[1], size[0]), Image.Resampling.BICUBIC)
