"""What every image-classification family tells the rest of the library: the protocol beside the detection one.

A classification transformer maps a fixed-size image through four stages (`classifier_stages`): the patch
embedding (with position), its encoder blocks, the pooled representation its head reads, and the logits.
A family says which module's output is the embedding stage, which modules are the blocks (and, for a
hierarchical model, which entries open and close each level), what the head reads, and how to map
tokens to the B x d x h x w embedding map. Everything is read from transformers' own forward: one call
with `output_hidden_states` (and `output_attentions` when attention is recorded), plus forward hooks on the
modules whose outputs transformers does not return; a change to a stage is a hook that replaces a module's
output, a skipped block a hook that returns its input (the same hooks as the detection families', acting
in the calling thread only).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from ..images import IMAGENET_MEAN, IMAGENET_STD, normalise
from .base import _recorded_outputs, _replace_output, _skip


@dataclass(frozen=True)
class Level:
    """One level of the encoder that an inverse module undoes: the entries it reads and writes.

    `start` and `end` index the captured encoder entries (the level maps entry `start` to entry `end`);
    `blocks` are the block entries inside it; `width` and `grid` are the entries' channels and (h, w) inside
    the level; `merged` says the level ends with a patch merging (the end entry then has twice the width on
    half the grid); `heads` its blocks' attention heads.
    """

    start: int
    end: int
    blocks: tuple[int, ...]
    width: int
    grid: tuple[int, int]
    heads: int
    merged: bool = False


@dataclass
class ClassifierForward:
    """What one forward pass of a classifier produced, in stage terms."""

    embedding: torch.Tensor  # B x d x h x w: the patch embedding with position (the patch tokens only)
    encoder: list[torch.Tensor]  # entry 0: the embedding output the first block reads, then every block's output
    pooled: torch.Tensor  # B x K x d: the tokens the head(s) read, after the final norm (and pooling)
    logits: torch.Tensor  # B x C
    attention: dict[int, torch.Tensor] = field(default_factory=dict)  # block number -> B x heads x S x S
    final: torch.Tensor | None = None  # B x S x d: the last entry's tokens after the final norm


@dataclass(frozen=True)
class ClassifierChanges:
    """A run with its stages changed: a replaced embedding map, skipped blocks (1-based, over all blocks)."""

    embedding: torch.Tensor | None = None
    skip_blocks: Collection[int] = ()


class ClassifierFamily:
    """One architecture of transformers' image classifiers, in the library's classifier stage vocabulary."""

    name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    pixel_mean: ClassVar[tuple[float, float, float]] = IMAGENET_MEAN
    pixel_std: ClassVar[tuple[float, float, float]] = IMAGENET_STD

    def model_class(self, config: PretrainedConfig) -> type[PreTrainedModel]:
        """The transformers class a config's weights load into."""
        raise NotImplementedError

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels as this family's input."""
        return normalise(pixels, self.pixel_mean, self.pixel_std)

    def denormalise(self, inputs: torch.Tensor) -> torch.Tensor:
        """This family's input back to [0, 1] pixels (the inverse of `normalise`)."""
        mean = torch.tensor(self.pixel_mean, device=inputs.device, dtype=inputs.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.pixel_std, device=inputs.device, dtype=inputs.dtype).view(1, 3, 1, 1)
        return inputs * std + mean

    # ---------------------------------------------------------------- structure

    def image_size(self, config: PretrainedConfig) -> tuple[int, int]:
        size = config.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def patch_size(self, config: PretrainedConfig) -> int:
        return config.patch_size

    def grid(self, config: PretrainedConfig) -> tuple[int, int]:
        height, width = self.image_size(config)
        return height // self.patch_size(config), width // self.patch_size(config)

    def special_tokens(self, config: PretrainedConfig) -> int:
        """Tokens before the patch tokens in every encoder entry (CLS, distillation)."""
        return 0

    def pooled_tokens(self, config: PretrainedConfig) -> int:
        """How many tokens the head(s) read (K of the pooled stage)."""
        return 1

    def levels(self, config: PretrainedConfig) -> list[Level]:
        raise NotImplementedError

    def patch_projection(self, model: PreTrainedModel) -> nn.Conv2d:
        """The convolution (kernel = stride = patch) that embeds each patch."""
        raise NotImplementedError

    def embedding_module(self, model: PreTrainedModel) -> nn.Module:
        """The module whose output is the embedding stage (with position)."""
        raise NotImplementedError

    def blocks(self, model: PreTrainedModel) -> list[nn.Module]:
        """Every encoder block, in order (block number n is entry n of the encoder where no level merges)."""
        raise NotImplementedError

    def embedding_map(self, config: PretrainedConfig, tokens: torch.Tensor) -> torch.Tensor:
        """Entry-0 tokens (B x S x d) as the B x d x h x w map of the patch tokens."""
        height, width = self.grid(config)
        patches = tokens[:, self.special_tokens(config):]
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)

    # ---------------------------------------------------------------- the forward pass

    def run(self, model: PreTrainedModel, inputs: torch.Tensor, attention: bool) -> tuple[object, dict]:
        """transformers' forward on normalised inputs, and the outputs recorded by hooks (family-specific)."""
        raise NotImplementedError

    def forward(self, model: PreTrainedModel, pixels: torch.Tensor, changes: ClassifierChanges = ClassifierChanges(),
                attention: bool = False) -> ClassifierForward:
        """One forward pass of [0, 1] pixels with `changes` applied, in stage terms (differentiable)."""
        if attention and model.config._attn_implementation != "eager":
            model.set_attn_implementation("eager")
        with ExitStack() as stack:
            if changes.embedding is not None:
                stack.enter_context(self._embedding_replaced(model, changes.embedding))
            for number in changes.skip_blocks:
                stack.enter_context(_removed(_skip(self.blocks(model)[number - 1])))
            output, recorded = self.run(model, self.normalise(pixels), attention)
        return self.stages(model, output, recorded, attention)

    def stages(self, model: PreTrainedModel, output, recorded: dict, attention: bool) -> ClassifierForward:
        raise NotImplementedError

    def embedding_replacement(self, config: PretrainedConfig, output, embedding: torch.Tensor):
        """The embedding module's output with its patch tokens replaced by `embedding` (B x d x h x w)."""
        raise NotImplementedError

    @contextmanager
    def _embedding_replaced(self, model: PreTrainedModel, embedding: torch.Tensor) -> Iterator[None]:
        hook = _replace_output(self.embedding_module(model),
                               lambda output: self.embedding_replacement(model.config, output, embedding))
        with _removed(hook):
            yield


@contextmanager
def _removed(hook) -> Iterator[None]:
    """Remove a registered hook when the block ends."""
    try:
        yield
    finally:
        hook.remove()


__all__ = ["ClassifierChanges", "ClassifierFamily", "ClassifierForward", "Level", "_recorded_outputs"]
