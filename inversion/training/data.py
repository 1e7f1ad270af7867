"""Datasets of images: COCO-format folders (images + instances JSON) and plain image folders.

All yield (PIL RGB image, image id). A COCO dataset also keeps its pycocotools `COCO` object
for boxes, instance masks and AP, built from the checked file (inversion.training.coco_file).
Layouts understood:
    DIR/annotations.json + DIR/images/                    (what `inversion.shapes export` writes)
    DIR/annotations/instances_SPLIT.json + DIR/SPLIT/     (COCO 2017, with split="train2017" etc.)
    DIR/ with SPLIT-*.parquet files, or OWNER/NAME         (the Hub's detection-datasets/coco schema, a local
                                                           folder or a streamed Hub dataset: hub_datasets)
    DIR/ with image files (recursively)                    (a plain folder)

An image that cannot be read stops nothing: loaders wrap datasets in `SkipUnreadable`, whose
batches (`collate`) leave it out and name it, and an `UnreadableImages` ledger counts them and
fails the run once more than its share are unreadable.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset, IterableDataset, Sampler, Subset
from tqdm import tqdm

from ..core.errors import DatasetError, UserFacingError
from ..core.images import load_image
from .coco_file import align_categories, read_coco

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_UNREADABLE_SHARE = 0.05  # a run fails once more than this share of its images cannot be read
SHOWN_UNREADABLE = 5  # how many unreadable images a message names


class ImageFolder(Dataset):
    """Every image file below a folder, in sorted order; ids are positions."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.paths = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise DatasetError(f"{self.folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}).")

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, index: int) -> Path:
        """The file of item `index`."""
        return self.paths[index]

    def __getitem__(self, index: int):
        return load_image(self.paths[index]), index


class CocoDataset(Dataset):
    """A COCO-format dataset: images in a folder, annotations in an instances JSON, checked on opening.

    `needs_annotations`: the objects and categories must be there and well formed (evaluation);
    otherwise only the images are read.
    """

    def __init__(self, images: str | os.PathLike, annotations: str | os.PathLike, needs_annotations: bool = False):
        self.images = Path(images)
        self.label = Path(annotations)  # where the document came from, for messages
        self.adopt(read_coco(self.label, needs_annotations))

    def adopt(self, document: dict) -> None:
        """Take a checked COCO document as this dataset's: its index, image order and categories."""
        self.document = document
        self.coco = self._index()
        self.image_ids = sorted(self.coco.getImgIds())
        self.categories: dict[str, int] = {c["name"]: c["id"] for c in self.document["categories"]}
        self.skipped_categories: list[str] = []

    def _index(self) -> COCO:
        coco = COCO()
        coco.dataset = self.document
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def use_labels(self, id2label: dict[int, str], skip_unknown: bool = False) -> None:
        """Renumber the categories as a detector's labels (matched by name); see `align_categories`."""
        alignment = align_categories(self.document, id2label, self.label, skip_unknown)
        self.categories, self.skipped_categories = alignment["categories"], alignment["skipped"]
        self.coco = self._index()

    def __len__(self) -> int:
        return len(self.image_ids)

    def path(self, index: int) -> Path:
        """The file of item `index`."""
        return self.images / self.coco.imgs[self.image_ids[index]]["file_name"]

    def __getitem__(self, index: int):
        return load_image(self.path(index)), self.image_ids[index]


def split_dataset(dataset: Dataset, val_fraction: float, seed: int) -> tuple[Subset, Subset]:
    """A fixed random train/validation split (the same for the same seed); neither part is empty."""
    if isinstance(dataset, IterableDataset):
        raise DatasetError(f"{dataset.label} is streamed, so no part of it can be held out at random: name the "
                           "validation data with --val-data and --val-split (e.g. the val split).")
    count = len(dataset)
    if count < 2:
        raise DatasetError(f"A dataset of {count} image cannot be split into training and validation parts.")
    val_count = min(count - 1, max(1, round(count * val_fraction)))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, order[val_count:]), Subset(dataset, order[:val_count])


def item_path(dataset: Dataset, index: int) -> str:
    """The file behind item `index` of a dataset (or of a Subset of one), for messages."""
    while isinstance(dataset, Subset):
        dataset, index = dataset.dataset, dataset.indices[index]
    return str(dataset.path(index)) if hasattr(dataset, "path") else f"item {index}"


class Unreadable:
    """An item whose image could not be read: its file and why."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason


class SkipUnreadable(Dataset):
    """A dataset whose unreadable images become `Unreadable` items instead of errors (in any worker)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except (UserFacingError, OSError) as error:
            return Unreadable(item_path(self.dataset, index), str(error))


def first_readable(dataset: Dataset, count: int, unreadable: UnreadableImages) -> Iterator[tuple[int, object]]:
    """The readable ones of the first `count` items of `dataset`, with their index, read with a progress bar; the
    others are listed in `unreadable` (which fails when too many are)."""
    readable = SkipUnreadable(dataset)
    for index in tqdm(range(count), desc="loading images", leave=False):
        item = readable[index]
        if isinstance(item, Unreadable):
            unreadable.add([(item.path, item.reason)])
        else:
            yield index, item


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The random generator of one epoch's order, from the seed and the epoch alone: every process of a
    distributed run, and a resumed run, draws the same order."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


class EpochShuffle(Sampler[int]):
    """The items in a new random order every epoch (`epoch_generator`); a resumed run sets `epoch` to take up the
    order where it stopped."""

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seed, self.epoch = size, seed, 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = epoch_generator(self.seed, self.epoch)
        self.epoch += 1
        yield from torch.randperm(self.size, generator=generator).tolist()


def readable(dataset: Dataset) -> Dataset:
    """A dataset whose unreadable images are `Unreadable` items: a map-style one wrapped in `SkipUnreadable`
    (a streamed one yields them itself)."""
    return dataset if isinstance(dataset, IterableDataset) else SkipUnreadable(dataset)


class ImageBatch(NamedTuple):
    """The readable items of a batch, and (file, reason) of the unreadable ones left out."""

    images: list
    ids: list
    unreadable: list[tuple[str, str]]


def collate(batch: list) -> ImageBatch:
    """Keep images as a list of PIL images (the detector fits them to its canvas); leave unreadable ones out."""
    readable = [item for item in batch if not isinstance(item, Unreadable)]
    return ImageBatch([image for image, _ in readable], [image_id for _, image_id in readable],
                      [(item.path, item.reason) for item in batch if isinstance(item, Unreadable)])


class UnreadableImages:
    """The images of a run that could not be read; more than `max_share` of `total` fails the run."""

    def __init__(self, total: int, max_share: float = MAX_UNREADABLE_SHARE):
        self.total, self.max_share = total, max_share
        self.found: dict[str, str] = {}

    def add(self, unreadable: list[tuple[str, str]]) -> None:
        """Record (file, reason) pairs; raise DatasetError once over the allowed share."""
        self.found.update(unreadable)
        if len(self.found) > self.max_share * self.total:
            raise DatasetError(f"{self.summary()}: more than the {self.max_share:.0%} allowed. Fix or remove them, "
                               "or allow more with --max-unreadable.")

    def summary(self) -> str:
        """'N of M images could not be read: file (why), ...' (the first few), or '' when none."""
        if not self.found:
            return ""
        shown = "; ".join(f"{path} ({reason})" for path, reason in list(self.found.items())[:SHOWN_UNREADABLE])
        more = f"; and {len(self.found) - SHOWN_UNREADABLE} more" if len(self.found) > SHOWN_UNREADABLE else ""
        return f"{len(self.found)} of {self.total} images could not be read and were skipped: {shown}{more}"
