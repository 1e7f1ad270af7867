"""Datasets are checked before any work: each broken COCO field named, categories matched to the detector's
labels, unreadable images skipped and counted (in every DataLoader worker), too many failing the run."""

import copy
import json

import pytest
import torch
from transformers import DetrForObjectDetection

from inversion.__main__ import main
from inversion.core.detector import Detector
from inversion.shapes.world import export_coco
from inversion.testing import tiny_shapes_detr_config
from inversion.training.data import DatasetError, SkipUnreadable, collate
from inversion.training.sources import open_dataset
from inversion.training.trainer import TrainingConfig, train


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes6")
    export_coco(folder, n=6, seed=5, size=64)
    return folder


@pytest.fixture(scope="module")
def document(export):
    return json.loads((export / "annotations.json").read_text())


@pytest.fixture(scope="module")
def shapes_detector(tmp_path_factory):
    """A tiny random DETR with the Shapes labels, saved as a folder."""
    folder = tmp_path_factory.mktemp("shapes-detr")
    config = tiny_shapes_detr_config()
    torch.manual_seed(0)
    DetrForObjectDetection(config).save_pretrained(folder)
    return folder


def written(tmp_path, export, document=None, text=None):
    """A copy of the export whose annotations file is `document` (or raw `text`)."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "images").symlink_to(export / "images")
    (folder / "annotations.json").write_text(text if text is not None else json.dumps(document))
    return folder


def changed(document, section, index, field, value=None, delete=False):
    result = copy.deepcopy(document)
    if delete:
        del result[section][index][field]
    else:
        result[section][index][field] = value
    return result


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d, None),
    (lambda d: {k: v for k, v in d.items() if k != "annotations"}, "has no 'annotations' list"),
    (lambda d: {k: v for k, v in d.items() if k != "categories"}, "has no 'categories' list"),
    (lambda d: changed(d, "images", 2, "file_name", delete=True), r"images\[2\] \(id 3\) has no 'file_name'"),
    (lambda d: changed(d, "images", 0, "width", -3), r"images\[0\] \(id 1\) has 'width' = -3, expected a positive"),
    (lambda d: changed(d, "annotations", 1, "bbox", "oops"), r"annotations\[1\] \(id 2\) has 'bbox' = \"oops\", expected \[x, y"),
    (lambda d: changed(d, "annotations", 0, "bbox", delete=True), r"annotations\[0\] \(id 1\) has no 'bbox'"),
    (lambda d: changed(d, "annotations", 0, "bbox", [1, 2, -4, 5]), "width and height >= 0"),
    (lambda d: changed(d, "annotations", 0, "category_id", 99), "has category 99, which 'categories' does not list"),
    (lambda d: changed(d, "annotations", 0, "image_id", 77), "belongs to image 77, which 'images' does not list"),
    (lambda d: changed(d, "annotations", 0, "iscrowd", "no"), "has 'iscrowd' = \"no\", expected 0 or 1"),
    (lambda d: changed(d, "annotations", 0, "segmentation", {"size": [3, 3], "counts": "00"}), "'segmentation'"),
    (lambda d: changed(d, "categories", 0, "name", 7), r"categories\[0\] \(id 1\) has 'name' = 7"),
    (lambda d: {**d, "images": []}, "lists no images"),
    (lambda d: [d], "holds a JSON list"),
])
def test_every_field_the_evaluation_reads_is_checked_and_named(tmp_path, export, document, corrupt, message):
    folder = written(tmp_path, export, corrupt(copy.deepcopy(document)))
    if message is None:
        assert len(open_dataset(folder, needs_annotations=True)) == 6
        return
    with pytest.raises(DatasetError, match=message) as caught:
        open_dataset(folder, needs_annotations=True)
    assert str(folder / "annotations.json") in str(caught.value)


def test_a_truncated_file_is_named_with_where_it_breaks(tmp_path, export, document):
    text = json.dumps(document)
    folder = written(tmp_path, export, text=text[: len(text) // 2])
    with pytest.raises(DatasetError, match=r"annotations.json is not valid JSON \(line 1, column \d+: .*\): is the file truncated"):
        open_dataset(folder)


def test_training_needs_only_the_images(tmp_path, export, document):
    folder = written(tmp_path, export, {"images": document["images"]})
    assert len(open_dataset(folder)) == 6
    with pytest.raises(DatasetError, match="has no 'categories' list"):
        open_dataset(folder, needs_annotations=True)


def test_optional_fields_take_their_coco_meaning(tmp_path, export, document):
    bare = copy.deepcopy(document)
    for annotation in bare["annotations"]:
        for name in ("area", "iscrowd", "segmentation"):
            del annotation[name]
    dataset = open_dataset(written(tmp_path, export, bare), needs_annotations=True)
    first = dataset.coco.anns[1]
    x, y, w, h = first["bbox"]
    assert first["area"] == w * h and first["iscrowd"] == 0
    assert dataset.coco.annToMask(first).sum() == pytest.approx(w * h, rel=0.3)  # the box as its mask


def test_categories_are_matched_to_the_detectors_labels_by_name(tmp_path, export, document):
    renumbered = copy.deepcopy(document)
    for category in renumbered["categories"]:
        category["id"] += 10
    for annotation in renumbered["annotations"]:
        annotation["category_id"] += 10
    dataset = open_dataset(written(tmp_path, export, renumbered), needs_annotations=True)
    dataset.use_labels({0: "N/A", 1: "circle", 2: "square", 3: "triangle", 4: "star"})
    assert dataset.categories == {"circle": 1, "square": 2, "triangle": 3, "star": 4}
    assert {a["category_id"] for a in dataset.coco.dataset["annotations"]} <= {1, 2, 3, 4}


def test_an_unknown_category_is_named_and_can_be_skipped(tmp_path, export, document):
    folder = written(tmp_path, export, document)
    labels = {0: "N/A", 1: "circle", 2: "square", 3: "triangle"}  # no star
    with pytest.raises(DatasetError, match=r"no label for the categories 'star' \(id 4\); its labels are circle, square, "
                                           r"triangle.*--skip-unknown-categories"):
        open_dataset(folder, needs_annotations=True).use_labels(labels)
    dataset = open_dataset(folder, needs_annotations=True)
    dataset.use_labels(labels, skip_unknown=True)
    assert dataset.skipped_categories == ["star"] and "star" not in dataset.categories
    assert all(a["category_id"] != 4 for a in dataset.coco.dataset["annotations"])


def test_evaluate_refuses_unknown_categories_in_one_line_and_skips_them_when_asked(tmp_path, export, document,
                                                                                    shapes_detector, capsys):
    from inversion.core.checkpoints import save_inverters
    from inversion.core.inverters import InverterConfig, InverterStack

    detector = Detector.from_pretrained(str(shapes_detector), working_size=(64, 64), name=str(shapes_detector))
    model = save_inverters(InverterStack(InverterConfig.for_detector(detector)),
                           tmp_path / "inverters", detector, detector_folder=shapes_detector)
    renamed = copy.deepcopy(document)
    renamed["categories"][3]["name"] = "zebra"
    folder = written(tmp_path, export, renamed)
    arguments = ["evaluate", "--model", str(model), "--data", str(folder), "--out", str(tmp_path / "eval"),
                 "--sections", "stages"]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the weight-loading progress bar
    assert error.startswith("error: ") and "'zebra' (id 4)" in error
    assert not (tmp_path / "eval").exists()
    assert main([*arguments, "--skip-unknown-categories"]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["skipped_categories"] == ["zebra"] and "zebra" not in results["detector"]["per_class"]


def broken_copy(tmp_path, export, broken: dict[str, bytes]):
    """An image folder copied from the export, with some files replaced by `broken` bytes."""
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted((export / "images").iterdir()):
        (folder / path.name).write_bytes(broken.get(path.name, path.read_bytes()))
    return folder


def test_unreadable_images_are_left_out_of_batches_in_every_worker(tmp_path, export):
    folder = broken_copy(tmp_path, export, {"000001.png": b"not a png", "000004.png": b"\x89PNG\r\n\x1a\n trunc"})
    loader = torch.utils.data.DataLoader(SkipUnreadable(open_dataset(folder)), batch_size=3, collate_fn=collate,
                                         num_workers=2)
    batches = list(loader)
    assert [len(batch.images) for batch in batches] == [2, 2]
    assert [path.rsplit("/", 1)[-1] for batch in batches for path, _ in batch.unreadable] == ["000001.png", "000004.png"]


def test_a_run_skips_counts_and_lists_unreadable_images_and_fails_over_its_threshold(tmp_path, export, shapes_detector,
                                                                                  capsys):
    folder = broken_copy(tmp_path, export, {"000002.png": b"broken"})
    settings = dict(data=str(folder), out=str(tmp_path / "run"), detector=str(shapes_detector), working_size=(64, 64),
                    steps=3, batch_size=2, warmup_steps=0, val_every=3, save_every=3, log_every=1, val_images=2,
                    workers=2, val_fraction=0.2, max_unreadable=0.2)
    train(TrainingConfig(**settings))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (listed,) = [r["images"] for r in records if r["split"] == "unreadable"]
    assert list(listed) == [str(folder / "000002.png")] and "not an image we can read" in listed[str(folder / "000002.png")]
    assert "1 of 6 images could not be read and were skipped" in capsys.readouterr().out
    with pytest.raises(DatasetError, match=r"1 of 6 images could not be read .* more than the 10% allowed"):
        train(TrainingConfig(**{**settings, "out": str(tmp_path / "strict"), "max_unreadable": 0.1}))
