"""Detection datasets in the schema of the Hub's `detection-datasets/coco`, read with `datasets`.

    --data detection-datasets/coco --split val        a Hub dataset id: streamed, nothing downloaded first
    --data /data --split train                        a local folder of its parquet files (e.g. the dataset
                                                      mounted into a Job at /data), read in place

The schema (`HUB_SCHEMA`), as the dataset's `dataset_infos.json` declares it (commit 7def8f9 of
detection-datasets/coco) and as the library that wrote it builds its features
(blinjrm/detection-datasets, `DetectionDataset.get_hf_dataset`):

    image_id  int64                one row per image
    image     Image                the encoded file (JPEG for COCO)
    width     int64, height int64  pixels
    objects   a sequence of        (stored as a struct of equal-length lists)
        bbox_id   int64            the COCO annotation id
        category  ClassLabel       80 names, ids 0..79 in COCO's order: *not* COCO's 1..90 ids nor DETR's
                                   91-slot labels; they are matched to the detector's labels by name,
                                   like any COCO-format dataset's categories (`coco_file.align_categories`)
        bbox      4 x float64      [x_min, y_min, x_max, y_max] in pixels (Pascal VOC corners,
                                   `Bbox.to_voc`), not COCO's [x, y, width, height]
        area      int64            the box's area in pixels
Splits: `train` (118,287 images) and `val` (5,000), COCO 2017's. There are no instance masks: an
object's mask is its box (the evaluation's colour section then perturbs boxes).

Each dataset becomes the same COCO document a COCO-format folder gives (boxes turned into [x, y, w, h]),
checked by the same code (`coco_file.check_coco`), so training, evaluation and the feature cache read it
like a folder. A local folder opens as a map-style dataset (random access; memory-mapped Arrow), so that
a run on it is the run on the same images as a folder; a Hub id is streamed (`StreamedDataset`), and an
evaluation takes its first N images.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from ..core.errors import DatasetError, UserFacingError
from .coco_file import check_coco
from .data import CocoDataset, Unreadable

HUB_DATASET, TRAIN_SPLIT, VAL_SPLIT = "detection-datasets/coco", "train", "val"  # COCO 2017 on the Hub
HUB_SCHEMA = {"image_id": "int64", "image": "Image", "width": "int64", "height": "int64",
              "objects": {"bbox_id": "int64", "category": "ClassLabel", "bbox": "4 x float64 [x_min, y_min, x_max, y_max]",
                          "area": "int64"}}
OBJECT_FIELDS = ("bbox", "category")  # what is read of each object; bbox_id and area are used when present
BOX_SLACK = 1.0  # pixels a corner may lie outside its image (COCO's own boxes do, by rounding)
SCHEMA_HINT = ("the schema of detection-datasets/coco: columns image_id, image, width, height and objects "
               "{bbox_id, category (a ClassLabel), bbox [x_min, y_min, x_max, y_max], area}")


def parquet_files(folder: Path, split: str | None) -> list[Path]:
    """The parquet files of `split` below `folder`: those named SPLIT-*.parquet or in a folder named SPLIT
    (the Hub's layouts); without a split, every parquet file."""
    files = sorted(folder.rglob("*.parquet"))
    if split is None:
        return files
    return [file for file in files if file.name.startswith(f"{split}-") or split in file.relative_to(folder).parts[:-1]]


def is_parquet_folder(folder: Path) -> bool:
    """Whether a folder holds parquet files (and is read as this schema)."""
    return folder.is_dir() and next(folder.rglob("*.parquet"), None) is not None


def open_parquet(folder: Path, split: str | None) -> ParquetDataset:
    """A local folder of parquet files in the Hub schema, map-style (see the module docstring)."""
    import datasets

    if split is None:
        raise DatasetError(f"{folder} holds parquet files: name the split to read with --split (e.g. train or val).")
    files = parquet_files(folder, split)
    if not files:
        found = sorted({file.name.split("-")[0] for file in parquet_files(folder, None)})
        raise DatasetError(f"{folder} has no parquet files of split {split!r} (SPLIT-*.parquet or SPLIT/*.parquet); "
                           f"it has {', '.join(found)}.")
    datasets.disable_progress_bars()  # one line per problem on the console, not a bar per split
    table = datasets.load_dataset("parquet", data_files={split: [str(file) for file in files]}, split=split)
    label = f"{folder} (split {split})"
    check_features(table.features, label)
    rows = table.select_columns(["image_id", "width", "height", "objects"])
    return ParquetDataset(table, coco_document(rows, table.features, label), label)


def open_streamed(name: str, split: str | None, needs_annotations: bool, max_images: int | None,
                  data_files: list[str] | None = None) -> ParquetDataset | StreamedDataset:
    """A Hub dataset id streamed (or, with `data_files`, local parquet files streamed the same way): its first
    `max_images` rows in memory when a run needs the objects (evaluation), else a `StreamedDataset`."""
    import datasets

    if split is None:
        raise DatasetError(f"{name} is a Hub dataset: name the split to read with --split (e.g. train or val).")
    datasets.disable_progress_bars()
    try:
        stream = (datasets.load_dataset("parquet", data_files={split: data_files}, split=split, streaming=True)
                  if data_files else datasets.load_dataset(name, split=split, streaming=True))
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as error:
        raise DatasetError(f"Cannot stream split {split!r} of the Hub dataset {name!r} ({error}); check the name, "
                           "the split and your network (and HF_TOKEN for a gated or private dataset).") from error
    label = f"{name} (split {split})"
    check_features(stream.features, label)
    if not needs_annotations:
        return StreamedDataset(stream, label)
    if max_images is None:
        raise UserFacingError(f"Evaluating on the streamed {label} reads its first images into memory: pass "
                              "--max-images N (e.g. 500).")
    first = datasets.Dataset.from_list(list(stream.take(max_images)), features=stream.features)
    return ParquetDataset(first, coco_document(first, first.features, label), label)


def check_features(features, label: str) -> None:
    """Refuse a dataset whose columns are not the Hub schema's, naming what differs."""
    import datasets

    missing = [name for name in ("image_id", "image", "width", "height", "objects") if name not in features]
    if missing:
        raise DatasetError(f"{label} has no column {', '.join(missing)}: it is not in {SCHEMA_HINT}.")
    if not isinstance(features["image"], datasets.Image):
        raise DatasetError(f"{label}: its 'image' column is {features['image']}, not images: expected {SCHEMA_HINT}.")
    objects = features["objects"]
    fields = objects if isinstance(objects, dict) else getattr(getattr(objects, "feature", None), "items", lambda: {})()
    fields = dict(fields)
    absent = [name for name in OBJECT_FIELDS if name not in fields]
    if absent:
        raise DatasetError(f"{label}: its objects have no {', '.join(absent)}: expected {SCHEMA_HINT}.")
    category = getattr(fields["category"], "feature", fields["category"])
    if not isinstance(category, datasets.ClassLabel):
        raise DatasetError(f"{label}: objects.category is {category}, not a ClassLabel with names, so it cannot be "
                           f"matched to the detector's labels: expected {SCHEMA_HINT}.")
    box = getattr(fields["bbox"], "feature", None)
    if getattr(box, "length", None) != 4:
        raise DatasetError(f"{label}: objects.bbox is {fields['bbox']}, not four numbers per object: expected "
                           f"{SCHEMA_HINT}.")


def category_names(features) -> list[str]:
    """The ClassLabel names of the objects' categories (position = the stored id)."""
    fields = features["objects"]
    fields = fields if isinstance(fields, dict) else fields.feature
    return list(getattr(fields["category"], "feature", fields["category"]).names)


def coco_document(rows, features, label: str) -> dict:
    """The checked COCO document of a dataset's rows (`image_id`, `width`, `height`, `objects`): boxes turned from
    corners into [x, y, width, height]; a corner before its opposite, or far outside its image, is refused."""
    images, annotations = [], []
    for position, row in enumerate(rows):
        image_id, width, height, objects = row["image_id"], row["width"], row["height"], row["objects"]
        images.append({"id": image_id, "file_name": f"row {position}", "width": width, "height": height})
        ids = objects.get("bbox_id") or [None] * len(objects["bbox"])
        for index, (box, category) in enumerate(zip(objects["bbox"], objects["category"])):
            x0, y0, x1, y1 = box
            if not (x0 <= x1 and y0 <= y1 and -BOX_SLACK <= x0 and -BOX_SLACK <= y0
                    and x1 <= width + BOX_SLACK and y1 <= height + BOX_SLACK):
                raise DatasetError(f"{label}: row {position} (image {image_id}) has the box {list(box)} in a "
                                   f"{width}x{height} image, which is not [x_min, y_min, x_max, y_max] in pixels: "
                                   "are its boxes in another format ([x, y, width, height], or relative)? "
                                   f"Expected {SCHEMA_HINT}.")
            annotation_id = ids[index] if ids[index] is not None else len(annotations) + 1
            annotations.append({"id": annotation_id, "image_id": image_id, "category_id": category,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
    categories = [{"id": index, "name": name} for index, name in enumerate(category_names(features))]
    return check_coco({"images": images, "annotations": annotations, "categories": categories}, label, True)


def decoded(value) -> Image.Image:
    """An `image` cell as a PIL RGB image (decoded by `datasets`, or still as its bytes)."""
    image = value if isinstance(value, Image.Image) else Image.open(io.BytesIO(value["bytes"]))
    return image.convert("RGB")


class ParquetDataset(CocoDataset):
    """A map-style dataset in the Hub schema: its checked COCO document (boxes, categories, AP) and its images
    as rows of a `datasets.Dataset`; everything else is a COCO-format folder's (`CocoDataset`)."""

    def __init__(self, table, document: dict, label: str):
        self.label = label
        self.table = table.select_columns(["image"])
        self.adopt(document)
        self.rows = {entry["id"]: position for position, entry in enumerate(document["images"])}

    def path(self, index: int) -> str:
        """Where item `index` comes from, for messages."""
        image_id = self.image_ids[index]
        return f"{self.label} row {self.rows[image_id]} (image {image_id})"

    def __getitem__(self, index: int):
        image_id = self.image_ids[index]
        try:
            return decoded(self.table[self.rows[image_id]]["image"]), image_id
        except (OSError, ValueError) as error:
            raise DatasetError(f"{self.path(index)} cannot be decoded as an image ({error}).") from error


class StreamedDataset(IterableDataset):
    """A streamed dataset in the Hub schema: (image, image id) in the stream's order, one pass per iteration
    (an epoch), each DataLoader worker decoding every n-th row; an image that cannot be decoded becomes
    `data.Unreadable`. Its length is the split's size as the dataset's card (or its parquet files) gives it."""

    def __init__(self, stream, label: str):
        import datasets

        self.label = label  # the images stay bytes in the stream, decoded here (a bad one is then only that item)
        self.stream = stream.select_columns(["image_id", "image"]).cast_column("image", datasets.Image(decode=False))
        splits = getattr(stream.info, "splits", None) or {}
        sizes = [split.num_examples for split in splits.values() if split.name == stream.split and split.num_examples]
        if not sizes:
            raise DatasetError(f"{label} does not say how many images it holds (its card lists no split sizes), so "
                               "the share of unreadable images cannot be kept: download it and pass the folder.")
        self.size = sizes[0]

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator:
        worker = get_worker_info()
        workers, mine = (worker.num_workers, worker.id) if worker else (1, 0)
        for position, row in enumerate(self.stream):
            if position % workers != mine:
                continue
            try:
                yield decoded(row["image"]), row["image_id"]
            except (OSError, ValueError) as error:
                yield Unreadable(f"{self.label} row {position} (image {row['image_id']})", str(error))
