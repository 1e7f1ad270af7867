"""The inverse modules of a classification transformer (ViT, DeiT, Swin) and the stack that chains them to pixels.

    logits --InverseHead--> pooled --InversePooled--> last encoder entry
           --one inverse per level (InverseVitLevel; InverseSwinLevel, patch splitting first)--> entry 0
           --LearnedPatchInverse, or the exact AnalyticPatchInverse--> image

The transformer inverses are built from the forward model's own layer types (transformers' ViTLayer and
SwinLayer, shifted windows included), sized from the classifier's config, so a tiny test config and a Hub
checkpoint share one code path. The patch embedding is linear per patch: `AnalyticPatchInverse` undoes it
with the pseudo-inverse of the forward weights (exact where the map is injective), no training needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import SwinConfig, ViTConfig
from transformers.models.swin.modeling_swin import SwinLayer
from transformers.models.vit.modeling_vit import ViTLayer

from .classifier_stages import ClassifierRepresentations, ClassifierSource
from .families.classifier_base import Level

if TYPE_CHECKING:
    from .classifier import Classifier


@dataclass
class ClassifierInverterConfig:
    """Every hyper-parameter of a classifier's inverter stack (saved with its weights)."""

    architecture: str  # "vit" (ViT, DeiT) or "swin"
    image_size: list[int]  # (height, width)
    patch_size: int
    special_tokens: int  # CLS (and distillation) tokens before the patch tokens
    pooled_tokens: int  # K: the tokens the head(s) read
    num_labels: int
    levels: list[dict]  # the classifier's `Level`s, as dicts
    window_size: int = 7  # Swin's attention window
    mlp_ratio: float = 2.0  # FFN width over the level's width, in every inverse block
    level_blocks: int | None = None  # blocks of each inverse level (None: as many as the forward level)
    pooled_layers: int = 2  # blocks of the inverse pooling
    head_hidden: list[int] = field(default_factory=lambda: [256])

    def __post_init__(self):
        if self.architecture not in ("vit", "swin"):
            raise ValueError(f"architecture must be 'vit' or 'swin', got {self.architecture!r}.")
        levels = [asdict(level) if isinstance(level, Level) else dict(level) for level in self.levels]
        self.levels = [{**level, "blocks": list(level["blocks"]), "grid": list(level["grid"])} for level in levels]  # as JSON

    @classmethod
    def for_classifier(cls, classifier: Classifier, **overrides) -> ClassifierInverterConfig:
        """An inverter config mirroring a classifier's sizes (overrides change any field)."""
        family, config = classifier.family, classifier.config
        mirrored = dict(
            architecture="swin" if config.model_type == "swin" else "vit",
            image_size=list(family.image_size(config)),
            patch_size=family.patch_size(config),
            special_tokens=family.special_tokens(config),
            pooled_tokens=family.pooled_tokens(config),
            num_labels=config.num_labels,
            levels=family.levels(config),
            window_size=getattr(config, "window_size", 7),
        )
        return cls(**{**mirrored, **overrides})

    @property
    def level_list(self) -> list[Level]:
        return [Level(**{**level, "blocks": tuple(level["blocks"]), "grid": tuple(level["grid"])}) for level in self.levels]

    def to_dict(self) -> dict:
        return asdict(self)


def vit_layer_config(width: int, heads: int, mlp_ratio: float) -> ViTConfig:
    """A ViTConfig holding one inverse block's sizes (no dropout)."""
    return ViTConfig(hidden_size=width, num_attention_heads=heads, intermediate_size=int(width * mlp_ratio),
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="sdpa")


class LearnedPatchInverse(nn.Module):
    """Embedding map (B x d x h x w) -> image (B x 3 x ph x pw) in [0, 1]: a per-patch MLP to the patch's
    pixels, put in place by pixel shuffle, and a residual pair of 3x3 convolutions across patch borders."""

    def __init__(self, config: ClassifierInverterConfig):
        super().__init__()
        width, patch = config.levels[0]["width"], config.patch_size
        self.mlp = nn.Sequential(nn.Conv2d(width, width, 1), nn.GELU(), nn.Conv2d(width, 3 * patch * patch, 1))
        self.shuffle = nn.PixelShuffle(patch)
        self.refine = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GELU(), nn.Conv2d(16, 3, 3, padding=1))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        image = self.shuffle(self.mlp(embedding))
        return torch.sigmoid(image + self.refine(image))


