"""The stage vocabulary of a detection transformer's forward pass and the container that holds one capture.

A DETR maps an image through four modules; each inverse module maps one stage back to the
previous one. The names below are shared by the detector, the inverters, the trainer and the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

# The forward stages, in the order DETR computes them. Each is also the name of the inverse
# module that takes that stage's tensor as input.
STAGES: tuple[str, ...] = ("backbone", "encoder", "decoder", "prediction")


def check_stage(stage: str) -> str:
    """Return `stage` if it is a known stage name, else raise a ValueError naming the choices."""
    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}: choose one of {', '.join(STAGES)}.")
    return stage


@dataclass(frozen=True)
class Source:
    """A tensor to reconstruct from: a stage (and layer), fed to the inverse made for `entry`.

    Source("decoder") inverts the final decoder output through its own chain;
    Source("encoder", 3) treats encoder layer 3 as if it were the final encoder output;
    Source("encoder", 3, entry="backbone") feeds it straight to the inverse backbone.
    """

    stage: str
    layer: int | None = None
    entry: str | None = None

    def __post_init__(self):
        check_stage(self.stage)
        if self.entry is not None:
            check_stage(self.entry)
        if self.layer is not None and self.stage not in ("encoder", "decoder"):
            raise ValueError(f"Only encoder and decoder have layers; got a layer for {self.stage!r}.")
        if self.inverse != self.stage and (self.stage, self.inverse) != ("encoder", "backbone"):
            raise ValueError(
                f"A {self.stage} tensor cannot be fed to the {self.inverse} inverse: shapes differ. "
                "Encoder layers can go to the backbone or encoder inverse, decoder layers to the decoder inverse."
            )

    @property
    def inverse(self) -> str:
        """The inverse module this tensor enters."""
        return self.entry or self.stage

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. 'encoder 3 as backbone'."""
        text = self.stage if self.layer is None else f"{self.stage} {self.layer}"
        return text if self.inverse == self.stage else f"{text} as {self.inverse}"


STAGE_SOURCES: tuple[Source, ...] = tuple(Source(stage) for stage in STAGES)  # each stage's final output


def layer_sources(representations: Representations) -> list[Source]:
    """Every encoder and decoder layer, each through the inverse chain of its own stage."""
    return [Source("encoder", layer) for layer in range(len(representations.encoder))] + [
        Source("decoder", layer) for layer in range(len(representations.decoder))
    ]


@dataclass
class Detection:
    """One detected object, with its box in the original image's pixels (x0, y0, x1, y1)."""

    label: str
    label_id: int
    score: float
    box: tuple[float, float, float, float]


