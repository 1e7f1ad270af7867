"""The four inverse modules, one per DETR module, and the stack that chains them down to pixels.

Each inverse maps one stage back to the previous one (docs/method.md, "Inverse modules"):

    prediction --InversePrediction--> decoder --InverseDecoder--> encoder
               --InverseEncoder--> backbone --InverseBackbone--> image

The transformer inverses are built from the same layers DETR itself uses (transformers'
DetrEncoderLayer and DetrDecoderLayer), sized from the detector's config, with DETR's sine
position encoding and padding mask, so a tiny test config and DETR-R50 share one code path.

Multi-scale families (`levels` > 1) read several backbone maps, finest first, each half the size of
the one before. Their encoder tokens are every level's cells in order; the inverse encoder and decoder
give each token its level's sine position plus a learned level embedding (as the forward model does),
and the inverse backbone fuses the levels top-down (coarsest upsampled into the next, as in an FPN)
before upsampling the finest to pixels. The masks the modules take are one per level (a single
grid mask for single-scale stacks).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import DetrConfig
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.detr.modeling_detr import DetrDecoderLayer, DetrEncoderLayer, DetrSinePositionEmbedding

from .errors import UserFacingError
from .stages import STAGES, tokens_to_levels

if TYPE_CHECKING:
    from .detector import Detector


@dataclass
class InverterConfig:
    """Every hyper-parameter of an inverter stack (saved with its weights)."""

    d_model: int = 256
    num_queries: int = 100
    num_logits: int = 92  # classes + "no object"
    stride: int = 32  # image pixels per feature-grid cell
    encoder_layers: int = 6
    decoder_layers: int = 6
    attention_heads: int = 8
    ffn_dim: int = 2048
    backbone_widths: list[int] = field(default_factory=list)  # channels of each level, grid first
    prediction_hidden: list[int] = field(default_factory=lambda: [512, 256])
    prediction_input: str = "onehot"  # or "probabilities"
    class_scores: str = "softmax"  # how the detector scores classes: "softmax" (with "no object") or "sigmoid"
    backbone_architecture: str = "pixel_shuffle"  # or "upconv": the reference's heavy decoder, for comparison
    levels: int = 1  # backbone maps (multi-scale families: finest first, each half the size of the previous)

    def __post_init__(self):
        steps = math.log2(self.stride)
        if steps != int(steps) or steps < 1:
            raise UserFacingError(f"The backbone stride must be a power of two >= 2, got {self.stride}.")
        if not self.backbone_widths:
            self.backbone_widths = default_backbone_widths(self.d_model, int(steps))
        if len(self.backbone_widths) != int(steps):
            raise UserFacingError(
                f"backbone_widths has {len(self.backbone_widths)} entries; stride {self.stride} needs {int(steps)} "
                "(channels per level, grid first, one per x2 step)."
            )
        unnormalisable = [width for width in self.backbone_widths[1:] if width < 4 or width % norm_groups(width)]
        if unnormalisable:
            raise UserFacingError(f"backbone_widths {unnormalisable} cannot be group-normalised: give every level after "
                                  "the first at least 4 channels, a multiple of 8 from 32 up (e.g. 384 192 96 48 24).")
        if self.class_scores not in ("softmax", "sigmoid"):
            raise UserFacingError(f"class_scores must be 'softmax' or 'sigmoid', got {self.class_scores!r}.")
        if self.prediction_input not in ("onehot", "probabilities"):
            raise UserFacingError(f"prediction_input must be 'onehot' or 'probabilities', got {self.prediction_input!r}.")
        if self.levels < 1:
            raise UserFacingError(f"levels must be at least 1, got {self.levels}.")
        if self.backbone_architecture not in BACKBONE_ARCHITECTURES:
            raise UserFacingError(f"backbone_architecture must be one of {', '.join(BACKBONE_ARCHITECTURES)}, "
                                  f"got {self.backbone_architecture!r}.")

    @classmethod
    def for_detector(cls, detector: Detector, **overrides) -> InverterConfig:
        """An inverter config mirroring a detector's sizes (overrides change any field).

        Detectors with sigmoid classes have no "no object" logit, so a one-hot of the best class would
        call every query an object: their inverse prediction reads the class probabilities instead.
        """
        sizes = detector.family.sizes(detector.config)
        sigmoid = detector.family.sigmoid_classes
        mirrored = dict(
            d_model=sizes.d_model,
            num_queries=sizes.num_queries,
            num_logits=sizes.num_logits,
            stride=detector.stride,
            encoder_layers=sizes.encoder_layers,
            decoder_layers=sizes.decoder_layers,
            attention_heads=sizes.attention_heads,
            ffn_dim=sizes.ffn_dim,
            class_scores="sigmoid" if sigmoid else "softmax",
            prediction_input="probabilities" if sigmoid else "onehot",
            levels=sizes.levels,
        )
        return cls(**{**mirrored, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)

    def transformer_config(self) -> DetrConfig:
        """A DetrConfig holding the sizes the transformer inverses need (no dropout)."""
        return DetrConfig(
            use_timm_backbone=False,
            use_pretrained_backbone=False,
            d_model=self.d_model,
            encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers,
            encoder_attention_heads=self.attention_heads,
            decoder_attention_heads=self.attention_heads,
            encoder_ffn_dim=self.ffn_dim,
            decoder_ffn_dim=self.ffn_dim,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            attn_implementation="sdpa",
        )


def default_backbone_widths(d_model: int, steps: int) -> list[int]:
    """Channels of each resolution level: d_model at the grid, halving per x2 step, never below 16."""
    return [max(16, d_model // 2**step) for step in range(steps)]


def norm_groups(channels: int) -> int:
    """Group-norm groups of an up-sampling step's `channels`: 8, or one per 4 channels below 32."""
    return min(8, channels // 4)


class UpBlock(nn.Module):
    """Double the resolution by pixel shuffle, then refine with a residual pair of 3x3 convs."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.expand = nn.Conv2d(in_channels, 4 * out_channels, kernel_size=1)
        self.shuffle = nn.PixelShuffle(2)
        self.refine = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.GroupNorm(norm_groups(out_channels), out_channels),
            nn.GELU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shuffle(self.expand(x))
        return x + self.refine(x)


Masks = torch.Tensor | list[torch.Tensor]  # a grid mask (B x h x w), or one per level, finest first


def as_list(masks: Masks) -> list[torch.Tensor]:
    """The masks of every level (a lone grid mask is the only level)."""
    return [masks] if torch.is_tensor(masks) else list(masks)


class LevelFusion(nn.Module):
    """Backbone levels (finest first) -> one map at the finest: each level through a 1x1 conv, summed top-down
    from the coarsest (nearest upsampling), as in a feature pyramid. One level passes through unchanged."""

    def __init__(self, config: InverterConfig):
        super().__init__()
        count = config.levels if config.levels > 1 else 0
        self.laterals = nn.ModuleList(nn.Conv2d(config.d_model, config.d_model, kernel_size=1) for _ in range(count))

    def forward(self, levels: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        levels = [levels] if torch.is_tensor(levels) else list(levels)
        if not self.laterals:
            return levels[0]
        fused = self.laterals[-1](levels[-1])
        for lateral, level in zip(reversed(self.laterals[:-1]), reversed(levels[:-1])):
            fused = nn.functional.interpolate(fused, size=level.shape[-2:], mode="nearest") + lateral(level)
        return fused


class InverseBackbone(nn.Module):
    """Backbone map (B x d x h x w; or every level, fused top-down) -> image (B x 3 x stride*h x stride*w) in [0, 1].

    Progressive pixel-shuffle up-sampling: a 3x3 stem at the grid, then one x2 step per halving
    of the backbone's stride, the channels halving as the resolution doubles so every level
    costs about the same; the last step goes straight to RGB (a 3x3 conv to 4 x 3 channels,
    then pixel shuffle), so no convolution runs at full resolution. Pixel shuffle (a conv to 4x
    the channels, then a depth-to-space rearrangement) learns its own up-sampling without the
    checkerboard artefacts of transposed convolutions, and the residual 3x3 pair after each step
    restores local detail. At 480x640 this costs about 6% of the DETR-R50 forward; a single
    stride-32 transposed conv (the reference's cheap variant) is blocky, and the reference's
    79 M-parameter up-conv decoder costs 1.6x the whole DETR forward.
    """

    def __init__(self, config: InverterConfig):
        super().__init__()
        widths = config.backbone_widths
        self.fusion = LevelFusion(config)
        self.stem = nn.Sequential(nn.Conv2d(config.d_model, widths[0], kernel_size=3, padding=1), nn.GELU())
        self.ups = nn.Sequential(*(UpBlock(c_in, c_out) for c_in, c_out in zip(widths, widths[1:])))
        self.to_rgb = nn.Sequential(nn.Conv2d(widths[-1], 4 * 3, kernel_size=3, padding=1), nn.PixelShuffle(2))

    def forward(self, levels: torch.Tensor | list[torch.Tensor], masks: Masks | None = None) -> torch.Tensor:
        return torch.sigmoid(self.to_rgb(self.ups(self.stem(self.fusion(levels)))))


class UpConvBackbone(nn.Module):
    """The reference code's heavy inverse backbone, for comparison: one stride-2 transposed
    convolution per halving of the stride, each followed by BatchNorm and ReLU and a 3x3
    convolution pair, channels from 4 x d_model halving per step (at least 32), then a 3x3
    convolution to RGB at full resolution."""

    def __init__(self, config: InverterConfig):
        super().__init__()
        steps = int(math.log2(config.stride))
        widths = [max(32, 4 * config.d_model // 2**step) for step in range(steps)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip([config.d_model, *widths], widths):
            layers += [nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.Conv2d(c_out, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.fusion = LevelFusion(config)
        self.ups = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(widths[-1], 3, kernel_size=3, padding=1)

    def forward(self, levels: torch.Tensor | list[torch.Tensor], masks: Masks | None = None) -> torch.Tensor:
        return torch.sigmoid(self.to_rgb(self.ups(self.fusion(levels))))


BACKBONE_ARCHITECTURES = {"pixel_shuffle": InverseBackbone, "upconv": UpConvBackbone}


def grid_position_embedding(grid_mask: torch.Tensor, d_model: int, dtype: torch.dtype) -> torch.Tensor:
    """DETR's normalised sine position encoding of a B x h x w grid, as B x hw x d tokens."""
    batch, height, width = grid_mask.shape
    position = DetrSinePositionEmbedding(d_model // 2, normalize=True)
    shape = torch.Size([batch, d_model, height, width])
    return position(shape=shape, device=grid_mask.device, dtype=dtype, mask=grid_mask).flatten(2).transpose(1, 2)


class TokenPositions(nn.Module):
    """The position of every encoder token: its level's sine encoding, plus a learned level embedding when
    there are several levels (as multi-scale detectors add theirs)."""

    def __init__(self, config: InverterConfig):
        super().__init__()
        self.level_embedding = nn.Parameter(torch.zeros(config.levels, config.d_model)) if config.levels > 1 else None

    def forward(self, masks: Masks, d_model: int, dtype: torch.dtype) -> torch.Tensor:
        masks = as_list(masks)
        positions = [grid_position_embedding(mask, d_model, dtype) for mask in masks]
        if self.level_embedding is not None:
            positions = [position + embedding for position, embedding in zip(positions, self.level_embedding)]
        return torch.cat(positions, 1)


def token_mask(masks: Masks) -> torch.Tensor:
    """B x N: which encoder tokens cover the image, every level in order."""
    return torch.cat([mask.flatten(1) for mask in as_list(masks)], 1)


class InverseEncoder(nn.Module):
    """Final encoder tokens (B x N x d) -> projected backbone tokens (B x N x d; N = hw for one level).

    A transformer encoder of DETR's own size and layer type, with the forward model's sine
    position encoding and padding mask; a final linear layer maps back to the backbone's scale
    (the forward encoder's outputs are layer-normalised, its inputs are not).
    """

    def __init__(self, config: InverterConfig):
        super().__init__()
        self.transformer_config = config.transformer_config()
        self.positions = TokenPositions(config)
        self.layers = nn.ModuleList(DetrEncoderLayer(self.transformer_config) for _ in range(config.encoder_layers))
        self.output = nn.Linear(config.d_model, config.d_model)

    def forward(self, tokens: torch.Tensor, masks: Masks) -> torch.Tensor:
        position = self.positions(masks, tokens.shape[-1], tokens.dtype)
        mask = create_bidirectional_mask(self.transformer_config, tokens, token_mask(masks))
        hidden = tokens
        for layer in self.layers:
            hidden = layer(hidden, mask, spatial_position_embeddings=position)
        return self.output(hidden)


class InverseDecoder(nn.Module):
    """Final decoder outputs (B x Q x d) -> final encoder tokens (B x N x d).

    A transformer decoder whose queries are the N token positions (zero content plus the
    forward sine position encoding) and whose memory is the Q decoder outputs, each with a
    learned position embedding (query slots have identities in DETR).
    """

    def __init__(self, config: InverterConfig):
        super().__init__()
        self.transformer_config = config.transformer_config()
        self.memory_position = nn.Parameter(torch.randn(config.num_queries, config.d_model) * 0.02)
        self.positions = TokenPositions(config)
        self.layers = nn.ModuleList(DetrDecoderLayer(self.transformer_config) for _ in range(config.decoder_layers))
        self.layernorm = nn.LayerNorm(config.d_model)

    def forward(self, decoder_output: torch.Tensor, masks: Masks) -> torch.Tensor:
        batch, num_queries, d_model = decoder_output.shape
        grid_position = self.positions(masks, d_model, decoder_output.dtype)
        memory_position = self.memory_position[:num_queries].unsqueeze(0).expand(batch, -1, -1)
        hidden = torch.zeros_like(grid_position)
        self_mask = create_bidirectional_mask(self.transformer_config, hidden, token_mask(masks))
        for layer in self.layers:
            # DetrDecoderLayer's names are from the forward model's view: its "object queries"
            # are our grid positions, its "spatial" keys are our decoder memory.
            hidden = layer(
                hidden,
                self_mask,
                spatial_position_embeddings=memory_position,
                object_queries_position_embeddings=grid_position,
                encoder_hidden_states=decoder_output,
            )
        return self.layernorm(hidden)


class InversePrediction(nn.Module):
    """Per query, (class one-hot or probabilities, box) -> final decoder output, by an MLP."""

    def __init__(self, config: InverterConfig):
        super().__init__()
        self.input_kind = config.prediction_input
        self.class_scores = config.class_scores
        sizes = [config.num_logits + 4, *config.prediction_hidden, config.d_model]
        layers: list[nn.Module] = []
        for index, (size_in, size_out) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(size_in, size_out))
            if index < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)

    def encode(self, logits: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """The per-query input vector: class evidence concatenated with the box (cx, cy, w, h)."""
        if self.input_kind == "onehot":
            classes = nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(boxes.dtype)
        elif self.class_scores == "sigmoid":
            classes = logits.sigmoid()
        else:
            classes = logits.softmax(-1)
        return torch.cat([classes, boxes], dim=-1)

    def forward(self, prediction: torch.Tensor, masks: Masks | None = None) -> torch.Tensor:
        return self.mlp(prediction)


class InverterStack(nn.Module):
    """The four inverse modules; inverts any stage's tensors down to pixels in one cascade."""

    def __init__(self, config: InverterConfig):
        super().__init__()
        self.config = config
        self.backbone = BACKBONE_ARCHITECTURES[config.backbone_architecture](config)
        self.encoder = InverseEncoder(config)
        self.decoder = InverseDecoder(config)
        self.prediction = InversePrediction(config)

    def module(self, stage: str) -> nn.Module:
        """The inverse module that takes `stage`'s tensor as input."""
        return {"backbone": self.backbone, "encoder": self.encoder, "decoder": self.decoder,
                "prediction": self.prediction}[stage]

    def invert(self, feeds: list[tuple[str, torch.Tensor]], masks: Masks) -> list[torch.Tensor]:
        """Invert tensors entering at different stages down to images, each module running once.

        feeds: (entry stage, tensor) pairs, each a batch of B sharing `masks` (the grid mask B x h x w, or
        one per level); a backbone tensor is a map, a list of level maps or tokens of every level; prediction
        tensors come from `InversePrediction.encode`. Tensors are concatenated as they flow down, so every
        module sees one batch. Returns one B x 3 x H x W image per feed.
        """
        masks = as_list(masks)
        carried = None
        carried_feeds: list[int] = []
        for stage in reversed(STAGES):
            entering = [index for index, (entry, _) in enumerate(feeds) if entry == stage]
            if carried is None and not entering:
                continue
            parts = ([carried] if carried is not None else []) + [feeds[index][1] for index in entering]
            carried_feeds += entering
            copies = len(carried_feeds)
            if stage == "backbone":
                batch = [torch.cat(level) for level in zip(*(self._as_levels(part, masks) for part in parts))]
            else:
                batch = torch.cat(parts)
            carried = self.module(stage)(batch, [mask.repeat(copies, 1, 1) for mask in masks])
        images = carried.chunk(len(carried_feeds))
        order = {feed: position for position, feed in enumerate(carried_feeds)}
        return [images[order[index]] for index in range(len(feeds))]

    @staticmethod
    def _as_levels(tensor: torch.Tensor | list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """A backbone feed as its level maps: tokens (N x sum(h_l w_l) x d) are split and shaped like `masks`;
        a map or a list of maps passes through."""
        if not torch.is_tensor(tensor):
            return list(tensor)
        if tensor.dim() == 4:
            return [tensor]
        return tokens_to_levels(tensor, masks)
