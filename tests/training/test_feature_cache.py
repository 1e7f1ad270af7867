"""Cached detector targets equal recomputed ones, and the transformer inverses train from them."""

import json

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from inversion.core.checkpoints import CheckpointError
from inversion.core.detector import Detector
from inversion.core.families import family_for
from inversion.testing import random_image, tiny_config
from inversion.training.data import DatasetError
from inversion.training.feature_cache import (
    FeatureCache,
    ShardGroupedSampler,
    cached_representations,
    collate_features,
    write_cache,
)
from inversion.training.sources import open_dataset
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


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Four images that are not in the cached image folder, to validate on."""
    folder = tmp_path_factory.mktemp("held-out")
    for index in range(4):
        random_image(56, 72, seed=100 + index).save(folder / f"held_{index}.png")
    return folder


def cache_config(tmp_path, folder, images, cache_folder, held_out=None, **changes) -> TrainingConfig:
    settings = dict(data=str(images), val_data=held_out and str(held_out), out=str(tmp_path / "run"), detector=str(folder),
                    working_size=(64, 96),
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


def test_training_from_the_cache_lowers_the_three_losses(named_cache, tmp_path, tiny_detector_folder, image_folder,
                                                         held_out):
    rates = {"backbone": 1e-3, "encoder": 1e-3, "decoder": 1e-3, "prediction": 3e-3}
    result = train(cache_config(tmp_path, tiny_detector_folder, image_folder, named_cache, held_out, learning_rates=rates))
    # the inverse backbone was never trained: no chain from any stage is, so none is scored
    assert result["stages"] == {stage: {"trained": False} for stage in ("backbone", "encoder", "decoder", "prediction")}
    assert set(result["local_loss"]) == {"encoder", "decoder", "prediction"}
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert set(losses[0]) == {"encoder", "decoder", "prediction"}
    for stage in losses[0]:
        assert sum(step[stage] for step in losses[-5:]) < sum(step[stage] for step in losses[:5]), stage


def test_a_cache_from_another_detector_is_refused(cache, tmp_path, tiny_detector_folder, image_folder):
    with pytest.raises(CheckpointError, match="was made by 'tiny-detr'"):
        train(cache_config(tmp_path, tiny_detector_folder, image_folder, cache, steps=1))


def test_a_cache_records_its_dataset_and_is_never_its_own_validation_set(named_cache, tmp_path, tiny_detector_folder,
                                                                          image_folder, held_out):
    recorded = json.loads((named_cache / "cache.json").read_text())["dataset"]
    assert recorded == {"data": str(image_folder.resolve()), "split": None}
    with pytest.raises(DatasetError, match="the data it would be validated on: pass --val-data"):
        train(cache_config(tmp_path, tiny_detector_folder, image_folder, named_cache, steps=1))
    with pytest.raises(DatasetError, match="the data it would be validated on"):
        train(cache_config(tmp_path, tiny_detector_folder, held_out, named_cache, image_folder, steps=1))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def shard_loads_in_one_epoch(cache_folder, sampler_for) -> int:
    features = FeatureCache(cache_folder)
    for _ in DataLoader(features, batch_size=4, sampler=sampler_for(features), collate_fn=collate_features):
        pass
    return features.shard_loads


def test_grouped_shuffling_reads_each_shard_once_an_epoch_and_every_item_once(tmp_path, tiny_detector, image_folder):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(64):
        random_image(40, 56, seed=index).save(images / f"{index:02d}.png")
    cache = write_cache(tiny_detector, open_dataset(images), tmp_path / "cache64", shard_size=8, batch_size=8, workers=0)
    shuffled = shard_loads_in_one_epoch(cache, lambda features: RandomSampler(features, generator=torch.Generator().manual_seed(0)))
    grouped = shard_loads_in_one_epoch(cache, lambda features: ShardGroupedSampler(features, seed=0))
    assert (shuffled, grouped) == (60, 8)  # 64 items in 8 shards: shuffled freely, nearly a read per item
    sampler = ShardGroupedSampler(FeatureCache(cache), seed=3)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == list(range(64)) and first != second  # each epoch a new order
    assert first == list(ShardGroupedSampler(FeatureCache(cache), seed=3))  # the same for the same seed and epoch


def test_modules_that_need_pixels_cannot_train_from_a_cache(named_cache, tmp_path, tiny_detector_folder, image_folder,
                                                           held_out):
    with pytest.raises(DatasetError, match="trains only the encoder, decoder, prediction inverses"):
        train(cache_config(tmp_path, tiny_detector_folder, image_folder, named_cache, held_out, stages=("backbone",)))
    with pytest.raises(DatasetError, match="needs pixels"):
        train(cache_config(tmp_path, tiny_detector_folder, image_folder, named_cache, held_out, objective="end_to_end",
                           stages=("backbone", "encoder", "decoder", "prediction")))


def test_a_multi_scale_detectors_cache_gives_back_every_level(tmp_path, image_folder):
    config = tiny_config("deformable_detr")
    torch.manual_seed(0)
    detector = Detector(family_for(config).model_class(config), working_size=(64, 96))
    folder = write_cache(detector, open_dataset(image_folder), tmp_path / "cache", batch_size=4, workers=0)
    dataset = open_dataset(image_folder)
    reps = detector.capture([dataset[3][0]])
    cached = cached_representations(collate_features([FeatureCache(folder)[3]]), torch.device("cpu"))
    assert [level.shape for level in cached.levels] == [level.shape for level in reps.levels] and len(reps.levels) == 4
    for stored, recomputed in zip(cached.levels, reps.levels):
        torch.testing.assert_close(stored, recomputed, atol=2e-3, rtol=2e-3)
    assert all(torch.equal(stored, recomputed) for stored, recomputed in zip(cached.level_masks, reps.level_masks))