ANALYTIC_LABEL = "embedding (analytic)"  # how results name the embedding inverted by AnalyticPatchInverse


class AnalyticPatchInverse(nn.Module):
    """The exact inverse of a classifier's patch embedding, from its own weights (nothing learned).

    ViT and DeiT embed a patch x (3p^2 values) as e = W x + b + position: x = W^+ (e - b - position), W^+ the
    Moore-Penrose pseudo-inverse, exact when W has full column rank (width >= 3p^2, as ViT-B/16's 768 = 3 x 16^2);
    otherwise the least-squares patch whose embedding is closest (re-embedding it gives e back). Swin's
    embedding adds a layer norm: y = g (x - mu) / sigma + beta with x = W p + b, so z = (y - beta) / g gives, per
    token, the linear system W p - sigma z - mu = -b in (p, sigma, mu), solved by least squares (sigma and mu
    from the part of the system outside W's range, then p by the pseudo-inverse): exact when
    [W, b, 1] has full column rank (width >= 3p^2 + 2, as Swin-T's 96 >= 50, and a bias outside W's span).
    `invertible` says which case a classifier is in.
    """

    def __init__(self, classifier: Classifier):
        super().__init__()
        family, config, model = classifier.family, classifier.config, classifier.model
        projection = family.patch_projection(model)
        self.patch = family.patch_size(config)
        weight = projection.weight.detach().double().flatten(1)  # d x 3p^2
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("pseudo_inverse", torch.linalg.pinv(weight), persistent=False)
        self.register_buffer("bias", projection.bias.detach().double(), persistent=False)
        embeddings = model.base_model.embeddings
        position = getattr(embeddings, "position_embeddings", None)
        special = family.special_tokens(config)
        self.register_buffer("position", torch.zeros(()) if position is None else position.detach().double()[0, special:],
                             persistent=False)
        norm = getattr(embeddings, "norm", None)  # Swin's layer norm after the projection
        self.norm = None if norm is None else (norm.weight.detach().double(), norm.bias.detach().double())
        self.denormalise = family.denormalise
        # With the norm, z lies in the span of W, b and 1: the system is injective when [W, b, 1] has full rank
        # (a zero bias loses each patch's contrast: the norm divides it out).
        columns = weight if norm is None else torch.cat([weight, self.bias[:, None], torch.ones_like(self.bias)[:, None]], 1)
        self.invertible = bool(torch.linalg.matrix_rank(columns) == columns.shape[1])

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = embedding.shape
        tokens = embedding.double().flatten(2).transpose(1, 2) - self.position  # B x N x d
        if self.norm is None:
            patches = (tokens - self.bias) @ self.pseudo_inverse.T
        else:  # x = sigma z + mu 1 must lie in b + range(W): fit (sigma, mu) off W's range, then p = W^+ (x - b)
            gain, shift = self.norm
            normed = (tokens - shift) / gain
            off_range = torch.eye(len(self.weight), dtype=self.weight.dtype, device=self.weight.device) - self.weight @ self.pseudo_inverse
            u, v, r = normed @ off_range.T, off_range.sum(1), off_range @ self.bias
            uu, uv, vv = (u * u).sum(-1), u @ v, v @ v
            ur, vr = u @ r, v @ r
            determinant = uu * vv - uv * uv
            sigma, mu = (ur * vv - vr * uv) / determinant, (uu * vr - uv * ur) / determinant
            patches = (sigma[..., None] * normed + mu[..., None] - self.bias) @ self.pseudo_inverse.T
        patches = patches.transpose(1, 2).reshape(batch, 3 * self.patch**2, height, width)
        inputs = nn.functional.pixel_shuffle(patches, self.patch)  # the conv weight's (c, i, j) order is pixel shuffle's
        return self.denormalise(inputs).to(embedding.dtype)


