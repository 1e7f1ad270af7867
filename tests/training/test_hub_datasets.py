"""Datasets in detection-datasets/coco's schema (a local parquet folder, or streamed) read as the same COCO data
as the folder they were written from, train the same, and a dataset in another schema is refused before training."""

import json

import datasets
import numpy as np
import pytest

from inversion.__main__ import main
from inversion.core.errors import DatasetError
from inversion.shapes.world import ID2LABEL, export_coco
from inversion.testing import export_hub_parquet
from inversion.training.hub_datasets import open_streamed, parquet_files
from inversion.training.sources import open_dataset
from inversion.training.trainer import TrainingConfig, train

pytestmark = pytest.mark.shapes


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(the COCO-format folder, the parquet folder) of the same 24 Shapes images (stream seed 3), in two files."""
    root = tmp_path_factory.mktemp("hub-data")
    export_coco(root / "coco", 24, seed=3)
    export_hub_parquet(root / "coco", root / "parquet", "train", rows_per_file=10)
    return root / "coco", root / "parquet"


def objects(dataset, image_id):
    return sorted((a["category_id"], tuple(a["bbox"])) for a in dataset.coco.imgToAnns.get(image_id, []))


def test_the_parquet_export_is_the_folder_image_for_image(exports):
    folder, parquet = exports
    assert [file.name for file in parquet_files(parquet, "train")] == ["train-00000-of-00003.parquet",
                                                                      "train-00001-of-00003.parquet",
                                                                      "train-00002-of-00003.parquet"]
    coco = open_dataset(folder, needs_annotations=True)
    hub = open_dataset(parquet, "train", needs_annotations=True)
    for dataset in (coco, hub):
        dataset.use_labels(ID2LABEL)
    assert hub.image_ids == coco.image_ids and len(hub) == 24
    assert hub.categories == coco.categories == {"circle": 1, "square": 2, "triangle": 3, "star": 4}
    annotated = 0
    for index in range(len(coco)):
        (image, image_id), (same, same_id) = coco[index], hub[index]
        assert image_id == same_id and np.array_equal(np.asarray(image), np.asarray(same))
        assert objects(hub, image_id) == objects(coco, image_id)
        annotated += bool(objects(coco, image_id))
    assert annotated == 24
    assert hub.source == {"data": str(parquet.resolve()), "split": "train"}


def test_a_run_on_the_parquet_export_is_the_run_on_the_folder(exports, tmp_path):
    losses = []
    for name, data, split in (("folder", exports[0], None), ("parquet", exports[1], "train")):
        out = tmp_path / name
        train(TrainingConfig(data=str(data), split=split, out=str(out), model="shapes", steps=3, batch_size=4,
                             warmup_steps=1, val_every=3, val_images=4, save_every=3, log_every=1, workers=0, seed=0))
        lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses.append([line["loss"] for line in lines if line["split"] == "train"])
    assert len(losses[0]) == 3
    for folder_step, parquet_step in zip(*losses):
        assert folder_step.keys() == parquet_step.keys()
        assert all(abs(folder_step[stage] - parquet_step[stage]) <= 1e-6 for stage in folder_step)


def test_streaming_reads_the_same_rows(exports):
    folder, parquet = exports
    files = [str(file) for file in parquet_files(parquet, "train")]
    coco = open_dataset(folder, needs_annotations=True)
    streamed = open_streamed("detection-datasets/coco", "train", False, None, data_files=files)
    assert len(streamed) == 24
    items = list(streamed)
    assert [image_id for _, image_id in items] == coco.image_ids
    assert all(np.array_equal(np.asarray(image), np.asarray(coco[index][0])) for index, (image, _) in enumerate(items))
    first = open_streamed("detection-datasets/coco", "train", True, 5, data_files=files)
    assert first.image_ids == coco.image_ids[:5]
    assert objects(first, coco.image_ids[4]) == objects(open_dataset(parquet, "train", needs_annotations=True),
                                                          coco.image_ids[4])


def rewrite(parquet, out, change):
    """The parquet export with `change(table)` applied, written as OUT/data/train-00000-of-00001.parquet."""
    files = [str(file) for file in parquet_files(parquet, "train")]
    table = change(datasets.load_dataset("parquet", data_files={"train": files}, split="train"))
    (out / "data").mkdir(parents=True)
    table.to_parquet(out / "data" / "train-00000-of-00001.parquet")
    return out


def coco_boxes(table):
    def corners_to_size(row):
        row["objects"]["bbox"] = [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in row["objects"]["bbox"]]
        return row
    return table.map(corners_to_size)


def plain_categories(table):
    features = table.features.copy()
    features["objects"]["category"] = datasets.List(datasets.Value("int64"))
    return table.cast(features)


@pytest.mark.parametrize("change, message", [
    (lambda table: table.remove_columns("width"), "has no column width: it is not in the schema of detection-datasets/coco"),
    (coco_boxes, "which is not [x_min, y_min, x_max, y_max] in pixels: are its boxes in another format"),
    (plain_categories, "objects.category is Value('int64'), not a ClassLabel with names"),
], ids=["missing column", "boxes as x y width height", "categories without names"])
def test_a_dataset_in_another_schema_is_refused_before_training(exports, tmp_path, capsys, change, message):
    data = rewrite(exports[1], tmp_path / "data", change)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--model", "shapes", "--data", str(data), "--split", "train", "--out", str(out),
                 "--steps", "2", "--workers", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1, error
    assert not out.exists()


def test_a_parquet_folder_needs_its_split_named(exports, capsys):
    with pytest.raises(DatasetError, match="name the split to read with --split"):
        open_dataset(exports[1])
    with pytest.raises(DatasetError, match="has no parquet files of split 'val'.*it has train"):
        open_dataset(exports[1], "val")


def test_cache_features_reads_a_parquet_folder(exports, tmp_path, capsys):
    assert main(["cache-features", "--model", "shapes", "--data", str(exports[1]), "--split", "train",
                 "--out", str(tmp_path / "cache"), "--workers", "0", "--shard-size", "16"]) == 0
    assert "wrote 24 images' targets" in capsys.readouterr().out
    cache = json.loads((tmp_path / "cache" / "cache.json").read_text())
    assert cache["dataset"] == {"data": str(exports[1].resolve()), "split": "train"}
    assert [shard["count"] for shard in cache["shards"]] == [16, 8]
