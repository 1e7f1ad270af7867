"""COCO box AP of detections against a COCO ground truth (pycocotools), and DETR outputs as detections."""

from __future__ import annotations

import contextlib
import io

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def coco_from_dict(dataset: dict) -> COCO:
    """A pycocotools COCO index over an in-memory COCO dict, without its prints."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_ap(coco_gt: COCO, detections: list[dict]) -> dict:
    """Box AP@[.5:.95], AP@.5 and per-class AP@[.5:.95] (by category name) over all images of `coco_gt`.

    `detections`: dicts with image_id, category_id, bbox [x, y, w, h] in pixels and score.
    No detections at all gives AP 0.
    """
    names = {c["id"]: c["name"] for c in coco_gt.loadCats(coco_gt.getCatIds())}
    if not detections:
        return {"AP": 0.0, "AP50": 0.0, "per_class": {name: 0.0 for name in names.values()}}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([{k: d[k] for k in ("image_id", "category_id", "bbox", "score")} for d in detections])
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = sorted(coco_gt.getImgIds())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # precision: [iou thresholds, recall points, categories, area ranges, max dets]; -1 = no data
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        valid = precision[:, :, k][precision[:, :, k] > -1]
        per_class[names[cat_id]] = float(valid.mean()) if valid.size else 0.0
    return {"AP": float(max(evaluator.stats[0], 0.0)), "AP50": float(max(evaluator.stats[1], 0.0)), "per_class": per_class}


def detections_from_outputs(
    probabilities: torch.Tensor, pred_boxes: torch.Tensor, image_ids: list[int], sizes: list[tuple[int, int]]
) -> list[dict]:
    """One detection per query: its most likely class, with that probability.

    probabilities: B x Q x labels (`Detector.class_probabilities`: softmax without "no object", or
    sigmoid); pred_boxes: B x Q x 4 (cx, cy, w, h in [0, 1]);
    sizes: (height, width) of each image in pixels. The label id is used as the COCO
    category id. No score threshold, since AP needs the full ranking.
    """
    scores, labels = probabilities.max(-1)
    cx, cy, w, h = pred_boxes.unbind(-1)
    detections = []
    for b, (image_id, (height, width)) in enumerate(zip(image_ids, sizes)):
        xywh = torch.stack([(cx[b] - w[b] / 2) * width, (cy[b] - h[b] / 2) * height, w[b] * width, h[b] * height], -1)
        for score, label, box in zip(scores[b].tolist(), labels[b].tolist(), xywh.tolist()):
            detections.append({"image_id": image_id, "category_id": label, "bbox": box, "score": score})
    return detections

