"""Reading a COCO instances file: every field the code uses checked, before any work, and its
categories mapped explicitly onto a detector's labels.

A problem is a `DatasetError` naming the file, the entry (its position and id) and the field, and
saying what was expected. Optional COCO fields get COCO's meaning when absent: `area` is the box's,
`iscrowd` is 0, and an object without `segmentation` is its box (as a polygon).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..core.errors import DatasetError

SKIP_UNKNOWN_HINT = "pass --skip-unknown-categories (in Python, skip_unknown_categories=True) to leave their objects out"


def read_coco(path: Path, needs_annotations: bool) -> dict:
    """The checked COCO document at `path`; `needs_annotations`: its objects and categories are required
    (evaluation), else only the images are (training reads pixels only)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise DatasetError(f"Cannot read the annotations file {path}: {error.strerror or error}.") from error
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f" (line {error.lineno}, column {error.colno}: {error.msg})" if isinstance(error, json.JSONDecodeError) else ""
        raise DatasetError(f"{path} is not valid JSON{where}: is the file truncated? Export it again.") from error
    if not isinstance(document, dict):
        raise DatasetError(f"{path} holds a JSON {type(document).__name__}, not a COCO object with 'images'.")
    return check_coco(document, path, needs_annotations)


def check_coco(document: dict, source: Path | str, needs_annotations: bool) -> dict:
    """The checked COCO document (see `read_coco`); `source` names where it came from in messages."""
    path = source
    checker = _Checker(path)
    images = checker.entries(document, "images", required=True)
    if not images:
        raise DatasetError(f"{path} lists no images.")
    checked = {"images": [checker.image(i, entry, needs_annotations) for i, entry in enumerate(images)]}
    checker.unique("images", checked["images"])
    required = needs_annotations
    checked["categories"] = [checker.category(i, entry)
                             for i, entry in enumerate(checker.entries(document, "categories", required))]
    checker.unique("categories", checked["categories"])
    sizes = {image["id"]: (image.get("width"), image.get("height")) for image in checked["images"]}
    known = {category["id"] for category in checked["categories"]}
    annotations = checker.entries(document, "annotations", required)
    checked["annotations"] = [checker.annotation(i, entry, sizes, known) for i, entry in enumerate(annotations)]
    checker.unique("annotations", checked["annotations"])
    return checked


def align_categories(document: dict, id2label: dict[int, str], path: Path | str, skip_unknown: bool = False) -> dict:
    """The document with its categories renumbered as the detector's labels, matched by name.

    Returns {"categories": {dataset name: detector label id}, "skipped": [names left out]}; a category the
    detector does not know is refused, naming it, unless `skip_unknown` (then its objects are left out).
    """
    label_ids: dict[str, int] = {}
    for label_id, name in sorted(id2label.items()):
        label_ids.setdefault(_name_key(name), int(label_id))
    mapping = {c["id"]: label_ids.get(_name_key(c["name"])) for c in document["categories"]}
    unknown = [c for c in document["categories"] if mapping[c["id"]] is None]
    if unknown and not skip_unknown:
        named = ", ".join(f"{c['name']!r} (id {c['id']})" for c in unknown)
        offered = ", ".join(sorted({name for name in id2label.values() if name != "N/A"}))
        raise DatasetError(f"{path}: the detector has no label for the categories {named}; its labels are {offered}. "
                           f"Rename them to the detector's labels, or {SKIP_UNKNOWN_HINT}.")
    names = {int(k): v for k, v in id2label.items()}
    claimed: dict[int, str] = {}
    for category in document["categories"]:
        label = mapping[category["id"]]
        if label is not None and claimed.setdefault(label, category["name"]) != category["name"]:
            raise DatasetError(f"{path}: the categories {claimed[label]!r} and {category['name']!r} both match the "
                               f"detector's label {names[label]!r}: merge them into one category.")
    document["categories"] = [{**c, "id": mapping[c["id"]], "name": names[mapping[c["id"]]]}
                              for c in document["categories"] if mapping[c["id"]] is not None]
    document["annotations"] = [{**a, "category_id": mapping[a["category_id"]]}
                               for a in document["annotations"] if mapping[a["category_id"]] is not None]
    return {"categories": {name: label for label, name in claimed.items()}, "skipped": [c["name"] for c in unknown]}


