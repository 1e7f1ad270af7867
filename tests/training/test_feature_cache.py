"""Cached detector targets equal recomputed ones, and the transformer inverses train from them."""

import json

import pytest
import torch

from inversion.core.checkpoints import CheckpointError
from inversion.core.detector import Detector
from inversion.training.data import DatasetError, open_dataset
from inversion.training.feature_cache import FeatureCache, cached_representations, collate_features, write_cache
from inversion.training.trainer import TrainingConfig, train


@pytest.fixture()
def cache(tmp_path, tiny_detector, image_folder):
    return write_cache(tiny_detector, open_dataset(image_folder), tmp_path / "cache", shard_size=5, batch_size=4,
                       workers=0)


@pytest.fixture()
def named_cache(tmp_path, tiny_detector, tiny_detector_folder, image_folder):
    """A cache written by the tiny detector under the name the trainer will load it by (its folder)."""
    named = Detector(tiny_detector.model, tiny_detector.working_size, name=str(tiny_detector_folder))
    return write_cache(named, open_dataset(image_folder), tmp_path / "named-cache", batch_size=4, workers=0)


def cache_config(tmp_path, folder, images, cache_folder, **changes) -> TrainingConfig:
    settings = dict(data=str(images), out=str(tmp_path / "run"), detector=str(folder), working_size=(64, 96),
                    steps=30, batch_size=4, warmup_steps=1, val_every=30, save_every=30, log_every=1, workers=0,
                    feature_cache=str(cache_folder), stages=("encoder", "decoder", "prediction"))
    return TrainingConfig(**{**settings, **changes})


def test_cached_targets_equal_recomputed_ones_within_fp16(cache, tiny_detector, image_folder):
    features = FeatureCache(cache)
    dataset = open_dataset(image_folder)
    assert len(features) == len(dataset) == 12
    shards = json.loads((cache / "cache.json").read_text())["shards"]
    assert [shard["count"] for shard in shards] == [8, 4]  # batches of 4 fill shards of at least 5
    for index in (0, 7, 8, 11):  # both ends of both shards
        reps = tiny_detector.capture([dataset[index][0]])
        cached = cached_representations(collate_features([features[index]]), torch.device("cpu"))
        for recomputed, stored in ((reps.encoder[0], cached.encoder[0]), (reps.encoder[-1], cached.encoder[-1]),
                                   (reps.decoder[-1], cached.decoder[-1]), (reps.logits, cached.logits),
                                   (reps.boxes, cached.boxes)):
            torch.testing.assert_close(stored, recomputed, atol=2e-3, rtol=2e-3)
        assert torch.equal(cached.grid_mask, reps.grid_mask)
        torch.testing.assert_close(cached.backbone, reps.backbone, atol=2e-3, rtol=2e-3)


def test_training_from_the_cache_lowers_the_three_losses(named_cache, tmp_path, tiny_detector_folder, image_folder):
    rates = {"backbone": 1e-3, "encoder": 1e-3, "decoder": 1e-3, "prediction": 3e-3}
    train(cache_config(tmp_path, tiny_detector_folder, image_folder, named_cache, learning_rates=rates))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert set(losses[0]) == {"encoder", "decoder", "prediction"}
    for stage in losses[0]:
        assert sum(step[stage] for step in losses[-5:]) < sum(step[stage] for step in losses[:5]), stage


def test_a_cache_from_another_detector_is_refused(cache, tmp_path, tiny_detector_folder, image_folder):
    with pytest.raises(CheckpointError, match="was made by 'tiny-detr'"):
        train(cache_config(tmp_path, tiny_detector_folder, image_folder, cache, steps=1))


def test_modules_that_need_pixels_cannot_train_from_a_cache(named_cache, tmp_path, tiny_detector_folder, image_folder):
    with pytest.raises(DatasetError, match="trains only the encoder, decoder, prediction inverses"):
        train(cache_config(tmp_path, tiny_detector_folder, image_folder, named_cache, stages=("backbone",)))
    with pytest.raises(DatasetError, match="needs pixels"):
        train(cache_config(tmp_path, tiny_detector_folder, image_folder, named_cache, objective="end_to_end"))
