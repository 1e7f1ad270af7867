"""Precomputed detector (or classifier) targets, so the transformer inverses train without rerunning the network.

    python -m inversion cache-features --model shapes --data DIR --out CACHE

runs the frozen detector once over a dataset and writes fp16 shards (safetensors) holding, per
image, what the inverse encoder, decoder and prediction modules learn from: the projected
backbone tokens, the final encoder tokens, the final decoder output, the logits and boxes, and the
grid mask. `python -m inversion train --feature-cache CACHE ...` then trains those three modules
from the shards (the inverse backbone needs pixels, so it is left out of such a run). A classifier's cache
holds its own targets (`classifier_cache`): its encoder, pooled and logits inverses train from it.

A cache records the dataset (folder and split) it was written from, so that a run refuses to
validate on its own training images; `ShardGroupedSampler` shuffles shards, then the items within
each, so that a shuffled epoch reads every shard once.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from ..core.checkpoints import CheckpointError
from ..core.classifier import Classifier
from ..core.detector import Detector
from ..core.stages import Representations, tokens_to_levels
from .classifier_cache import classifier_targets
from .data import MAX_UNREADABLE_SHARE, DatasetError, UnreadableImages, collate, epoch_generator, readable

CACHE_FILE = "cache.json"
CACHED_STAGES = ("encoder", "decoder", "prediction")
FIELDS = ("backbone_tokens", "encoder", "decoder", "logits", "boxes", "grid_mask")
LEVEL_MASK = "level_mask_{}"  # a multi-scale detector's coarser levels' masks (1, 2, ...): they shape its tokens


def network_identity(network: Detector | Classifier) -> dict:
    """What a cache records of the network that wrote it, and checks against the one that reads it."""
    if isinstance(network, Classifier):
        return {"classifier": {"id": network.name, "revision": network.revision}, "input_size": list(network.image_size)}
    return {"detector": {"id": network.name, "revision": network.revision}, "working_size": list(network.working_size)}


def detector_targets(reps: Representations) -> dict[str, torch.Tensor]:
    """The tensors a cache keeps of one detector batch, by field name (the grid masks as uint8)."""
    targets = dict(zip(FIELDS, (reps.encoder[0], reps.encoder[-1], reps.decoder[-1], reps.logits, reps.boxes, reps.grid_mask)))
    targets.update({LEVEL_MASK.format(level): mask for level, mask in enumerate(reps.level_masks[1:], start=1)})
    return targets


@torch.no_grad()
def write_cache(network: Detector | Classifier, dataset: Dataset, out: str | Path, shard_size: int = 512,
                batch_size: int = 16, workers: int = 2, max_unreadable: float = MAX_UNREADABLE_SHARE) -> Path:
    """Capture every image once with a detector (or classifier) and write its targets as fp16 safetensors shards
    (masks as uint8) plus cache.json.

    The dataset's `source` (folder and split, as `open_dataset` records them) is recorded as what the
    cache holds; unreadable images are left out and listed in cache.json (more than `max_unreadable` fail).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(readable(dataset), batch_size=batch_size, collate_fn=collate, num_workers=workers)
    unreadable = UnreadableImages(len(dataset), max_unreadable)
    pending: dict[str, list[torch.Tensor]] = {}
    shards = []

    def flush():
        if not pending:
            return
        tensors = {name: torch.cat(values).contiguous() for name, values in pending.items()}
        name = f"shard-{len(shards):05d}.safetensors"
        save_file(tensors, out / name)
        shards.append({"file": name, "count": len(tensors["logits"])})
        pending.clear()

    for batch in tqdm(loader, desc="caching targets"):
        unreadable.add(batch.unreadable)
        images = batch.images
        if not images:
            continue
        reps = network.capture(images)
        targets = classifier_targets(network, reps) if isinstance(network, Classifier) else detector_targets(reps)
        for name, tensor in targets.items():
            kept = tensor.cpu().to(torch.uint8 if tensor.dtype == torch.bool else torch.float16)
            pending.setdefault(name, []).append(kept)
        if sum(len(t) for t in pending["logits"]) >= shard_size:
            flush()
    flush()
    description = {**network_identity(network), "shards": shards, "dataset": getattr(dataset, "source", None),
                   "unreadable_images": unreadable.found}
    (out / CACHE_FILE).write_text(json.dumps(description, indent=2))
    return out


