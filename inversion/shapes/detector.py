"""Training recipe for the small detectors of the Shapes world, from scratch on a CPU.

The model is a detection transformer of a supported family (`--family`, its config model type:
`detr` by default, `conditional_detr`, ...) with transformers' own ResNet backbone cut after
three stages (stride 16: a 128 px image gives an 8 x 8 feature grid), trained with DETR's
Hungarian-matching loss (each family's own) on an endless seeded stream of Shapes images. The held-out images
come from another seed, which training never sees.

Two departures from DETR's defaults make training from scratch work:
- DETR freezes its backbone (its name filter does not match transformers' ResNet parameter
  names, so nothing of it trains) and swaps BatchNorm for a frozen copy; we unfreeze the
  backbone and train with real BatchNorm, then save its statistics into DETR's frozen
  layers, so the saved model is a plain model of its family.
- Dropout 0: the stream never repeats an image.

Preprocessing (the contract of the lead's detector wrapper): RGB S x S in [0, 1], normalised
with the ImageNet mean and std, pixel mask all ones, no resizing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoModelForObjectDetection, PreTrainedModel, ResNetConfig

from ..core.families import family_for
from ..core.images import normalise
from ..experiments.coco_ap import coco_ap, coco_from_dict, detections_from_outputs
from .training_log import TrainingLog
from .world import ID2LABEL, IMAGE_SIZE, PROTOTYPE_PROB, ShapeObject, coco_dataset, generate_sample, sample_rng

TRAIN_SEED = 0
HELDOUT_SEED = 1


@dataclass
class DetectorRecipe:
    """The recipe: model size, optimisation and evaluation schedule."""

    out: str = "checkpoints/shapes/detector"  # best checkpoint (by held-out AP) goes here
    log: str = "runs/shapes_detector/train.log"
    image_size: int = IMAGE_SIZE
    # model
    family: str = "detr"  # the config model type: detr, conditional_detr, dab-detr, table-transformer, deformable_detr
    backbone_widths: tuple[int, ...] = (32, 64, 128)  # ResNet stages; 3 stages = stride 16
    backbone_depths: tuple[int, ...] = (1, 1, 1)
    d_model: int = 128
    layers: int = 3  # encoder layers, and as many decoder layers
    heads: int = 8
    ffn: int = 512
    queries: int = 16
    # optimisation
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup: int = 500
    min_lr_ratio: float = 0.02  # cosine decay down to lr * min_lr_ratio
    grad_clip: float = 0.1
    seed: int = TRAIN_SEED  # training stream and initialisation
    # evaluation
    eval_seed: int = HELDOUT_SEED
    eval_every: int = 2000
    eval_images: int = 200
    threads: int = 2
    workers: int = 1  # processes drawing training images; 0 draws them in this process (no fork)
    # data
    prototype_share: float = PROTOTYPE_PROB  # of the training stream and the held-out images alike
    # warm start: a saved detector (save_detector folder) to fine-tune instead of a random initialisation;
    # its architecture replaces the model fields above, and it is evaluated once before the first step
    init_from: str = ""


def build_detector(cfg: DetectorRecipe) -> PreTrainedModel:
    """A randomly initialised small detector of the recipe's family, with the Shapes labels."""
    family, stages = family_for(cfg.family), len(cfg.backbone_widths)
    read = range(stages - min(family.backbone_stages, stages - 1) + 1, stages + 1)  # the last stages, never the first
    backbone = ResNetConfig(
        embedding_size=cfg.backbone_widths[0], hidden_sizes=list(cfg.backbone_widths),
        depths=list(cfg.backbone_depths), layer_type="basic", out_features=[f"stage{stage}" for stage in read],
    )
    config = AutoConfig.for_model(
        cfg.family, use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
        **family.scale_config(cfg.d_model, [cfg.backbone_widths[stage - 1] for stage in read]),
        **{family.width_attribute: cfg.d_model}, encoder_layers=cfg.layers, decoder_layers=cfg.layers,
        encoder_attention_heads=cfg.heads, decoder_attention_heads=cfg.heads,
        encoder_ffn_dim=cfg.ffn, decoder_ffn_dim=cfg.ffn, num_queries=cfg.queries,
        dropout=0.0, auxiliary_loss=True, id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()},
    )
    return family_for(config).model_class(config)


def trainable_backbone(model: PreTrainedModel) -> None:
    """Unfreeze the backbone and give it real BatchNorm layers (initialised from the frozen ones)."""
    for parent in model.model.backbone.modules():
        for name, child in parent.named_children():
            if type(child).__name__.endswith("FrozenBatchNorm2d"):  # each family has its own copy
                norm = nn.BatchNorm2d(child.weight.numel())
                norm.load_state_dict(child.state_dict(), strict=False)
                setattr(parent, name, norm)
    model.model.unfreeze_backbone()


def save_detector(model: PreTrainedModel, out: str | Path) -> None:
    """Save as a plain model of its family (frozen BatchNorm holding the trained statistics): config.json +
    model.safetensors."""
    plain = type(model)(model.config)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    plain.load_state_dict(state)
    plain.save_pretrained(out)


