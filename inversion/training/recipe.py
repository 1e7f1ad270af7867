"""The DETR-R50 GPU recipe: the one home of the settings that docs/training.md's commands and `train-job` use.

Where the values come from: the Shapes headroom study (inversion/shapes/headroom.py,
checkpoints/shapes/headroom/README.md), unfinished (5 of its 12 points), says so far that
- training length is what gains: the shipped size M gains 3.3 dB and 0.42 objects found again from the
  backbone going from 625 to 10,000 steps, while 4x the capacity at 625 steps gains 0.2 dB (S to M);
  so the recipe keeps the shipped architecture (the inverse backbone halving its width from d_model at
  every x2 step, as the Shapes M: here 256, 128, 64, 32, 16) and spends the budget on steps;
- the feature-matching term is not adopted: its gain in objects found is measured by the detector whose
  features it matches, and it costs PSNR; the objective stays the paper's modular pixel MSE (weight 0);
- the learning rates are the trainer's defaults, with warm-up over 3% of the steps and cosine decay
  (the study's and the shipped inverters' recipe: `WARMUP_SHARE`, which the study imports from here).
The length is docs/training.md's: 6.4 M training images (200,000 steps of 32 on one GPU, about 54 epochs
of COCO train2017); with more GPUs the same images in fewer steps (batch 32 per GPU). Revisit these when
the study's 10,000-step points are in.
"""

from __future__ import annotations

from .objectives import DEFAULT_LEARNING_RATES

DETECTOR = "facebook/detr-resnet-50"
REVISION = "1d5f47bd3bdd2c4bbfa585418ffe6da5028b4c0b"  # its main, with model.safetensors (space_config.yaml pins the same)
WORKING_SIZE = (480, 640)
BACKBONE_WIDTHS = (256, 128, 64, 32, 16)  # d_model 256 halved at each of the five x2 steps (the shipped Shapes M rule)
OBJECTIVE = "modular"
FEATURE_WEIGHT = 0.0  # pixel MSE alone, the paper's
ADVERSARIAL_WEIGHT = 0.0  # no patch critic
# One training image's GFLOPs under this recipe at WORKING_SIZE: the frozen detector's capture (57.3) and the inverse
# modules' forward and backward (41.1), counted by `python -m benchmarks.core` (recipe_training_gflops; a test recounts).
TRAINING_GFLOPS_PER_IMAGE = 98.4
LEARNING_RATES = dict(DEFAULT_LEARNING_RATES)
BATCH_PER_GPU = 32
TRAINING_IMAGES = 6_400_000  # 200,000 steps x 32 on one GPU
VAL_IMAGES = 500  # validation and the job's evaluation: the first 500 val images
WORKERS = 8  # data-loader processes per GPU
WARMUP_SHARE = 0.03  # the shipped Shapes recipe's 300 warm-up steps of 10,000


def steps(gpus: int) -> int:
    """Training steps on `gpus` GPUs (batch BATCH_PER_GPU on each) for TRAINING_IMAGES images."""
    return TRAINING_IMAGES // (BATCH_PER_GPU * gpus)


def warmup_steps(total: int) -> int:
    """Warm-up steps of a run of `total` steps."""
    return max(1, round(WARMUP_SHARE * total))


def train_arguments(total_steps: int, backbone_widths: tuple[int, ...] | None = BACKBONE_WIDTHS) -> list[str]:
    """The recipe's `python -m inversion train` flags (the model, data and output folder are the caller's);
    `backbone_widths` None: the same halving rule at another detector's width (the trainer's default)."""
    return ["--objective", OBJECTIVE, "--feature-weight", f"{FEATURE_WEIGHT:g}", "--adversarial-weight", f"{ADVERSARIAL_WEIGHT:g}",
            *(["--backbone-widths", *map(str, backbone_widths)] if backbone_widths else []),
            "--lr", *(f"{stage}={rate:g}" for stage, rate in LEARNING_RATES.items()),
            "--steps", str(total_steps), "--warmup-steps", str(warmup_steps(total_steps)),
            "--batch-size", str(BATCH_PER_GPU), "--val-images", str(VAL_IMAGES), "--workers", str(WORKERS)]
