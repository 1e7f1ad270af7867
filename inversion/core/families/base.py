"""What every model family tells the rest of the library: the protocol, with the encoder-decoder layout of
DETR as its default.

A family adapts one transformers architecture to the shared stage vocabulary (`stages.STAGES`): which
module's output is the backbone stage, which modules are the encoder and decoder layers, what each
captured layer holds, how classes are scored, where attention is read, and how to run the model again
with a stage replaced or layers skipped. Everything is read from transformers' own forward: one call
with `output_hidden_states` (and `output_attentions` when attention is recorded), plus a forward hook
on the backbone stage's module; a change to a stage is a forward hook that replaces a module's output.
Subclasses override only what their architecture does differently.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from ..images import IMAGENET_MEAN, IMAGENET_STD, normalise


@dataclass(frozen=True)
class Sizes:
    """The sizes inverse modules mirror: width, queries, logits per query, layers, heads, FFN width."""

    d_model: int
    num_queries: int
    num_logits: int
    encoder_layers: int
    decoder_layers: int
    attention_heads: int
    ffn_dim: int
    levels: int = 1  # backbone maps the encoder reads (multi-scale families: several)
    attending_encoder_layers: int | None = None  # encoder layers 1..n that have attention (None: all of them)

    @property
    def encoder_attention_layers(self) -> int:
        """How many encoder layers, from the first, record attention."""
        return self.encoder_layers if self.attending_encoder_layers is None else self.attending_encoder_layers


@dataclass
class Forward:
    """What one forward pass of a detector produced, as transformers returned it, in stage terms."""

    backbone: torch.Tensor  # B x d x h x w: the map the encoder reads (a multi-scale family's finest)
    encoder: list[torch.Tensor]  # L_enc + 1 tensors of B x hw x d
    decoder: list[torch.Tensor]  # L_dec + 1 tensors of B x Q x d
    logits: torch.Tensor
    boxes: torch.Tensor
    encoder_attention: dict[int, torch.Tensor]  # layer number -> B x heads x hw x hw (when recorded)
    cross_attention: dict[int, torch.Tensor]  # layer number -> B x heads x Q x hw (when recorded)
    extra_levels: list[torch.Tensor]  # a multi-scale family's coarser maps, finer first
    attention_level: int = 0  # the level whose grid the attention maps are over


@dataclass(frozen=True)
class Changes:
    """A run with its stages changed: a replaced backbone map (or every level of a multi-scale family) or
    encoder output, skipped layers (1-based)."""

    backbone: torch.Tensor | list[torch.Tensor] | None = None
    memory: torch.Tensor | None = None
    skip_encoder: Collection[int] = ()
    skip_decoder: Collection[int] = ()


class Family:
    """One architecture of transformers' detection models, in the library's stage vocabulary.

    The defaults describe DETR's layout (transformers' `DetrForObjectDetection`): a CNN backbone whose
    last map a 1x1 `input_projection` maps to d channels; `model.encoder.layers` on its hw tokens;
    `model.decoder.layers` on learned queries, with a shared `layernorm`; softmax classes with a final
    "no object" logit.
    """

    name: ClassVar[str]  # what users read, e.g. "DETR"
    model_types: ClassVar[tuple[str, ...]]  # the config.model_type values this family serves
    model_class: ClassVar[type[PreTrainedModel]]
    sigmoid_classes: ClassVar[bool] = False  # True: one sigmoid per class, no "no object" logit
    width_attribute: ClassVar[str] = "d_model"  # the config field holding the transformer's width
    pixel_mean: ClassVar[tuple[float, float, float]] = IMAGENET_MEAN  # the input normalisation it was trained with
    pixel_std: ClassVar[tuple[float, float, float]] = IMAGENET_STD

    backbone_stages: ClassVar[int] = 1  # the CNN backbone's last stages its encoder reads (multi-scale: several)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] canvas pixels as this family's input."""
        return normalise(pixels, self.pixel_mean, self.pixel_std)

    def scale_config(self, d_model: int, stage_channels: list[int]) -> dict:
        """The config fields a new model of this family needs to read backbone stages of these channels (the
        last `backbone_stages` of its CNN) at width d_model; nothing for a single-scale family."""
        return {}

    # ---------------------------------------------------------------- structure

    def sizes(self, config: PretrainedConfig) -> Sizes:
        """The sizes of the model a config describes."""
        return Sizes(
            d_model=getattr(config, self.width_attribute),
            num_queries=config.num_queries,
            num_logits=config.num_labels + (0 if self.sigmoid_classes else 1),
            encoder_layers=config.encoder_layers,
            decoder_layers=config.decoder_layers,
            attention_heads=config.encoder_attention_heads,
            ffn_dim=config.encoder_ffn_dim,
        )

    def level_modules(self, model: PreTrainedModel) -> list[nn.Module]:
        """The modules whose outputs are the backbone stage's maps, finest first (one for single-scale families)."""
        return [model.model.input_projection]

    def encoder_module(self, model: PreTrainedModel) -> nn.Module:
        """The encoder: its output's `last_hidden_state` is the memory the decoder reads."""
        return model.model.encoder

    def encoder_layers(self, model: PreTrainedModel) -> nn.ModuleList:
        return model.model.encoder.layers

    def decoder_layers(self, model: PreTrainedModel) -> nn.ModuleList:
        return model.model.decoder.layers

    def level_map(self, model: PreTrainedModel, output: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """A level module's output as a B x d x h x w map (`pixels`: the input it was computed from)."""
        return output

    def level_output(self, level_map: torch.Tensor) -> torch.Tensor:
        """A B x d x h x w map as its level module's output (the inverse of `level_map`)."""
        return level_map

    def model_inputs(self, pixels: torch.Tensor, pixel_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The keyword arguments the model's forward takes for [0, 1] canvas pixels and their mask."""
        return {"pixel_values": self.normalise(pixels), "pixel_mask": pixel_mask}

    def backbone_levels(self, model: PreTrainedModel, pixels: torch.Tensor, pixel_mask: torch.Tensor) -> list[torch.Tensor]:
        """The backbone stage's maps of [0, 1] canvas pixels without the transformer, finest first
        (differentiable in `pixels`)."""
        features = model.model.backbone(self.normalise(pixels), pixel_mask)
        if isinstance(features, tuple):  # backbones that also return their position embeddings
            features = features[0]
        feature_map, _ = features[-1]
        return [self.level_modules(model)[0](feature_map)]

    # ---------------------------------------------------------------- what each captured layer holds

    def encoder_states(self, model: PreTrainedModel, output, levels: list[torch.Tensor], recorded) -> list[torch.Tensor]:
        """Encoder entries 0..L: the encoder's input, then every layer's output, as transformers returns them
        (`encoder_hidden_states`; `levels`: the backbone stage's maps; `recorded`: what `recorder` kept)."""
        return list(output.encoder_hidden_states)

    def decoder_states(self, model: PreTrainedModel, output) -> list[torch.Tensor]:
        """Decoder entries 0..L: the queries' input content, layers 1..L-1 after the decoder's shared layer
        norm (what the auxiliary heads read), and the final output the heads read (`last_hidden_state`)."""
        hidden = output.decoder_hidden_states
        norm = model.model.decoder.layernorm
        return [hidden[0], *(norm(state) for state in hidden[1:-1]), output.last_hidden_state]

    # ---------------------------------------------------------------- classes

    def class_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """B x Q x C: each query's probability of each real class (no "no object" column)."""
        if self.sigmoid_classes:
            return logits.sigmoid()
        return logits.softmax(-1)[..., :-1]

    # ---------------------------------------------------------------- attention

    def attention_maps(self, output, levels: list[torch.Tensor], level: int,
                       recorded) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Encoder self-attention and decoder cross-attention by layer number, from `output_attentions`, over the grid
        of `levels[level]` (`levels`: the backbone stage's maps; `recorded`: what `attention_recorder` kept)."""
        encoder = {number: weights for number, weights in enumerate(output.encoder_attentions or (), start=1)}
        cross = {number: weights for number, weights in enumerate(output.cross_attentions or (), start=1)}
        return encoder, cross

    def attention_level(self, model: PreTrainedModel, levels: list[torch.Tensor], pixels: torch.Tensor) -> int:
        """The level whose grid the attention maps are over (the grid itself for single-scale families)."""
        return 0

    def recorder(self, model: PreTrainedModel, attention: bool):
        """A context manager recording, during one forward, what the stages and attention maps need beyond the
        model's output (nothing here)."""
        return nullcontext(None)

    def use_eager_attention(self, model: PreTrainedModel) -> None:
        """Switch to eager attention, which alone returns attention weights (SDPA returns none)."""
        if model.config._attn_implementation != "eager":
            model.set_attn_implementation("eager")

    # ---------------------------------------------------------------- the forward pass

    def forward(self, model: PreTrainedModel, pixels: torch.Tensor, pixel_mask: torch.Tensor,
                changes: Changes = Changes(), attention: bool = False) -> Forward:
        """One forward pass of [0, 1] canvas pixels with `changes` applied, in stage terms (differentiable)."""
        if attention:
            self.use_eager_attention(model)
        with (self._changed(model, changes), _recorded_outputs(self.level_modules(model)) as outputs,
              self.recorder(model, attention) as recorded):
            output = model(**self.model_inputs(pixels, pixel_mask), output_hidden_states=True, output_attentions=attention)
        levels = [self.level_map(model, level, pixels) for level in outputs]
        level = self.attention_level(model, levels, pixels)
        encoder_attention, cross_attention = self.attention_maps(output, levels, level, recorded) if attention else ({}, {})
        encoder = self.encoder_states(model, output, levels, recorded)
        if changes.memory is not None:
            encoder[-1] = changes.memory
            encoder_attention = {}
        for number in changes.skip_encoder:
            encoder_attention.pop(number, None)
        for number in changes.skip_decoder:
            cross_attention.pop(number, None)
        return Forward(levels[0], encoder, self.decoder_states(model, output), output.logits, output.pred_boxes,
                       encoder_attention, cross_attention, levels[1:], level)

    def memory_hooks(self, model: PreTrainedModel, memory: torch.Tensor) -> list[torch.utils.hooks.RemovableHandle]:
        """Hooks, for this thread only, that make `memory` the encoder output the decoder reads."""
        return [_replace_output(self.encoder_module(model), lambda output: _with_memory(output, memory))]

    @contextmanager
    def _changed(self, model: PreTrainedModel, changes: Changes) -> Iterator[None]:
        """Forward hooks, for this thread only, that apply `changes` inside the block."""
        hooks = []
        if changes.backbone is not None:
            replaced = [changes.backbone] if torch.is_tensor(changes.backbone) else changes.backbone
            hooks += [_replace_output(module, lambda output, level=self.level_output(level): level)
                      for module, level in zip(self.level_modules(model), replaced)]
        if changes.memory is not None:
            hooks += self.memory_hooks(model, changes.memory)
        for layers, skipped in ((self.encoder_layers(model), changes.skip_encoder),
                                (self.decoder_layers(model), changes.skip_decoder)):
            hooks += [_skip(layers[number - 1]) for number in skipped]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()


def _this_thread_only(hook):
    """A forward hook that acts in the thread that registered it only: the app serves requests in threads
    through one shared model, and a hook sees every thread's forward."""
    owner = threading.get_ident()

    def guarded(*args):
        return hook(*args) if threading.get_ident() == owner else None

    return guarded


def _replace_output(module: nn.Module, replacement) -> torch.utils.hooks.RemovableHandle:
    """Replace `module`'s output by `replacement(output)`, before any other hook sees it."""
    return module.register_forward_hook(_this_thread_only(lambda module, args, output: replacement(output)), prepend=True)


def _skip(layer: nn.Module) -> torch.utils.hooks.RemovableHandle:
    """Make a layer the identity: its output becomes its input hidden states."""

    def identity(module, args, kwargs, output):
        hidden = args[0] if args else kwargs["hidden_states"]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return layer.register_forward_hook(_this_thread_only(identity), prepend=True, with_kwargs=True)


def _with_memory(output, memory: torch.Tensor):
    """An encoder output whose last hidden state is `memory`."""
    changed = type(output)(**output)
    changed["last_hidden_state"] = memory
    return changed


@contextmanager
def _recorded_outputs(modules: list[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """The outputs the modules compute inside the block (each once, in order), in this thread, after any
    replacement."""
    recorded: list[torch.Tensor | None] = [None] * len(modules)

    def keeper(index: int):
        return _this_thread_only(lambda module, args, output: recorded.__setitem__(index, output))

    hooks = [module.register_forward_hook(keeper(index)) for index, module in enumerate(modules)]
    try:
        yield recorded
    finally:
        for hook in hooks:
            hook.remove()
