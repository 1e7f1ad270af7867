"""The DETR-R50 GPU recipe: the one home of the settings that docs/training.md's commands and `train-job` use.

Where the values come from: the Shapes headroom study (inversion/shapes/headroom.py,
checkpoints/shapes/headroom/README.md; twelve points so far, no stage converged yet) says that
- training length gains at every size measured: the shipped size M gains 3.3 dB from the backbone from 625 to
  10,000 steps, while capacity gains nothing at 625 steps (M to L: -0.03 dB) and more the longer the training
  (S to M: 0.17 dB at 625 steps, 0.45 at 2,500, 0.82 at 10,000; M to L 0.44 at 2,500); so the recipe spends its
  budget on steps and keeps the shipped architecture (the inverse backbone halving its width from d_model at every
  x2 step, as the Shapes M: here 256, 128, 64, 32, 16; 6.6% of the detector's forward at 480x640, inside the 15%
  FLOPs budget; 1.5x the width would keep that budget (14.0%) but not the app's request time, capture and every
  reconstruction within 2x a plain forward on CPU: 1.76 with this width, 1.99 to 2.08 at 1.25x, 2.12 to 2.25 at
  1.5x, docs/benchmarks.md);
- the feature-matching term (relative, weight DEFAULT_FEATURE_WEIGHT) is adopted: at 10,000 steps it costs
  0.27 dB from the backbone and finds 0.91 of the objects again against 0.66 (from the decoder 0.67 against 0.30),
  and detectors whose features it never matched find them too; a patch critic on top of it is not adopted
  (ADVERSARIAL_WEIGHT 0: at 2,500 steps it costs 0.2 dB for a few more objects by independent judges, one untuned
  point); the paper's pixel MSE alone is `--feature-weight 0`;
- the learning rates are the trainer's defaults, with warm-up over 3% of the steps and cosine decay
  (the study's and the shipped inverters' recipe: `WARMUP_SHARE`, which the study imports from here).
The length is docs/training.md's: 6.4 M training images (200,000 steps of 32 on one GPU, about 54 epochs
of COCO train2017); with more GPUs the same images in fewer steps (batch 32 per GPU).
"""

from __future__ import annotations

from .objectives import DEFAULT_FEATURE_WEIGHT, DEFAULT_LEARNING_RATES

DETECTOR = "facebook/detr-resnet-50"
REVISION = "1d5f47bd3bdd2c4bbfa585418ffe6da5028b4c0b"  # its main, with model.safetensors (space_config.yaml pins the same)
WORKING_SIZE = (480, 640)
BACKBONE_WIDTHS = (256, 128, 64, 32, 16)  # d_model 256 halved at each of the five x2 steps (the shipped Shapes M rule)
OBJECTIVE = "modular"
FEATURE_WEIGHT = DEFAULT_FEATURE_WEIGHT  # pixel MSE + the relative feature-matching term
ADVERSARIAL_WEIGHT = 0.0  # no patch critic
# One training image's GFLOPs under this recipe at WORKING_SIZE: the frozen detector's capture (57.3) and the inverse
# modules' forward and backward, through the detector's ResNet-50 for the feature term (141.8; 41.1 without it),
# counted by `python -m benchmarks.core` (recipe_training_gflops; a test recounts).
TRAINING_GFLOPS_PER_IMAGE = 199.1
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
