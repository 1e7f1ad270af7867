"""The trainer's optimizers and the modular objective train a classifier's inverse modules (ViT, DeiT, Swin)."""

from __future__ import annotations

import pytest
import torch

from inversion.core.classifier import Classifier
from inversion.core.classifier_inverters import ClassifierInverterConfig, ClassifierInverterStack
from inversion.core.families.classifiers import classifier_family_for
from inversion.testing import random_image, tiny_classifier_config
from inversion.training.classifier_objectives import ClassifierModularObjective
from inversion.training.trainer import TrainingConfig, build_optimizers

RATES = {"embedding": 3e-3, "encoder": 1e-3, "pooled": 1e-3, "logits": 3e-3}


@pytest.mark.parametrize("model_type", ["vit", "deit", "swin"])
def test_thirty_steps_lower_every_modules_loss_and_every_levels(model_type):
    config = tiny_classifier_config(model_type)
    torch.manual_seed(0)
    model = classifier_family_for(config).model_class(config)(config)
    torch.nn.init.uniform_(model.base_model.embeddings.patch_embeddings.projection.bias, -0.5, 0.5)
    classifier = Classifier(model)
    batch = classifier.capture([random_image(32, 32, seed=seed) for seed in range(4)])
    objective = ClassifierModularObjective(ClassifierInverterStack(ClassifierInverterConfig.for_classifier(classifier)))
    optimizers, schedulers = build_optimizers(TrainingConfig(data="", steps=30, warmup_steps=1, learning_rates=RATES), objective)
    with torch.no_grad():
        first, first_levels = objective(batch), objective.level_losses(batch)
    for _ in range(30):
        sum(objective(batch).values()).backward()
        for stage, optimizer in optimizers.items():
            optimizer.step()
            optimizer.zero_grad()
            schedulers[stage].step()
    with torch.no_grad():
        last, last_levels = objective(batch), objective.level_losses(batch)
    assert set(first) == {"embedding", "encoder", "pooled", "logits"}
    measured_at_most = {"embedding": 0.85, "encoder": 0.5, "pooled": 0.15, "logits": 0.1}  # .41-.78, .03-.42, .04-.10, .04
    for stage, ratio in measured_at_most.items():
        assert last[stage] < first[stage] * ratio, (model_type, stage, float(first[stage]), float(last[stage]))
    assert len(first_levels) == (3 if model_type == "swin" else 1)
    for level, (before, after) in enumerate(zip(first_levels, last_levels)):  # Swin's stages: .47, .09, .04
        assert after < before * 0.55, (model_type, level, float(before), float(after))
