"""Interventions on DETR's representations, each followed by the rest of DETR and its detections.

- feature transplant: the tokens of image A inside one of its detections' boxes (the grid cells the
  box touches) are pasted into image B's representation, at the same cells or moved by whole
  cells, at the backbone map (the encoder then mixes them with B's context) or at the encoder
  output (only the decoder runs; its object queries are learned and the same for every image, so
  everything image-specific it reads comes from this memory);
- layer skip: one encoder or decoder layer replaced by the identity.

Both return the changed `Representations`, so a caller with inverters can reconstruct them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.detector import Detector
from ..core.errors import UserFacingError
from ..core.rerun import run_from
from ..core.stages import Detection, Representations, tokens_to_levels
from .grid import Box, CellBlock, box_cells, move_box
from .matching import MATCH_IOU, DetectionChange, iou, match_detections

TRANSPLANT_STAGES = ("backbone", "encoder")  # the projected backbone map, or the encoder output (memory)


@dataclass
class Transplant:
    """Image B after receiving the tokens of one of image A's objects."""

    representations: Representations  # image B (a batch of one) after the transplant, every stage
    stage: str
    source_cells: CellBlock  # the cells copied from A
    target_cells: CellBlock  # where they went in B
    label: str  # the transplanted detection's label
    expected_box: Box  # its box moved to the new place, in B's original pixels
    found: Detection | None  # B's detection at the new place (IoU >= 0.5), preferring the same label
    changes: list[DetectionChange]  # B's detections before and after; `found` among the `after`s

    @property
    def found_with_label(self) -> bool:
        """Is the object detected at its new place with its label?"""
        return self.found is not None and self.found.label == self.label


@dataclass
class LayerSkip:
    """Every image of a batch with one layer skipped, and what became of each detection."""

    representations: Representations
    changes: list[list[DetectionChange]]  # per image: the unmodified run's detections before and after


def transplant(
    detector: Detector,
    source: Representations,
    target: Representations,
    detection: Detection,
    stage: str = "encoder",
    offset: tuple[int, int] = (0, 0),
    source_image: int = 0,
    target_image: int = 0,
) -> Transplant:
    """Paste the tokens under `detection`'s box of A (`source`) into B (`target`), moved by `offset`
    (rows, columns) grid cells, at `stage` ("backbone" or "encoder"), and run the rest of DETR on B."""
    if stage not in TRANSPLANT_STAGES:
        raise ValueError(f"Transplant at {stage!r}? Choose one of {', '.join(TRANSPLANT_STAGES)}.")
    a, b = one_image(source, source_image), one_image(target, target_image)
    if a.grid_size != b.grid_size:
        raise ValueError(f"Both images need the same feature grid; got {a.grid_size} and {b.grid_size}.")
    cells = box_cells(a, 0, detection.box)
    moved = cells.moved(*offset)
    if not moved.inside(b.grid_size) or not b.grid_mask[0][moved.slices()].all():
        raise UserFacingError(f"The box's cells, moved by {offset[0]} rows and {offset[1]} columns, would leave the image "
                              "receiving them (image B, its padding included): move them less far.")
    if stage == "backbone":
        after = run_from(detector, b, backbone=paste_levels(a.levels, b.levels, cells, moved))
    else:
        pasted = paste_levels(tokens_to_levels(a.encoder[-1], a.level_masks), tokens_to_levels(b.encoder[-1], b.level_masks),
                              cells, moved)
        after = run_from(detector, b, memory=torch.cat([_tokens(level) for level in pasted], 1))
    expected = move_box(detection.box, *offset, (a, 0), (b, 0))
    found = found_at(after.detections[0], expected, detection.label)
    return Transplant(after, stage, cells, moved, detection.label, expected, found, match_detections(b.detections[0], after.detections[0]))


def skip_layer(detector: Detector, base: Representations, stage: str, layer: int) -> LayerSkip:
    """Run DETR again on `base` with encoder or decoder `layer` (1..L) skipped; compare the detections."""
    if stage not in ("encoder", "decoder"):
        raise ValueError(f"Only encoder and decoder layers can be skipped; got {stage!r}.")
    after = run_from(detector, base, **{f"skip_{stage}": (layer,)})
    return LayerSkip(after, [match_detections(before, now) for before, now in zip(base.detections, after.detections)])


def paste(source_map: torch.Tensor, target_map: torch.Tensor, cells: CellBlock, moved: CellBlock) -> torch.Tensor:
    """A copy of a 1 x d x h x w target map with the source map's `cells` written at `moved`."""
    changed = target_map.clone()
    changed[..., moved.slices()[0], moved.slices()[1]] = source_map[..., cells.slices()[0], cells.slices()[1]]
    return changed


def paste_levels(source_levels: list[torch.Tensor], target_levels: list[torch.Tensor], cells: CellBlock,
                 moved: CellBlock) -> list[torch.Tensor]:
    """`paste` on every level of a multi-scale stage (finest first, the grid): each coarser level pastes the
    cells covering the same part of the image, moved by the same distance (rounded to its cells)."""
    grid_height, grid_width = target_levels[0].shape[-2:]
    pasted = []
    for source_map, target_map in zip(source_levels, target_levels):
        height, width = target_map.shape[-2:]
        scale_y, scale_x = height / grid_height, width / grid_width
        top, left = math.floor(cells.top * scale_y), math.floor(cells.left * scale_x)
        block = CellBlock(top, left, max(top + 1, math.ceil(cells.bottom * scale_y)), max(left + 1, math.ceil(cells.right * scale_x)))
        rows, columns = round((moved.top - cells.top) * scale_y), round((moved.left - cells.left) * scale_x)
        # clip the block so that it and its moved copy stay on this level's grid
        block = CellBlock(max(block.top, -rows, 0), max(block.left, -columns, 0),
                          min(block.bottom, height - rows, height), min(block.right, width - columns, width))
        pasted.append(paste(source_map, target_map, block, block.moved(rows, columns))
                      if block.bottom > block.top and block.right > block.left else target_map)
    return pasted


def found_at(detections: list[Detection], box: Box, label: str) -> Detection | None:
    """The detection at `box` (IoU >= MATCH_IOU): the best-overlapping one with `label`, else the best-overlapping one."""
    near = [detection for detection in detections if iou(detection.box, box) >= MATCH_IOU]
    return max(near, key=lambda detection: (detection.label == label, iou(detection.box, box)), default=None)


def one_image(representations: Representations, index: int) -> Representations:
    """Image `index` of a batch as a batch of one."""
    part = slice(index, index + 1)
    return Representations(
        backbone=representations.backbone[part],
        encoder=[layer[part] for layer in representations.encoder],
        decoder=[layer[part] for layer in representations.decoder],
        logits=representations.logits[part],
        boxes=representations.boxes[part],
        grid_mask=representations.grid_mask[part],
        pixels=representations.pixels[part],
        content_sizes=representations.content_sizes[part],
        original_sizes=representations.original_sizes[part],
        detections=representations.detections[part],
        extra_levels=[level[part] for level in representations.extra_levels],
        attention_level=representations.attention_level,
    )


def _tokens(grid_map: torch.Tensor) -> torch.Tensor:
    """A B x d x h x w map as B x hw x d tokens."""
    return grid_map.flatten(2).transpose(1, 2)
