"""Datasets of images: COCO-format folders (images + instances JSON) and plain image folders.

Both yield (PIL RGB image, image id). A COCO dataset also keeps its pycocotools `COCO` object
for boxes, instance masks and AP. Layouts understood:
    DIR/annotations.json + DIR/images/                    (what `inversion.shapes export` writes)
    DIR/annotations/instances_SPLIT.json + DIR/SPLIT/     (COCO 2017, with split="train2017" etc.)
    DIR/ with image files (recursively)                    (a plain folder)
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset, Subset

from ..core.errors import UserFacingError
from ..core.images import load_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class DatasetError(UserFacingError):
    """A dataset path that cannot be used; the message says what was expected."""


class ImageFolder(Dataset):
    """Every image file below a folder, in sorted order; ids are positions."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.paths = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise DatasetError(f"{self.folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}).")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return load_image(self.paths[index]), index


class CocoDataset(Dataset):
    """A COCO-format dataset: images in a folder, annotations in an instances JSON."""

    def __init__(self, images: str | os.PathLike, annotations: str | os.PathLike):
        self.images = Path(images)
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(annotations))
        self.image_ids = sorted(self.coco.getImgIds())
        if not self.image_ids:
            raise DatasetError(f"{annotations} lists no images.")

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int):
        image_id = self.image_ids[index]
        return load_image(self.images / self.coco.imgs[image_id]["file_name"]), image_id


def open_dataset(path: str | os.PathLike, split: str | None = None) -> ImageFolder | CocoDataset:
    """Open a COCO-format folder (see the module docstring) or a plain folder of images."""
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"The dataset path {root} does not exist: pass a COCO-format folder or a folder of images.")
    if root.is_file() and root.suffix == ".json":
        return CocoDataset(root.parent / "images", root)
    if split is not None:
        annotations = root / "annotations" / f"instances_{split}.json"
        if not annotations.is_file():
            raise DatasetError(f"Split {split!r} expects {annotations}, which does not exist.")
        return CocoDataset(root / split, annotations)
    if (root / "annotations.json").is_file():
        return CocoDataset(root / "images", root / "annotations.json")
    return ImageFolder(root)


def split_dataset(dataset: Dataset, val_fraction: float, seed: int) -> tuple[Subset, Subset]:
    """A fixed random train/validation split (the same for the same seed); neither part is empty."""
    count = len(dataset)
    if count < 2:
        raise DatasetError(f"A dataset of {count} image cannot be split into training and validation parts.")
    val_count = min(count - 1, max(1, round(count * val_fraction)))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, order[val_count:]), Subset(dataset, order[:val_count])


def collate(batch: list) -> tuple[list, list]:
    """Keep images as a list of PIL images (the detector fits them to its canvas)."""
    images, ids = zip(*batch)
    return list(images), list(ids)