def pixel_values(images: list[Image.Image]) -> torch.Tensor:
    """RGB images -> B x 3 x H x W, ImageNet-normalised."""
    x = torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images])).permute(0, 3, 1, 2)
    return normalise(x.float() / 255)


def target(objects: list[ShapeObject], size: int) -> dict[str, torch.Tensor]:
    """DETR's training target of one image: label ids and normalised (cx, cy, w, h) boxes."""
    boxes = [((x + w / 2) / size, (y + h / 2) / size, w / size, h / size) for x, y, w, h in (o.box for o in objects)]
    return {
        "class_labels": torch.tensor([o.category_id for o in objects], dtype=torch.long),
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
    }


class ShapesStream(torch.utils.data.IterableDataset):
    """Endless training batches: batch k holds samples k*B .. k*B+B-1 of the stream `seed`."""

    def __init__(self, seed: int, batch_size: int, size: int, prototype_share: float = PROTOTYPE_PROB):
        self.seed, self.batch_size, self.size, self.prototype_share = seed, batch_size, size, prototype_share

    def __iter__(self):
        for k in count():
            samples = [generate_sample(sample_rng(self.seed, k * self.batch_size + i), self.size, self.prototype_share)
                       for i in range(self.batch_size)]
            yield pixel_values([im for im, _ in samples]), [target(objs, self.size) for _, objs in samples]


def heldout(n: int, seed: int = HELDOUT_SEED, size: int = IMAGE_SIZE, prototype_share: float = PROTOTYPE_PROB):
    """The first n samples of a held-out stream: (COCO ground truth, normalised pixels)."""
    samples = [(f"{i:06d}.png", generate_sample(sample_rng(seed, i), size, prototype_share)) for i in range(n)]
    return coco_from_dict(coco_dataset(samples)), pixel_values([im for _, (im, _) in samples])


@torch.no_grad()
def evaluate(model: PreTrainedModel, coco_gt, pixels: torch.Tensor, batch_size: int = 50) -> dict:
    """COCO AP of the model on normalised images whose ids are 1..N in `coco_gt`."""
    was_training = model.training
    model.eval()
    detections = []
    for start in range(0, len(pixels), batch_size):
        x = pixels[start : start + batch_size]
        out = model(pixel_values=x, pixel_mask=torch.ones(x.shape[0], *x.shape[2:], dtype=torch.long))
        ids = list(range(start + 1, start + 1 + len(x)))
        probabilities = family_for(model.config).class_probabilities(out.logits)
        detections += detections_from_outputs(probabilities, out.pred_boxes, ids, [tuple(x.shape[2:])] * len(x))
    model.train(was_training)
    return coco_ap(coco_gt, detections)


def lr_factor(step: int, cfg: DetectorRecipe) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _one_thread_worker(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def train(cfg: DetectorRecipe) -> dict:
    """Train, evaluating every eval_every steps; the best model by held-out AP is saved to cfg.out."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    log = TrainingLog(cfg.log)

    model = load_trained(cfg.init_from) if cfg.init_from else build_detector(cfg)
    trainable_backbone(model)
    model.train()
    log(f"config {json.dumps(dataclasses.asdict(cfg))}")
    log(f"parameters {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
    coco_gt, eval_pixels = heldout(cfg.eval_images, cfg.eval_seed, cfg.image_size, cfg.prototype_share)
    batches = torch.utils.data.DataLoader(
        ShapesStream(cfg.seed, cfg.batch_size, cfg.image_size, cfg.prototype_share), batch_size=None,
        num_workers=cfg.workers, worker_init_fn=_one_thread_worker, prefetch_factor=4 if cfg.workers else None,
    )
    mask = torch.ones(cfg.batch_size, cfg.image_size, cfg.image_size, dtype=torch.long)
    best, start, running = {"AP": -1.0}, time.time(), None
    if cfg.init_from:
        ap = evaluate(model, coco_gt, eval_pixels)
        log(f"eval step 0 (warm start from {cfg.init_from}) AP {ap['AP']:.4f} AP50 {ap['AP50']:.4f} "
            f"per_class {json.dumps({k: round(v, 3) for k, v in ap['per_class'].items()})}")
    for step, (x, labels) in enumerate(batches, start=1):
        loss = model(pixel_values=x, pixel_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0:
            elapsed = time.time() - start
            log(f"step {step} loss {running:.3f} lr {scheduler.get_last_lr()[0]:.2e} "
                f"{step / elapsed:.2f} steps/s {elapsed / 60:.1f} min")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ap = evaluate(model, coco_gt, eval_pixels)
            log(f"eval step {step} AP {ap['AP']:.4f} AP50 {ap['AP50']:.4f} "
                f"per_class {json.dumps({k: round(v, 3) for k, v in ap['per_class'].items()})}")
            if ap["AP"] > best["AP"]:
                best = {**ap, "step": step}
                save_detector(model, cfg.out)
                log(f"saved {cfg.out} (step {step})")
        if step == cfg.steps:
            break
    log(f"done {cfg.steps} steps in {(time.time() - start) / 60:.1f} min; best {json.dumps(best)}")
    log.close()
    return best


def load_trained(path: str | Path) -> PreTrainedModel:
    """The saved detector, in eval mode."""
    return AutoModelForObjectDetection.from_pretrained(path).eval()
