"""Where image pixels fall on DETR's feature grid: points to cells, boxes to the cells they cover.

Coordinates are in the original image's pixels (as detections are); the image was scaled into the
canvas's top-left corner, and the canvas is split evenly into the grid's h x w cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.stages import Representations

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class CellBlock:
    """A rectangle of grid cells: rows top..bottom-1, columns left..right-1."""

    top: int
    left: int
    bottom: int
    right: int

    def moved(self, rows: int, columns: int) -> CellBlock:
        return CellBlock(self.top + rows, self.left + columns, self.bottom + rows, self.right + columns)

    def slices(self) -> tuple[slice, slice]:
        """Index a ... x h x w tensor with `tensor[..., *block.slices()]`."""
        return slice(self.top, self.bottom), slice(self.left, self.right)

    def inside(self, grid_size: tuple[int, int]) -> bool:
        return self.top >= 0 and self.left >= 0 and self.bottom <= grid_size[0] and self.right <= grid_size[1]


def canvas_scale(representations: Representations, image: int) -> tuple[float, float]:
    """Canvas pixels per original pixel, (x, y)."""
    (content_height, content_width), (height, width) = representations.content_sizes[image], representations.original_sizes[image]
    return content_width / width, content_height / height


def cell_size(representations: Representations, grid: tuple[int, int] | None = None) -> tuple[float, float]:
    """A grid cell's (width, height) in canvas pixels (`grid`: another grid over the canvas than the feature grid)."""
    (canvas_height, canvas_width), (rows, columns) = representations.pixels.shape[-2:], grid or representations.grid_size
    return canvas_width / columns, canvas_height / rows


def point_cell(representations: Representations, image: int, point: tuple[float, float],
               grid: tuple[int, int] | None = None) -> tuple[int, int]:
    """The (row, column) of the cell under an (x, y) point of the original image (clamped to the grid, or `grid`)."""
    (scale_x, scale_y), (cell_width, cell_height) = canvas_scale(representations, image), cell_size(representations, grid)
    rows, columns = grid or representations.grid_size
    row = min(rows - 1, max(0, int(point[1] * scale_y // cell_height)))
    column = min(columns - 1, max(0, int(point[0] * scale_x // cell_width)))
    return row, column


def box_coverage(representations: Representations, image: int, box: Box, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """h x w: the share of each cell's area that lies inside `box` (original pixels), on the feature grid or `grid`."""
    (scale_x, scale_y), (cell_width, cell_height) = canvas_scale(representations, image), cell_size(representations, grid)
    rows, columns = grid or representations.grid_size
    across = _overlaps(box[0] * scale_x / cell_width, box[2] * scale_x / cell_width, columns)
    down = _overlaps(box[1] * scale_y / cell_height, box[3] * scale_y / cell_height, rows)
    return down[:, None] * across[None, :]


def box_cells(representations: Representations, image: int, box: Box) -> CellBlock:
    """The block of cells a box (original pixels) touches, clipped to the grid."""
    touched = box_coverage(representations, image, box) > 0
    rows, columns = touched.any(1).nonzero().flatten(), touched.any(0).nonzero().flatten()
    if len(rows) == 0 or len(columns) == 0:
        raise ValueError(f"The box {tuple(round(v, 1) for v in box)} lies outside the image.")
    return CellBlock(int(rows[0]), int(columns[0]), int(rows[-1]) + 1, int(columns[-1]) + 1)


def move_box(box: Box, rows: int, columns: int, source: tuple[Representations, int], target: tuple[Representations, int]) -> Box:
    """A box of the source image moved by whole cells, in the target image's original pixels."""
    (source_x, source_y), (target_x, target_y) = canvas_scale(*source), canvas_scale(*target)
    cell_width, cell_height = cell_size(source[0])
    x0, y0, x1, y1 = box
    return ((x0 * source_x + columns * cell_width) / target_x, (y0 * source_y + rows * cell_height) / target_y,
            (x1 * source_x + columns * cell_width) / target_x, (y1 * source_y + rows * cell_height) / target_y)


def _overlaps(start: float, end: float, count: int) -> torch.Tensor:
    """How much of each unit interval [i, i+1), i < count, lies inside [start, end]."""
    edges = torch.arange(count, dtype=torch.float64)
    return (torch.minimum(edges + 1, torch.tensor(end)) - torch.maximum(edges, torch.tensor(start))).clamp(min=0).float()
