"""Opening a dataset by what `--data` names: a COCO-format folder, a plain image folder (`data`), a folder of
parquet files in the Hub's detection schema or a Hub dataset id (`hub_datasets`)."""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from ..core.errors import DatasetError
from ..core.hub import is_hub_id
from . import hub_datasets
from .data import CocoDataset, ImageFolder


def open_dataset(path: str | os.PathLike, split: str | None = None, needs_annotations: bool = False,
                 max_images: int | None = None) -> Dataset:
    """Open a COCO-format folder, a folder of parquet files or a Hub dataset id in the Hub's detection schema
    (see the module docstring), or a plain folder of images; with `needs_annotations`, only a dataset with
    well-formed objects and categories will do (a streamed Hub dataset then gives its first `max_images`).
    The dataset's `source` records the folder (resolved) or Hub id, and the split, it was opened from."""
    root = Path(path)
    if not root.exists() and is_hub_id(str(path)):
        dataset = hub_datasets.open_streamed(str(path), split, needs_annotations, max_images)
        dataset.source = {"data": str(path), "split": split}
        return dataset
    if hub_datasets.is_parquet_folder(root) and not (root / "annotations.json").is_file():
        dataset = hub_datasets.open_parquet(root, split)
    else:
        dataset = _open(root, split, needs_annotations)
    dataset.source = {"data": str(root.resolve()), "split": split}
    return dataset


def _open(root: Path, split: str | None, needs_annotations: bool) -> ImageFolder | CocoDataset:
    if not root.exists():
        raise DatasetError(f"The dataset path {root} does not exist: pass a COCO-format folder, a folder of parquet "
                           "files, a Hub dataset id (owner/name) or a folder of images.")
    if root.is_file() and root.suffix == ".json":
        return CocoDataset(root.parent / "images", root, needs_annotations)
    if split is not None:
        annotations = root / "annotations" / f"instances_{split}.json"
        if not annotations.is_file():
            raise DatasetError(f"Split {split!r} expects {annotations}, which does not exist.")
        return CocoDataset(root / split, annotations, needs_annotations)
    if (root / "annotations.json").is_file():
        return CocoDataset(root / "images", root / "annotations.json", needs_annotations)
    if needs_annotations:
        raise DatasetError(f"{root} has no annotations.json (nor --split's annotations/instances_SPLIT.json): this "
                           "needs a COCO-format dataset with its objects, not a plain image folder.")
    return ImageFolder(root)
