"""What a feature cache holds of an image classifier, so that its transformer inverses train without rerunning it.

Per image: the encoder entries the inverse levels map between (each level's input and output; ViT and DeiT:
entry 0 and the last, Swin: every stage's), the pooled tokens and the logits. The inverse patch embedding needs
pixels, so it is left out of a cached run, as the detectors' inverse backbone is.
"""

from __future__ import annotations

import torch

from ..core.classifier import Classifier
from ..core.classifier_stages import ClassifierRepresentations
from ..core.families.classifier_base import Level

CLASSIFIER_CACHED_STAGES = ("encoder", "pooled", "logits")
ENTRY = "encoder_{}"  # the cached encoder entry of this number


def cached_entries(levels: list[Level]) -> list[int]:
    """The encoder entries the inverse levels and the inverse pooling read: each level's ends."""
    return sorted({entry for level in levels for entry in (level.start, level.end)})


def classifier_targets(classifier: Classifier, reps: ClassifierRepresentations) -> dict[str, torch.Tensor]:
    """The tensors a cache keeps of one captured batch, by field name."""
    entries = {ENTRY.format(entry): reps.encoder[entry] for entry in cached_entries(reps.levels)}
    return {**entries, "pooled": reps.pooled, "logits": reps.logits}


def cached_classifier_representations(batch: dict[str, torch.Tensor], device: torch.device,
                                      levels: list[Level]) -> ClassifierRepresentations:
    """A ClassifierRepresentations holding what the cached stages' inverses need (float32, on `device`); the
    encoder entries no inverse reads are None, and there are no pixels nor embedding map."""
    tensors = {name: tensor.to(device).float() for name, tensor in batch.items()}
    entries = cached_entries(levels)
    encoder = [tensors.get(ENTRY.format(entry)) for entry in range(entries[-1] + 1)]
    size = len(tensors["logits"])
    empty = torch.empty(size, 3, 0, 0, device=device)
    return ClassifierRepresentations(embedding=empty, encoder=encoder, levels=levels, pooled=tensors["pooled"],
                                     logits=tensors["logits"], pixels=empty)
