"""Colour perturbations inside a mask, the masks to apply them in, and hue measurement.

Hues are in OpenCV units (0..179, i.e. degrees / 2), as in the paper: setting the hue keeps each
pixel's saturation and value; rotating adds to it; grey removes the colour.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# The paper's perturbations: name -> (operation, OpenCV hue value or shift).
PERTURBATIONS: dict[str, tuple[str, int | None]] = {
    "red": ("set", 0),
    "green": ("set", 60),
    "blue": ("set", 120),
    "rotate120": ("rotate", 60),
    "rotate240": ("rotate", 120),
    "grey": ("grey", None),
}


def as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 RGB array."""
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"Expected an H x W x 3 uint8 RGB image, got shape {array.shape} and dtype {array.dtype}.")
    return array


def perturb(image: Image.Image | np.ndarray, mask: np.ndarray, kind: str, hue: int | None = None) -> np.ndarray:
    """Apply a named perturbation (PERTURBATIONS, or "hue" with `hue` in 0..179) inside `mask`.

    Returns a new RGB uint8 array; pixels outside the mask are untouched.
    """
    rgb = as_array(image)
    if kind == "hue":
        if hue is None or not 0 <= hue <= 179:
            raise ValueError(f"A free hue must be in 0..179 (OpenCV units), got {hue}.")
        operation, value = "set", hue
    elif kind in PERTURBATIONS:
        operation, value = PERTURBATIONS[kind]
    else:
        raise ValueError(f"Unknown perturbation {kind!r}: choose one of {', '.join(PERTURBATIONS)} or 'hue'.")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"The mask is {mask.shape} but the image is {rgb.shape[:2]}.")
    if operation == "grey":
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        changed = np.repeat(grey[..., None], 3, axis=2)
    else:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        hues = hsv[..., 0].astype(np.int32)
        hsv[..., 0] = value if operation == "set" else ((hues + value) % 180).astype(np.uint8)
        changed = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    result = rgb.copy()
    result[mask] = changed[mask]
    return result


def box_mask(shape: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """A boolean mask of an (x0, y0, x1, y1) box, clipped to an image of `shape` (height, width)."""
    height, width = shape
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=bool)
    left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    mask[top:bottom, left:right] = True
    return mask


def grabcut_mask(image: Image.Image | np.ndarray, box: tuple[float, float, float, float], iterations: int = 5) -> np.ndarray:
    """The object inside `box`, segmented by OpenCV's GrabCut; falls back to the box if it finds nothing."""
    rgb = as_array(image)
    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(width - 1, int(np.ceil(box[2]))), min(height - 1, int(np.ceil(box[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return box_mask((height, width), box)
    labels = np.zeros((height, width), dtype=np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), labels, (x0, y0, x1 - x0, y1 - y0),
                background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return mask if mask.any() else box_mask((height, width), box)


def mean_hue(image: Image.Image | np.ndarray, mask: np.ndarray) -> float:
    """The circular mean hue (OpenCV units, 0..180) of the masked pixels, weighted by saturation.

    Returns NaN for an empty mask or a region with no colour at all.
    """
    hsv = cv2.cvtColor(as_array(image), cv2.COLOR_RGB2HSV)
    mask = np.asarray(mask, dtype=bool)
    hues = hsv[..., 0][mask].astype(np.float64) * (2 * np.pi / 180)
    weights = hsv[..., 1][mask].astype(np.float64)
    if weights.sum() == 0:
        return float("nan")
    angle = np.arctan2((weights * np.sin(hues)).sum(), (weights * np.cos(hues)).sum())
    return float((angle % (2 * np.pi)) * 180 / (2 * np.pi))


def hue_distance(first: float, second: float) -> float:
    """The shortest distance between two hues on the 180-unit OpenCV hue circle (0..90)."""
    difference = abs(first - second) % 180
    return float(min(difference, 180 - difference))
