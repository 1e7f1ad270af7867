"""The stage vocabulary of an image-classification transformer and the container that holds one capture.

A classifier maps a fixed-size image through four stages, each inverted by its own module:

    logits --InverseHead--> pooled --InversePooled--> last encoder entry
           --inverse levels (ViT: one; Swin: one per stage, with patch splitting)--> embedding
           --inverse patch embedding (analytic or learned)--> image

The names are shared by the classifier, its inverters, their objective and the documentation
(docs/classifiers.md). They sit beside the detection stages (`stages.STAGES`), not inside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .families.classifier_base import Level

CLASSIFIER_STAGES: tuple[str, ...] = ("embedding", "encoder", "pooled", "logits")


@dataclass(frozen=True)
class ClassifierSource:
    """A tensor to reconstruct from: a stage, and for the encoder one of its entries (default: the last).

    An encoder entry inside a level (a block that is not the level's last) is inverted by that level's
    inverse as if it were the level's output (after the patch splitting, when the level merges). `enters`
    (the layer swap) feeds the entry to the inverse chain of another entry, as if it were that one (0: the
    patch inverse alone); both entries' tensors must have one shape.
    """

    stage: str
    entry: int | None = None
    enters: int | None = None

    def __post_init__(self):
        if self.stage not in CLASSIFIER_STAGES:
            raise ValueError(f"Unknown classifier stage {self.stage!r}: choose one of {', '.join(CLASSIFIER_STAGES)}.")
        if self.entry is not None and self.stage != "encoder":
            raise ValueError(f"Only the encoder has entries; got an entry for {self.stage!r}.")
        if self.enters is not None and self.stage != "encoder":
            raise ValueError(f"Only encoder entries enter another entry's inverse; got {self.stage!r}.")

    @property
    def label(self) -> str:
        named = self.stage if self.entry is None else f"{self.stage} {self.entry}"
        return named if self.enters is None else f"{named} as {self.enters}"


CLASSIFIER_STAGE_SOURCES: tuple[ClassifierSource, ...] = tuple(ClassifierSource(stage) for stage in CLASSIFIER_STAGES)


@dataclass
class Prediction:
    """One class of an image's top predictions."""

    label: str
    label_id: int
    score: float


@dataclass
class ClassifierRepresentations:
    """Everything one classifier forward pass computes for a batch of B images.

    embedding: B x d x h x w, the patch embedding with position (patch tokens only; CLS and distillation
        tokens are constants of the model at this stage).
    encoder: the embedding output the first block reads (entry 0, with the special tokens), then every
        block's output (and, for Swin, every patch merging's), B x S x d each at its level's width.
    levels: which entries each inverse level maps between (the family's `levels`).
    pooled: B x K x d, the tokens the head(s) read after the final norm (Swin: the average of the final tokens).
    logits: B x C. pixels: the input in [0, 1], B x 3 x H x W.
    predictions: each image's top classes. attention: by block number, B x heads x S x S over the block's
        tokens, when recorded (Swin: zero outside each query's window, the window shift undone).
    final: B x S x d, every token of the last entry after the final layer norm (the pooled stage takes its
        first K, or their average).
    """

    embedding: torch.Tensor
    encoder: list[torch.Tensor]
    levels: list[Level]
    pooled: torch.Tensor
    logits: torch.Tensor
    pixels: torch.Tensor
    predictions: list[list[Prediction]] = field(default_factory=list)
    attention: dict[int, torch.Tensor] = field(default_factory=dict)
    final: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.embedding.shape[0]

    def tensor(self, source: ClassifierSource) -> torch.Tensor:
        """The captured tensor a source names."""
        if source.stage == "encoder":
            entry = len(self.encoder) - 1 if source.entry is None else source.entry
            if not 0 <= entry < len(self.encoder):
                raise ValueError(f"The encoder has entries 0 to {len(self.encoder) - 1}; got entry {entry}.")
            return self.encoder[entry]
        return getattr(self, source.stage)