@dataclass
class Representations:
    """Everything one DETR forward pass computes for a batch of B images.

    backbone: projected backbone map, B x d x h x w (the encoder's input, before flattening): the feature
        grid. Multi-scale families read several maps; this is the finest, the others are `extra_levels`.
    encoder: L_enc + 1 tensors of B x N x d; entry 0 is the flattened projected backbone (every level,
        finest first: N = hw for single-scale families).
    decoder: L_dec + 1 tensors of B x Q x d, each after the decoder's shared layer norm;
        entry 0 is the zero queries, the last entry is what the detection heads consume.
    logits: B x Q x (classes + 1), the last class being "no object"; boxes: B x Q x 4 (cx, cy, w, h).
    grid_mask: B x h x w, True where the feature grid covers the image (False on padding).
    pixels: the working canvas in [0, 1], B x 3 x H x W (the image fitted inside, padding zero).
    content_sizes: (height, width) of each image inside the canvas.
    original_sizes: (height, width) of each image as given.
    detections: the post-processed detections of each image.
    encoder_attention, cross_attention: by layer number (1..L), the encoder's self-attention
        (B x heads x hw x hw) and the decoder's cross-attention over the encoder tokens (B x heads x Q x hw),
        when the forward recorded them (empty otherwise). Both are over `attention_grid`, hw cells: deformable
        attention's sampling points of every level are spread onto it, weighted by their attention.
    extra_levels: the coarser maps of a multi-scale family (B x d x h_l x w_l, finer first); empty otherwise.
    attention_level: the level whose grid the attention maps are over (0, the feature grid, unless a multi-scale
        family's grid is too fine for cell-to-cell maps).
    """

    backbone: torch.Tensor
    encoder: list[torch.Tensor]
    decoder: list[torch.Tensor]
    logits: torch.Tensor
    boxes: torch.Tensor
    grid_mask: torch.Tensor
    pixels: torch.Tensor
    content_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]
    detections: list[list[Detection]] = field(default_factory=list)
    encoder_attention: dict[int, torch.Tensor] = field(default_factory=dict)
    cross_attention: dict[int, torch.Tensor] = field(default_factory=dict)
    extra_levels: list[torch.Tensor] = field(default_factory=list)
    attention_level: int = 0

    @property
    def attention_grid(self) -> tuple[int, int]:
        """The grid (h, w) the attention maps are over: the feature grid, or for a multi-scale family one of its
        coarser levels (`attention_level`)."""
        return tuple(self.levels[self.attention_level].shape[-2:])

    @property
    def levels(self) -> list[torch.Tensor]:
        """Every backbone map the encoder reads, finest (the grid) first."""
        return [self.backbone, *self.extra_levels]

    @property
    def level_masks(self) -> list[torch.Tensor]:
        """B x h_l x w_l per level: True where it covers the image (coarser levels: the grid mask, nearest)."""
        return [self.grid_mask] + [
            nn.functional.interpolate(self.grid_mask[None].float(), size=level.shape[-2:])[0].bool()
            for level in self.extra_levels
        ]

    @property
    def token_mask(self) -> torch.Tensor:
        """B x N: True for the encoder tokens that cover the image, every level in order."""
        return torch.cat([mask.flatten(1) for mask in self.level_masks], 1)

    @property
    def grid_size(self) -> tuple[int, int]:
        """The feature grid (h, w), read from the captured backbone map."""
        return tuple(self.backbone.shape[-2:])

    @property
    def pixel_mask(self) -> torch.Tensor:
        """B x H x W: 1 on each image's content in the canvas (top left), 0 on its padding."""
        mask = torch.zeros(self.pixels.shape[0], *self.pixels.shape[-2:], dtype=torch.long, device=self.pixels.device)
        for index, (height, width) in enumerate(self.content_sizes):
            mask[index, :height, :width] = 1
        return mask

    @property
    def batch_size(self) -> int:
        return self.backbone.shape[0]

    def tensor(self, source: Source) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | list[torch.Tensor]:
        """The captured tensor a source names: a layer's output, or a stage's final output (a multi-scale
        backbone: the list of its levels)."""
        if source.stage == "backbone":
            return self.levels if self.extra_levels else self.backbone
        if source.stage == "prediction":
            return self.logits, self.boxes
        layers = self.encoder if source.stage == "encoder" else self.decoder
        layer = len(layers) - 1 if source.layer is None else source.layer
        if not 0 <= layer < len(layers):
            raise ValueError(f"{source.stage} has layers 0 to {len(layers) - 1}; got layer {layer}.")
        return layers[layer]

    @classmethod
    def concat(cls, parts: list[Representations]) -> Representations:
        """Captures at the same working size as one batch (their reconstructions then share one cascade)."""
        return cls(
            backbone=torch.cat([part.backbone for part in parts]),
            encoder=[torch.cat(layer) for layer in zip(*(part.encoder for part in parts))],
            decoder=[torch.cat(layer) for layer in zip(*(part.decoder for part in parts))],
            logits=torch.cat([part.logits for part in parts]),
            boxes=torch.cat([part.boxes for part in parts]),
            grid_mask=torch.cat([part.grid_mask for part in parts]),
            pixels=torch.cat([part.pixels for part in parts]),
            content_sizes=[size for part in parts for size in part.content_sizes],
            original_sizes=[size for part in parts for size in part.original_sizes],
            detections=[found for part in parts for found in part.detections],
            extra_levels=[torch.cat(level) for level in zip(*(part.extra_levels for part in parts))],
            attention_level=parts[0].attention_level,
        )


def tokens_to_levels(tokens: torch.Tensor, masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """B x N x d tokens of every level (finest first) as maps B x d x h_l x w_l shaped like `masks`."""
    sizes = [mask.shape[-2:] for mask in masks]
    parts = tokens.split([height * width for height, width in sizes], dim=1)
    return [part.transpose(1, 2).reshape(len(part), -1, *size) for part, size in zip(parts, sizes)]
