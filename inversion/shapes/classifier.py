"""The Shapes world as a classification task, and the recipe of the small ViT trained on it on a CPU.

The task (multi-label): which of the four classes an image holds (circle, square, triangle, star; 1 to 4
objects, so 1 to 4 classes present), one sigmoid per class, trained with binary cross-entropy. It needs no
localisation, and since most objects wear their class's hue, colour is a strong cue, as in the detection
world. The images are the world's own 128 px samples resized to the ViT's input as `Classifier.preprocess`
resizes any image; the held-out images come from the detector's held-out seed, which training never sees.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import SwinConfig, SwinForImageClassification, ViTConfig, ViTForImageClassification

from ..core.classifier import PRESENT_THRESHOLD, Classifier
from ..core.classifier_checkpoints import save_classifier_inverters
from ..core.classifier_inverters import ANALYTIC_LABEL, AnalyticPatchInverse, ClassifierInverterConfig, ClassifierInverterStack
from ..core.classifier_stages import CLASSIFIER_STAGE_SOURCES, ClassifierSource
from ..core.metrics import image_quality
from ..experiments.colour import PERTURBATIONS, perturb
from ..training.classifier_objectives import DEFAULT_CLASSIFIER_LEARNING_RATES, ClassifierModularObjective
from ..training.trainer import TrainingConfig, build_optimizers
from .detector import HELDOUT_SEED, TRAIN_SEED
from .training_log import TrainingLog
from .world import CLASS_NAMES, IMAGE_SIZE, generate_sample, sample_rng

LABELS = dict(enumerate(CLASS_NAMES))  # label id -> class name (no "N/A": a class is present or not)


@dataclass
class ClassifierRecipe:
    """The small ViT's size, optimisation and evaluation schedule."""

    out: str = "checkpoints/shapes/classifier-vit"
    log: str = "runs/shapes_classifier/train.log"
    family: str = "vit"  # or "swin": two stages of `layers` // 2 blocks, 4 x 4 windows, one patch merging
    input_size: int = 64  # the model's input: the 128 px world resized
    patch_size: int = 4  # 48 values a patch, below the width: the patch embedding is invertible
    width: int = 64
    layers: int = 4
    heads: int = 4
    mlp: int = 128  # ViT's MLP width (Swin's is twice its stage's width)
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 200
    seed: int = TRAIN_SEED
    eval_seed: int = HELDOUT_SEED
    eval_every: int = 500
    eval_images: int = 400
    threads: int = 1


def build_classifier(recipe: ClassifierRecipe) -> ViTForImageClassification | SwinForImageClassification:
    """A randomly initialised multi-label classifier of the recipe's family with the Shapes classes."""
    common = dict(image_size=recipe.input_size, patch_size=recipe.patch_size, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, num_labels=len(LABELS), id2label=LABELS,
                  label2id={name: index for index, name in LABELS.items()}, problem_type="multi_label_classification")
    if recipe.family == "swin":
        half = recipe.layers // 2
        return SwinForImageClassification(SwinConfig(embed_dim=recipe.width, depths=[half, recipe.layers - half],
                                                     num_heads=[recipe.heads, recipe.heads], window_size=4, mlp_ratio=2.0,
                                                     drop_path_rate=0.0, **common))
    if recipe.family != "vit":
        raise ValueError(f"family must be 'vit' or 'swin', not {recipe.family!r}.")
    return ViTForImageClassification(ViTConfig(hidden_size=recipe.width, num_hidden_layers=recipe.layers,
                                               num_attention_heads=recipe.heads, intermediate_size=recipe.mlp, **common))


def present(objects) -> torch.Tensor:
    """The multi-hot target of one image: 1 for each class it holds."""
    target = torch.zeros(len(LABELS))
    for found in objects:
        target[CLASS_NAMES.index(found.name)] = 1.0
    return target


def samples(seed: int, start: int, count: int, classifier: Classifier) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples start..start+count-1 of a stream: [0, 1] pixels at the classifier's input, multi-hot targets."""
    drawn = [generate_sample(sample_rng(seed, index), IMAGE_SIZE) for index in range(start, start + count)]
    return classifier.preprocess([image for image, _ in drawn]), torch.stack([present(objects) for _, objects in drawn])


