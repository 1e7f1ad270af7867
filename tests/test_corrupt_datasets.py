"""Random corruptions of a small COCO export (missing, retyped and out-of-range fields, truncated files, bad
images) through `evaluate` and `train`: each ends in a completed run or one clear `error:` line, never a traceback."""

import copy
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import DetrForObjectDetection

from inversion.__main__ import main
from inversion.core.checkpoints import save_inverters
from inversion.core.detector import Detector
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.shapes.world import export_coco
from inversion.testing import random_image, tiny_shapes_detr_config

EXAMPLES = 40
IMAGES = 4
FIELDS = {
    "images": ("id", "file_name", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"),
    "categories": ("id", "name"),
}
ODD_VALUES = (None, "oops", "", -1, 0, 99, 10**12, 2.5, float("nan"), True, [], [1, 2], [0, 0, -3, 4], {}, {"size": [1]})
runs = {"examples": 0, "completed": 0, "refused": 0}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 4-image Shapes export at 64 pixels, and random inverters for a tiny random DETR with the Shapes labels."""
    root = tmp_path_factory.mktemp("corrupt-world")
    export_coco(root / "data", n=IMAGES, seed=9, size=64)
    config = tiny_shapes_detr_config()
    torch.manual_seed(0)
    detector = Detector(DetrForObjectDetection(config), working_size=(64, 64), name="tiny-shapes-detr")
    detector.model.save_pretrained(root / "detector")
    stack = InverterStack(InverterConfig.for_detector(detector))
    save_inverters(stack, root / "inverters", detector, detector_folder=root / "detector")
    return root


section = st.sampled_from(sorted(FIELDS))
field_corruption = section.flatmap(lambda name: st.tuples(
    st.just(name), st.integers(0, 5), st.sampled_from(FIELDS[name]),
    st.one_of(st.just("delete"), st.sampled_from(ODD_VALUES).map(lambda value: ("set", value)))))
fields = field_corruption.map(lambda spec: ("field", spec))
images = st.tuples(st.integers(0, IMAGES - 1), st.sampled_from(["garbage", "truncated", "missing", "resized", "empty"])
                   ).map(lambda spec: ("image", spec))
corruption = st.one_of(
    fields, fields, fields,  # (one_of draws its branches alike: fields, the most varied, three times as often)
    st.sampled_from(sorted(FIELDS)).map(lambda name: ("drop section", name)),
    st.sampled_from(["images", "annotations", "categories"]).map(lambda name: ("retype section", name)),
    st.floats(0.05, 0.95).map(lambda share: ("truncate", share)),
    images, images,
)


def corrupt(folder: Path, document: dict, corruptions: list) -> None:
    """Write `document` with `corruptions` applied into `folder`/annotations.json, and damage images as told."""
    document = copy.deepcopy(document)
    truncate = None
    for kind, spec in corruptions:
        if kind == "field":
            name, index, field, change = spec
            entries = document.get(name)
            if isinstance(entries, list) and entries:
                entry = entries[index % len(entries)]
                if change == "delete":
                    entry.pop(field, None)
                else:
                    entry[field] = change[1]
        elif kind == "drop section":
            document.pop(spec, None)
        elif kind == "retype section":
            document[spec] = {"not": "a list"}
        elif kind == "truncate":
            truncate = spec
        else:
            index, damage = spec
            path = folder / "images" / f"{index:06d}.png"
            if damage == "missing":
                path.unlink(missing_ok=True)
            elif damage == "garbage":
                path.write_bytes(b"\x00\x01 not an image")
            elif damage == "empty":
                path.write_bytes(b"")
            elif damage == "truncated" and path.exists():
                path.write_bytes(path.read_bytes()[:60])
            elif damage == "resized":
                buffer = io.BytesIO()
                random_image(40, 50, seed=index).save(buffer, format="PNG")
                path.write_bytes(buffer.getvalue())
    text = json.dumps(document)
    (folder / "annotations.json").write_text(text if truncate is None else text[: int(len(text) * truncate)])


def outcome(code: int, err: str) -> str:
    """'completed' or 'refused'; anything else fails the test."""
    lines = err.strip().splitlines()
    if code == 0:
        return "completed"
    assert code == 2 and lines and lines[-1].startswith("error: "), err[-2000:]
    assert "Traceback" not in err
    return "refused"


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(corruptions=st.lists(corruption, min_size=1, max_size=3))
def test_a_corrupted_dataset_is_refused_clearly_or_used(world, capsys, corruptions):
    document = json.loads((world / "data" / "annotations.json").read_text())
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "data"
        shutil.copytree(world / "data" / "images", folder / "images")
        corrupt(folder, document, corruptions)
        capsys.readouterr()
        code = main(["evaluate", "--model", str(world / "inverters"), "--data", str(folder), "--out",
                     str(Path(scratch) / "eval"), "--sections", "stages", "--batch-size", "4", "--max-unreadable", "0.5"])
        results = [outcome(code, capsys.readouterr().err)]
        code = main(["train", "--model", str(world / "inverters"), "--data", str(folder), "--out", str(Path(scratch) / "run"),
                     "--steps", "1", "--batch-size", "2", "--workers", "0", "--val-images", "1", "--val-fraction", "0.25",
                     "--max-unreadable", "0.5"])
        results.append(outcome(code, capsys.readouterr().err))
    runs["examples"] += 1
    for result in results:
        runs[result] += 1


@pytest.mark.slow
def test_the_corruptions_were_run_and_some_were_refused():
    """Runs after the property (file order): it ran its examples, and they exercised both outcomes."""
    assert runs["examples"] == EXAMPLES, runs
    assert runs["refused"] > 0 and runs["completed"] > 0, runs
    print(f"corrupted datasets: {runs}")