class InverseVitLevel(nn.Module):
    """A ViT level's output tokens (B x S x d) -> its input tokens: ViT blocks with a learned position embedding,
    then a linear map to the input's scale (the forward blocks' outputs grow; their inputs do not)."""

    def __init__(self, config: ClassifierInverterConfig, level: Level):
        super().__init__()
        tokens = config.special_tokens + level.grid[0] * level.grid[1]
        layer_config = vit_layer_config(level.width, level.heads, config.mlp_ratio)
        self.position = nn.Parameter(torch.randn(1, tokens, level.width) * 0.02)
        self.layers = nn.ModuleList(ViTLayer(layer_config) for _ in range(config.level_blocks or len(level.blocks)))
        self.output = nn.Linear(level.width, level.width)

    def forward(self, tokens: torch.Tensor, split: bool = True) -> torch.Tensor:
        hidden = tokens + self.position
        for layer in self.layers:
            hidden = layer(hidden)
        return self.output(hidden)


class PatchSplit(nn.Module):
    """The inverse of Swin's patch merging: each token (2C) -> a 2 x 2 neighbourhood of C-wide tokens, placed
    where the merging took them from (its concatenation order: (0, 0), (1, 0), (0, 1), (1, 1))."""

    def __init__(self, width: int, grid: tuple[int, int]):
        super().__init__()
        self.expand = nn.Linear(2 * width, 4 * width)
        self.grid = grid

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.place(self.expand(tokens))

    def place(self, parts: torch.Tensor) -> torch.Tensor:
        """B x hw/4 x 4C neighbourhoods, concatenated in the merging's order -> B x hw x C tokens."""
        batch, _, quadrupled = parts.shape
        width = quadrupled // 4
        height, wide = self.grid
        merged_height, merged_width = (height + 1) // 2, (wide + 1) // 2
        parts = parts.view(batch, merged_height, merged_width, 4, width)
        full = parts.new_zeros(batch, 2 * merged_height, 2 * merged_width, width)
        for index, (row, col) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
            full[:, row::2, col::2] = parts[:, :, :, index]
        return full[:, :height, :wide].reshape(batch, height * wide, width)


class InverseSwinLevel(nn.Module):
    """A Swin stage's output (merged: B x hw/4 x 2C; last stage: B x hw x C) -> its input (B x hw x C):
    patch splitting when the stage merges, then Swin blocks (windows shifted every second block, as forward)
    and a linear map. `split=False` enters after the splitting, for a block inside the stage."""

    def __init__(self, config: ClassifierInverterConfig, level: Level):
        super().__init__()
        self.grid = level.grid
        swin_config = SwinConfig(embed_dim=level.width, window_size=config.window_size, mlp_ratio=config.mlp_ratio,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0,
                                 attn_implementation="sdpa")
        self.split = PatchSplit(level.width, level.grid) if level.merged else None
        self.layers = nn.ModuleList(
            SwinLayer(swin_config, dim=level.width, input_resolution=level.grid, num_heads=level.heads,
                      shift_size=0 if index % 2 == 0 else config.window_size // 2)
            for index in range(config.level_blocks or len(level.blocks)))
        self.output = nn.Linear(level.width, level.width)

    def forward(self, tokens: torch.Tensor, split: bool = True) -> torch.Tensor:
        hidden = self.split(tokens) if split and self.split is not None else tokens
        for layer in self.layers:
            hidden = layer(hidden, self.grid)[0]
        return self.output(hidden)


class InversePooled(nn.Module):
    """The pooled tokens (B x K x d) -> the last encoder entry (B x S x d): the K tokens, mapped and given
    learned positions, followed by S learned queries; ViT blocks mix them and the queries come out."""

    def __init__(self, config: ClassifierInverterConfig):
        super().__init__()
        last = config.level_list[-1]
        special = config.special_tokens if config.architecture == "vit" else 0
        self.tokens = special + last.grid[0] * last.grid[1]
        self.input = nn.Linear(last.width, last.width)
        self.position = nn.Parameter(torch.randn(1, config.pooled_tokens, last.width) * 0.02)
        self.queries = nn.Parameter(torch.randn(1, self.tokens, last.width) * 0.02)
        layer_config = vit_layer_config(last.width, last.heads, config.mlp_ratio)
        self.layers = nn.ModuleList(ViTLayer(layer_config) for _ in range(config.pooled_layers))
        self.output = nn.Linear(last.width, last.width)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = torch.cat([self.input(pooled) + self.position, self.queries.expand(len(pooled), -1, -1)], dim=1)
        for layer in self.layers:
            hidden = layer(hidden)
        return self.output(hidden[:, -self.tokens:])


class InverseHead(nn.Module):
    """The logits (B x C) -> the pooled tokens (B x K x d), by an MLP."""

    def __init__(self, config: ClassifierInverterConfig):
        super().__init__()
        width = config.level_list[-1].width
        self.shape = (config.pooled_tokens, width)
        sizes = [config.num_labels, *config.head_hidden, config.pooled_tokens * width]
        layers: list[nn.Module] = []
        for index, (size_in, size_out) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(size_in, size_out))
            if index < len(sizes) - 2:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.mlp(logits).view(len(logits), *self.shape)