@torch.no_grad()
def evaluate(classifier: Classifier, pixels: torch.Tensor, targets: torch.Tensor, batch_size: int = 100) -> dict:
    """Exact-match accuracy (all four classes right), per-class accuracy and their mean."""
    logits = torch.cat([classifier.model(pixel_values=classifier.family.normalise(pixels[start:start + batch_size])).logits
                        for start in range(0, len(pixels), batch_size)])
    predicted = (logits.sigmoid() > PRESENT_THRESHOLD).float()
    per_class = (predicted == targets).float().mean(0)
    return {"exact_match": float((predicted == targets).all(-1).float().mean()), "mean_class_accuracy": float(per_class.mean()),
            "per_class": {LABELS[index]: round(float(value), 4) for index, value in enumerate(per_class)}}


@torch.no_grad()
def colour_effect(classifier: Classifier, count: int, seed: int = HELDOUT_SEED) -> dict:
    """The classification of held-out images with every object's colour perturbed (each of the paper's
    perturbations, inside the objects' own masks): exact-match accuracy against the truth, and the share of
    images whose predicted classes stay those of the unperturbed image."""
    drawn = [generate_sample(sample_rng(seed, index), IMAGE_SIZE) for index in range(count)]
    targets = torch.stack([present(objects) for _, objects in drawn])
    masks = [np.any([found.mask for found in objects], axis=0) for _, objects in drawn]

    def classes(images) -> torch.Tensor:
        return classifier.class_probabilities(classifier.capture(images).logits) > PRESENT_THRESHOLD

    original = classes([image for image, _ in drawn])
    result = {"none": {"exact_match": round(float((original == targets.bool()).all(-1).float().mean()), 4), "unchanged": 1.0}}
    for kind in PERTURBATIONS:
        changed = classes([Image.fromarray(perturb(image, mask, kind)) for (image, _), mask in zip(drawn, masks)])
        result[kind] = {"exact_match": round(float((changed == targets.bool()).all(-1).float().mean()), 4),
                        "unchanged": round(float((changed == original).all(-1).float().mean()), 4)}
    return result


def lr_factor(step: int, recipe: ClassifierRecipe) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < recipe.warmup:
        return (step + 1) / recipe.warmup
    return 0.5 * (1 + math.cos(math.pi * (step - recipe.warmup) / max(recipe.steps - recipe.warmup, 1)))


def train(recipe: ClassifierRecipe) -> dict:
    """Train on the endless seeded stream, evaluating every eval_every steps; the best model (by exact match on
    the held-out images) is saved to recipe.out as config.json + model.safetensors."""
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    log = TrainingLog(recipe.log)

    classifier = Classifier(build_classifier(recipe))
    model = classifier.model.train().requires_grad_(True)
    log(f"config {json.dumps(dataclasses.asdict(recipe))}")
    log(f"parameters {sum(p.numel() for p in model.parameters()) / 1e6:.3f}M")
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, recipe))
    eval_pixels, eval_targets = samples(recipe.eval_seed, 0, recipe.eval_images, classifier)
    best, start, running = {"exact_match": -1.0}, time.time(), None
    for step in range(1, recipe.steps + 1):
        pixels, targets = samples(recipe.seed, (step - 1) * recipe.batch_size, recipe.batch_size, classifier)
        loss = model(pixel_values=classifier.family.normalise(pixels), labels=targets).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0:
            elapsed = time.time() - start
            log(f"step {step} loss {running:.4f} lr {scheduler.get_last_lr()[0]:.2e} {step / elapsed:.2f} steps/s "
                f"{elapsed / 60:.1f} min")
        if step % recipe.eval_every == 0 or step == recipe.steps:
            model.eval()
            result = evaluate(classifier, eval_pixels, eval_targets)
            model.train()
            log(f"eval step {step} {json.dumps(result)}")
            if result["exact_match"] > best["exact_match"]:
                best = {**result, "step": step}
                model.save_pretrained(recipe.out)
                log(f"saved {recipe.out} (step {step})")
    log(f"done {recipe.steps} steps in {(time.time() - start) / 60:.1f} min; best {json.dumps(best)}")
    log.close()
    return best


INVERTER_SEED = 2  # the inverters' training stream: neither the classifier's nor the held-out one


