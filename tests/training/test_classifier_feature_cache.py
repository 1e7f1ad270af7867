"""A classifier's cached targets equal recomputed ones, and its transformer inverses train from them."""

from __future__ import annotations

import json

import pytest
import torch

from inversion.__main__ import main
from inversion.core.classifier import Classifier
from inversion.core.classifier_checkpoints import load_classifier_inverters
from inversion.core.errors import CheckpointError
from inversion.core.families.classifiers import classifier_family_for
from inversion.testing import random_image, tiny_classifier_config
from inversion.training.classifier_cache import cached_classifier_representations, cached_entries
from inversion.training.feature_cache import FeatureCache, collate_features, write_cache
from inversion.training.networks import ClassifierNetwork
from inversion.training.sources import open_dataset
from inversion.training.trainer import TrainingConfig, train


@pytest.fixture(scope="module", params=["vit", "swin"])
def classifier_folder(request, tmp_path_factory):
    config = tiny_classifier_config(request.param)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(f"cached-{request.param}")
    classifier_family_for(config).model_class(config)(config).save_pretrained(folder)
    return folder


def test_cached_targets_equal_recomputed_ones_within_fp16(classifier_folder, image_folder, tmp_path):
    classifier = Classifier.from_pretrained(str(classifier_folder))
    cache = FeatureCache(write_cache(classifier, open_dataset(image_folder), tmp_path / "cache", shard_size=5, batch_size=4,
                                     workers=0))
    assert len(cache) == 12 and cache.description["classifier"]["id"] == str(classifier_folder)
    levels = classifier.family.levels(classifier.config)
    reps = classifier.capture([open_dataset(image_folder)[index][0] for index in (0, 7)])
    cached = cached_classifier_representations(collate_features([cache[0], cache[7]]), torch.device("cpu"), levels)
    entries = cached_entries(levels)
    assert entries[0] == 0 and entries[-1] == len(reps.encoder) - 1 and len(cached.encoder) == len(reps.encoder)
    for entry, tensor in enumerate(cached.encoder):
        if entry in entries:
            torch.testing.assert_close(tensor, reps.encoder[entry], atol=2e-2, rtol=2e-3)
        else:
            assert tensor is None
    torch.testing.assert_close(cached.pooled, reps.pooled, atol=2e-2, rtol=2e-3)
    torch.testing.assert_close(cached.logits, reps.logits, atol=2e-2, rtol=2e-3)


def test_the_encoder_pooled_and_logits_inverses_train_from_a_cache(classifier_folder, image_folder, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["cache-features", "--classifier", str(classifier_folder), "--data", str(image_folder), "--out", str(cache),
                 "--batch-size", "4", "--workers", "0"]) == 0
    held = tmp_path / "held"
    held.mkdir()
    for seed in range(2):
        random_image(40, 40, seed=90 + seed).save(held / f"{seed}.png")
    settings = dict(data=str(image_folder), val_data=str(held), classifier=str(classifier_folder), feature_cache=str(cache),
                    steps=20, batch_size=4, warmup_steps=1, log_every=1, val_every=20, save_every=20, val_images=2, workers=0,
                    learning_rates={"encoder": 2e-3, "pooled": 1e-3, "logits": 3e-3})
    result = train(TrainingConfig(**settings, out=str(tmp_path / "run"), stages=("encoder", "pooled", "logits")))
    assert [stage for stage, scores in result["stages"].items() if scores["trained"]] == []  # no chain reaches pixels
    assert set(result["local_loss"]) == {"encoder", "pooled", "logits"}
    logged = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["split"] == "train"]
    for stage in ("encoder", "pooled", "logits"):
        assert logged[-1][stage] < logged[0][stage] * 0.85, (stage, logged[0][stage], logged[-1][stage])
    _, config = load_classifier_inverters(tmp_path / "run")
    assert config["notes"]["trained_stages"] == []
    with pytest.raises(Exception, match="A feature cache trains only the encoder, pooled, logits inverses"):
        train(TrainingConfig(**settings, out=str(tmp_path / "all")))
    assert not (tmp_path / "all").exists()


def test_a_cache_of_another_network_is_refused(classifier_folder, image_folder, tmp_path, tiny_detector):
    cache = FeatureCache(write_cache(tiny_detector, open_dataset(image_folder), tmp_path / "cache", workers=0))
    with pytest.raises(CheckpointError, match="was made by 'another kind of network'"):
        cache.check_network(ClassifierNetwork(Classifier.from_pretrained(str(classifier_folder))).model)