class ClassifierInverterStack(nn.Module):
    """The inverse modules of one classifier; inverts any stage's tensors down to pixels."""

    def __init__(self, config: ClassifierInverterConfig):
        super().__init__()
        self.config = config
        self.levels = config.level_list
        level_class = InverseSwinLevel if config.architecture == "swin" else InverseVitLevel
        self.embedding = LearnedPatchInverse(config)
        self.encoder = nn.ModuleList(level_class(config, level) for level in self.levels)
        self.pooled = InversePooled(config)
        self.logits = InverseHead(config)

    def module(self, stage: str) -> nn.Module:
        """The inverse module that takes `stage`'s tensor as input."""
        return {"embedding": self.embedding, "encoder": self.encoder, "pooled": self.pooled, "logits": self.logits}[stage]

    def to_embedding(self, tokens: torch.Tensor, entry: int) -> torch.Tensor:
        """Encoder entry `entry` (B x S x d) inverted down to entry 0 (B x S0 x d0), level by level."""
        for index in reversed(range(len(self.levels))):
            level = self.levels[index]
            if entry <= level.start:
                continue
            tokens = self.encoder[index](tokens, split=entry == level.end)
            entry = level.start
        return tokens

    def embedding_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """Entry-0 tokens as the B x d x h x w embedding map (the special tokens dropped)."""
        height, width = self.levels[0].grid
        patches = tokens[:, self.config.special_tokens if self.config.architecture == "vit" else 0:]
        return patches.transpose(1, 2).reshape(len(tokens), -1, height, width)

    def invert(self, representations: ClassifierRepresentations, source: ClassifierSource,
               patch_inverse: nn.Module | None = None) -> torch.Tensor:
        """The images reconstructed from `source`'s captured tensor, through this stack's chain (the last step by
        `patch_inverse`, e.g. the AnalyticPatchInverse, when given; else the learned one)."""
        tensor = representations.tensor(source)
        last_entry = len(representations.encoder) - 1
        if source.stage == "embedding":
            embedding = tensor
        else:
            if source.stage == "logits":
                tensor = self.logits(tensor)
            if source.stage in ("logits", "pooled"):
                tensor = self.pooled(tensor)
            entry = last_entry if source.entry is None else source.entry
            start = entry if source.enters is None else source.enters
            expected = representations.tensor(ClassifierSource("encoder", start)).shape[1:]
            if tensor.shape[1:] != expected:
                raise ValueError(f"Encoder entry {entry} ({tuple(tensor.shape[1:])}) cannot enter the inverse of entry "
                                 f"{start}, which takes {tuple(expected)}.")
            embedding = self.embedding_map(self.to_embedding(tensor, start))
        return (patch_inverse or self.embedding)(embedding)