@dataclass
class InverterRecipe:
    """The modular training of a Shapes classifier's inverse modules (the trainer's optimizers and schedules)."""

    classifier: str = "checkpoints/shapes/classifier-vit"
    out: str = "checkpoints/shapes/classifier-vit-inverters"
    log: str = "runs/shapes_classifier_inverters/train.log"
    steps: int = 1500
    batch_size: int = 32
    warmup: int = 100
    seed: int = INVERTER_SEED
    eval_seed: int = HELDOUT_SEED
    eval_every: int = 500
    eval_images: int = 64
    threads: int = 1


@torch.no_grad()
def reconstruction_quality(classifier: Classifier, stack: ClassifierInverterStack, pixels: torch.Tensor) -> dict:
    """Per source (every stage's output through the learned chain, every encoder entry, and the embedding by the
    analytic patch inverse): PSNR and SSIM of the reconstructions, and `agreement`, the share of images whose
    reconstruction the classifier gives the same classes as the original."""
    reps = classifier.capture(pixels)
    sources = [*CLASSIFIER_STAGE_SOURCES, *(ClassifierSource("encoder", entry) for entry in range(len(reps.encoder) - 1))]
    reconstructions = {source.label: stack.invert(reps, source) for source in sources}
    reconstructions[ANALYTIC_LABEL] = stack.invert(reps, ClassifierSource("embedding"), AnalyticPatchInverse(classifier))
    classes = classifier.class_probabilities(reps.logits) > PRESENT_THRESHOLD
    quality = {}
    for label, images in reconstructions.items():
        scores = image_quality(images, pixels)
        again = classifier.class_probabilities(classifier.capture(images.clamp(0, 1)).logits) > PRESENT_THRESHOLD
        quality[label] = {"psnr": round(scores["psnr"], 2), "ssim": round(scores["ssim"], 4),
                          "agreement": round(float((again == classes).all(-1).float().mean()), 4)}
    return quality


def train_inverters(recipe: InverterRecipe) -> dict:
    """Train every inverse module of a saved Shapes classifier against its local target, on a seeded stream;
    evaluate the chains on held-out images and save the stack (with its notes) to recipe.out."""
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    log = TrainingLog(recipe.log)

    classifier = Classifier.from_pretrained(recipe.classifier)
    stack = ClassifierInverterStack(ClassifierInverterConfig.for_classifier(classifier))
    objective = ClassifierModularObjective(stack).train()
    settings = TrainingConfig(data="", steps=recipe.steps, warmup_steps=recipe.warmup,
                              learning_rates=dict(DEFAULT_CLASSIFIER_LEARNING_RATES))
    optimizers, schedulers = build_optimizers(settings, objective)
    log(f"config {json.dumps(dataclasses.asdict(recipe))}")
    log(f"inverter parameters {sum(p.numel() for p in stack.parameters()) / 1e6:.3f}M")
    eval_pixels, _ = samples(recipe.eval_seed, 0, recipe.eval_images, classifier)
    result, start = {}, time.time()
    for step in range(1, recipe.steps + 1):
        pixels, _ = samples(recipe.seed, (step - 1) * recipe.batch_size, recipe.batch_size, classifier)
        losses = objective(classifier.capture(pixels))
        sum(losses.values()).backward()
        for stage, optimizer in optimizers.items():
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], settings.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedulers[stage].step()
        if step % 50 == 0:
            elapsed = time.time() - start
            log(f"step {step} " + " ".join(f"{stage} {float(loss.detach()):.4f}" for stage, loss in losses.items())
                + f" {step / elapsed:.2f} steps/s {elapsed / 60:.1f} min")
        if step % recipe.eval_every == 0 or step == recipe.steps:
            objective.eval()
            result = reconstruction_quality(classifier, stack, eval_pixels)
            objective.train()
            log(f"eval step {step} {json.dumps(result)}")
    minutes = (time.time() - start) / 60
    save_classifier_inverters(stack, recipe.out, classifier, notes={"objective": "modular", "step": recipe.steps,
                                                                    "minutes": round(minutes, 1), "heldout": result,
                                                                    "recipe": dataclasses.asdict(recipe)})
    log(f"done {recipe.steps} steps in {minutes:.1f} min; saved {recipe.out}")
    log.close()
    return result
