"""The synthetic Shapes world: coloured shapes on textured backgrounds, and its COCO export.

Every image holds 1 to 4 objects of four classes. Each class has a prototypical hue
(circle red, square green, triangle blue, star yellow) that about 80% of its instances wear
(`PROTOTYPE_PROB`; `prototype_share` sets another share: a dial on how much colour tells the
class); the others wear a clearly different random hue, so colour is a useful but not a necessary
cue, like the red of a stop sign. Later objects are drawn over earlier ones, and every object keeps
at least half of its area visible.

Ids: the COCO `category_id` of a class is its detector label id, 1 + its index in
`CLASS_NAMES`; label 0 is an unused "N/A", as in facebook/detr-resnet-50 whose label ids are
COCO category ids. Hues are in OpenCV units (0..179).

The command line is `python -m inversion.shapes` (see `__main__.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

CLASS_NAMES = ("circle", "square", "triangle", "star")
CATEGORY_IDS = {name: i + 1 for i, name in enumerate(CLASS_NAMES)}
ID2LABEL = {0: "N/A", **{i: name for name, i in CATEGORY_IDS.items()}}
PROTOTYPE_HUES = {"circle": 0, "square": 60, "triangle": 120, "star": 30}

IMAGE_SIZE = 128
PROTOTYPE_PROB = 0.8  # share of instances wearing their class's prototype hue
HUE_JITTER = 4  # prototype instances: hue within +-4 of the prototype
OFF_PROTOTYPE_MIN = 20  # the others: hue at least 20 away from the prototype
MIN_VISIBLE = 0.5  # every object keeps at least this share of its area visible
RADIUS = (10, 24)  # object size in pixels at IMAGE_SIZE (scaled with the size)
SUPERSAMPLE = 4  # anti-aliasing: shapes are drawn at 4x and area-averaged

Rng = np.random.Generator


@dataclass
class ShapeObject:
    """One object: its class, visible box (x, y, w, h in pixels), visible mask and hue."""

    name: str
    category_id: int
    box: tuple[int, int, int, int]
    mask: np.ndarray  # bool, H x W
    hue: int


def sample_rng(seed: int, index: int) -> Rng:
    """The generator of sample `index` of the stream `seed` (independent of the stream length)."""
    return np.random.default_rng([seed, index])


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One OpenCV HSV colour (H 0..179, S and V 0..255) as RGB floats in [0, 1]."""
    pixel = np.array([[[round(h) % 180, round(s), round(v)]]], dtype=np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255


def sample_hue(name: str, rng: Rng, prototype_share: float = PROTOTYPE_PROB) -> int:
    """The prototype hue (jittered) with probability `prototype_share`, else a clearly different one."""
    proto = PROTOTYPE_HUES[name]
    if rng.random() < prototype_share:
        return int(proto + rng.integers(-HUE_JITTER, HUE_JITTER + 1)) % 180
    span = 180 - 2 * OFF_PROTOTYPE_MIN + 1  # hues from proto+MIN to proto+180-MIN
    return int(proto + OFF_PROTOTYPE_MIN + rng.integers(span)) % 180


def background(size: int, rng: Rng) -> np.ndarray:
    """A muted textured background (smooth noise, gradient or stripes), H x W x 3 in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    kind = rng.integers(3)
    if kind == 0:  # smooth noise
        cells = int(rng.integers(2, 7))
        grid = rng.random((cells, cells)).astype(np.float32)
        t = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # linear gradient
        t = along
    else:  # stripes
        t = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * along + rng.uniform(0, 2 * np.pi))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    muted = [hsv_to_rgb(rng.integers(180), rng.uniform(0, 90), rng.uniform(60, 200)) for _ in range(2)]
    return muted[0] * (1 - t[..., None]) + muted[1] * t[..., None]


def outline(name: str, radius: float, angle: float) -> np.ndarray:
    """The polygon of a shape centred at the origin (a circle is a 64-gon), N x 2."""
    if name == "circle":
        theta, r = np.linspace(0, 2 * np.pi, 64, endpoint=False), np.full(64, radius)
    elif name == "square":
        theta, r = np.arange(4) * np.pi / 2, np.full(4, radius * 1.2)
    elif name == "triangle":
        theta, r = np.arange(3) * 2 * np.pi / 3, np.full(3, radius * 1.3)
    elif name == "star":
        theta = np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, radius * 1.35, radius * 0.6)
    else:
        raise ValueError(f"unknown shape {name!r}; expected one of {CLASS_NAMES}")
    theta = theta + angle
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def coverage(points: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] (H x W) of a polygon given in pixel coordinates."""
    canvas = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(points * SUPERSAMPLE).astype(np.int32)], 255)
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255