def _name_key(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").split())


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    """Field checks of one COCO file; each failure names the file, the entry and the field."""

    def __init__(self, path: Path | str):
        self.path = path

    def fail(self, section: str, index: int, entry: dict, message: str):
        identity = f" (id {entry['id']})" if isinstance(entry, dict) and _is_int(entry.get("id")) else ""
        raise DatasetError(f"{self.path}: {section}[{index}]{identity} {message}.")

    def entries(self, document: dict, section: str, required: bool) -> list:
        if section not in document:
            if section == "images":
                raise DatasetError(f"{self.path} has no 'images' list: it is not a COCO-format file.")
            if required:
                raise DatasetError(f"{self.path} has no '{section}' list: the evaluation needs the images' objects "
                                   "and their categories (a COCO instances file).")
            return []
        value = document[section]
        if not isinstance(value, list):
            raise DatasetError(f"{self.path}: '{section}' is a {type(value).__name__}, not a list.")
        return value

    def field(self, section: str, index: int, entry, name: str, valid, expected: str, required: bool = True):
        if not isinstance(entry, dict):
            raise DatasetError(f"{self.path}: {section}[{index}] is a {type(entry).__name__}, not an object.")
        if name not in entry:
            if required:
                self.fail(section, index, entry, f"has no '{name}' ({expected})")
            return None
        if not valid(entry[name]):
            self.fail(section, index, entry, f"has '{name}' = {_shown(entry[name])}, expected {expected}")
        return entry[name]

    def image(self, index: int, entry, needs_size: bool) -> dict:
        self.field("images", index, entry, "id", _is_int, "an integer id")
        self.field("images", index, entry, "file_name", lambda v: isinstance(v, str) and v.strip(), "a file name")
        for name in ("width", "height"):
            self.field("images", index, entry, name, lambda v: _is_int(v) and v > 0, "a positive number of pixels",
                       required=needs_size)
        return entry

    def category(self, index: int, entry) -> dict:
        self.field("categories", index, entry, "id", _is_int, "an integer id")
        self.field("categories", index, entry, "name", lambda v: isinstance(v, str) and v.strip(), "a name")
        return entry

    def annotation(self, index: int, entry, sizes: dict[int, tuple], categories: set[int]) -> dict:
        section = "annotations"
        self.field(section, index, entry, "id", _is_int, "an integer id")
        image_id = self.field(section, index, entry, "image_id", _is_int, "the integer id of an image")
        if image_id not in sizes:
            self.fail(section, index, entry, f"belongs to image {image_id}, which 'images' does not list")
        category_id = self.field(section, index, entry, "category_id", _is_int, "the integer id of a category")
        if category_id not in categories:
            self.fail(section, index, entry, f"has category {category_id}, which 'categories' does not list")
        box = self.field(section, index, entry, "bbox",
                         lambda v: isinstance(v, list) and len(v) == 4 and all(map(_is_number, v)) and min(v[2:]) >= 0,
                         "[x, y, width, height] in pixels, width and height >= 0")
        area = self.field(section, index, entry, "area", lambda v: _is_number(v) and v >= 0, "a number >= 0",
                          required=False)
        crowd = self.field(section, index, entry, "iscrowd", lambda v: v in (0, 1) and not isinstance(v, float),
                           "0 or 1", required=False)
        width, height = sizes[image_id]
        segmentation = self.field(section, index, entry, "segmentation", lambda v: _valid_segmentation(v, width, height),
                                  "polygons [[x, y, ...], ...] or an RLE {size: [height, width], counts} of the "
                                  "image's size", required=False)
        x, y, w, h = box
        return {**entry, "area": w * h if area is None else area, "iscrowd": crowd or 0,
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]] if segmentation is None else segmentation}

    def unique(self, section: str, entries: list[dict]) -> None:
        seen: set[int] = set()
        for index, entry in enumerate(entries):
            if entry["id"] in seen:
                self.fail(section, index, entry, "repeats an id used by an earlier entry")
            seen.add(entry["id"])


def _valid_segmentation(value, width, height) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0
                                   and all(map(_is_number, polygon)) for polygon in value)
    if isinstance(value, dict):
        counts, size = value.get("counts"), value.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(side) and side > 0 for side in size)):
            return False
        if None not in (width, height) and size != [height, width]:
            return False
        runs = _rle_runs(counts) if isinstance(counts, str) else counts
        # pycocotools decodes into a height x width buffer without bounds checks: the runs must fill it exactly
        return isinstance(runs, list) and all(_is_int(c) and c >= 0 for c in runs) and sum(runs) == size[0] * size[1]
    return False


def _rle_runs(text: str) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (None when it is malformed): 5 bits per character
    from '0', a continuation bit, a sign bit on the last, and runs after the second stored as differences."""
    runs: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text) or not 48 <= ord(text[position]) < 48 + 64:
                return None
            code = ord(text[position]) - 48
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            position += 1
            shift += 1
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
    return runs


def _shown(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