class FeatureCache(Dataset):
    """The cached targets of one image per item, as a dict of tensors (fp16 as stored)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        try:
            self.description = json.loads((self.folder / CACHE_FILE).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DatasetError(f"{self.folder} is not a feature cache (no readable {CACHE_FILE}): {error}") from error
        self.ends = []
        total = 0
        for shard in self.description["shards"]:
            total += shard["count"]
            self.ends.append(total)
        self._loaded: tuple[int, dict[str, torch.Tensor]] | None = None
        self.shard_loads = 0  # how many times a shard was read from disk (in this process)

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def check_network(self, network: Detector | Classifier) -> None:
        """Refuse a cache written by another network or at another working (or input) size."""
        expected = network_identity(network)
        if any(self.description.get(key) != value for key, value in expected.items()):
            kind, size = expected
            made_by = self.description.get(kind) or {"id": "another kind of network", "revision": None}
            raise CheckpointError(
                f"The feature cache {self.folder} was made by {made_by['id']!r} (revision {made_by['revision']!r}) at "
                f"{self.description.get(size)}, not by {network.name!r} at {expected[size]}."
            )

    def check_not_validation(self, data: str, split: str | None, named_for_validation: bool) -> None:
        """Refuse to validate on the dataset this cache was written from (its images are the training set); a cache
        that does not record its dataset is accepted only with a dataset `named_for_validation` (--val-data)."""
        source = self.description.get("dataset")
        if source is None:
            if named_for_validation:
                return
            raise DatasetError(f"The feature cache {self.folder} does not record the dataset it was written from: pass "
                               "--val-data with images it does not hold, or write the cache again.")
        if Path(source["data"]).resolve() == Path(data).resolve() and source.get("split") == split:
            raise DatasetError(f"The feature cache {self.folder} was written from {source['data']} (split "
                               f"{source.get('split')}), the data it would be validated on: pass --val-data "
                               "(and --val-split) with held-out images.")

    def _shard(self, number: int) -> dict[str, torch.Tensor]:
        if self._loaded is None or self._loaded[0] != number:
            self.shard_loads += 1
            path = self.folder / self.description["shards"][number]["file"]
            with safe_open(str(path), framework="pt") as shard:
                self._loaded = (number, {name: shard.get_tensor(name) for name in shard.keys()})
        return self._loaded[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        number = bisect.bisect_right(self.ends, index)
        start = self.ends[number - 1] if number else 0
        return {name: tensor[index - start] for name, tensor in self._shard(number).items()}


class ShardGroupedSampler(Sampler[int]):
    """Shards in a random order, then the items of each shard in a random order: one shard read per shard and
    epoch (per worker) instead of nearly one per item. Each epoch reshuffles, from `seed` and the epoch alone,
    so that every process of a distributed run draws the same order."""

    def __init__(self, cache: FeatureCache, seed: int = 0):
        self.ends, self.seed, self.epoch = cache.ends, seed, 0

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def __iter__(self) -> Iterator[int]:
        generator = epoch_generator(self.seed, self.epoch)
        self.epoch += 1
        for shard in torch.randperm(len(self.ends), generator=generator).tolist():
            start = self.ends[shard - 1] if shard else 0
            yield from (start + offset for offset in torch.randperm(self.ends[shard] - start, generator=generator).tolist())


def collate_features(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack cached items into a batch."""
    return {name: torch.stack([item[name] for item in items]) for name in items[0]}


def cached_representations(batch: dict[str, torch.Tensor], device: torch.device) -> Representations:
    """A Representations holding what the cached stages' inverses need (float32, on `device`).

    Only the first and last encoder entries and the last decoder entry exist; there are no pixels.
    """
    tensors = {name: tensor.to(device) for name, tensor in batch.items()}
    floats = {name: tensors[name].float() for name in FIELDS if name != "grid_mask"}
    grid_mask = tensors["grid_mask"].bool()
    coarser = [tensors[LEVEL_MASK.format(level)] for level in range(1, len(tensors)) if LEVEL_MASK.format(level) in tensors]
    tokens = floats["backbone_tokens"]
    levels = tokens_to_levels(tokens, [grid_mask, *coarser])
    return Representations(
        backbone=levels[0],
        extra_levels=levels[1:],
        encoder=[tokens, floats["encoder"]],
        decoder=[floats["decoder"]],
        logits=floats["logits"],
        boxes=floats["boxes"],
        grid_mask=grid_mask,
        pixels=torch.empty(len(tokens), 3, 0, 0, device=device),
        content_sizes=[],
        original_sizes=[],
    )