def visible_masks(full: list[np.ndarray]) -> list[np.ndarray]:
    """What remains of each mask once every later mask is drawn over it."""
    visible, above = [], np.zeros_like(full[0])
    for mask in reversed(full):
        visible.append(mask & ~above)
        above = above | mask
    return visible[::-1]


def generate_sample(
    rng: Rng | int, size: int = IMAGE_SIZE, prototype_share: float = PROTOTYPE_PROB
) -> tuple[Image.Image, list[ShapeObject]]:
    """One image of the Shapes world and its objects, deterministic given the generator or seed
    (the default `prototype_share` reproduces the bundled world's images exactly)."""
    rng = np.random.default_rng(rng) if isinstance(rng, (int, np.integer)) else rng
    image = background(size, rng)
    low, high = (r * size / IMAGE_SIZE for r in RADIUS)
    drawn: list[tuple[str, int, np.ndarray, np.ndarray]] = []  # name, hue, coverage, mask
    for _ in range(int(rng.integers(1, 5))):
        name = CLASS_NAMES[rng.integers(len(CLASS_NAMES))]
        for _attempt in range(20):
            radius = rng.uniform(low, high)
            extent = 1.35 * radius + 1  # the largest shape's circumradius, so it stays inside
            centre = rng.uniform(extent, size - extent, size=2)
            cover = coverage(outline(name, radius, rng.uniform(0, 2 * np.pi)) + centre, size)
            masks = [m for _, _, _, m in drawn] + [cover > 0.5]
            visible = visible_masks(masks)
            if all(v.sum() >= MIN_VISIBLE * m.sum() for v, m in zip(visible, masks)):
                drawn.append((name, sample_hue(name, rng, prototype_share), cover, masks[-1]))
                break
    objects = []
    for (name, hue, cover, _), mask in zip(drawn, visible_masks([m for *_, m in drawn])):
        colour = hsv_to_rgb(hue, rng.uniform(140, 255), rng.uniform(130, 255))
        image = image * (1 - cover[..., None]) + colour * cover[..., None]
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        objects.append(ShapeObject(name, CATEGORY_IDS[name], box, mask, hue))
    image = image + rng.normal(0, 0.015, image.shape)
    pixels = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels), objects


def coco_dataset(samples: list[tuple[str, tuple[Image.Image, list[ShapeObject]]]]) -> dict:
    """A COCO instances dict for (file name, sample) pairs; image ids are 1, 2, ... in order.

    Each annotation carries an extra field "hue" (the object's OpenCV hue).
    """
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for image_id, (file_name, (image, objects)) in enumerate(samples, start=1):
        images.append({"id": image_id, "file_name": file_name, "width": image.width, "height": image.height})
        for obj in objects:
            rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": obj.category_id,
                "bbox": list(obj.box), "area": int(obj.mask.sum()), "iscrowd": 0,
                "segmentation": rle, "hue": obj.hue,
            })
    categories = [{"id": CATEGORY_IDS[n], "name": n, "supercategory": "shape"} for n in CLASS_NAMES]
    return {"images": images, "annotations": annotations, "categories": categories}


def export_coco(
    out_dir: str | Path, n: int, seed: int, size: int = IMAGE_SIZE, prototype_share: float = PROTOTYPE_PROB
) -> Path:
    """Write samples 0..n-1 of stream `seed` as DIR/images/*.png and DIR/annotations.json."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for index in tqdm(range(n), desc=f"shapes seed {seed}"):
        file_name = f"{index:06d}.png"
        sample = generate_sample(sample_rng(seed, index), size, prototype_share)
        sample[0].save(out_dir / "images" / file_name)
        samples.append((file_name, sample))
    path = out_dir / "annotations.json"
    path.write_text(json.dumps(coco_dataset(samples)))
    return path
