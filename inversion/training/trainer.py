"""One trainer for the inverse modules, the objective as a parameter.

    python -m inversion train --model shapes --data data/shapes-train --out runs/shapes-inverters
    accelerate launch --num_processes 8 -m inversion train ...        (DDP on many GPUs)

Read top to bottom: the config, then `train()` (setup, loop, validation, checkpoints).
The detector is frozen and in eval mode; its targets are recomputed for every batch without
gradients. Every inverse module has its own AdamW with warm-up and cosine decay.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..core.checkpoints import WEIGHTS_FILE, CheckpointError, load_inverters, load_weights, save_inverters
from ..core.detector import DEFAULT_WORKING_SIZE, Detector
from ..core.errors import UserFacingError
from ..core.inverters import InverterConfig, InverterStack
from ..core.metrics import image_quality
from ..core.reconstruct import input_image, reconstruct
from ..core.registry import detector_spec, find_spec, load_detector
from ..core.stages import STAGE_SOURCES, STAGES, Source
from .data import DatasetError, collate, open_dataset, split_dataset
from .feature_cache import CACHED_STAGES, FeatureCache, cached_representations, collate_features
from .objectives import EndToEndObjective, ModularObjective
from .state import STATE_CONFIG_FILE, load_training_state, save_training_state

DEFAULT_LEARNING_RATES = {"backbone": 2e-3, "encoder": 5e-4, "decoder": 3e-4, "prediction": 1e-3}


@dataclass
class TrainingConfig:
    """Everything a training run depends on (written to OUT/train_config.json)."""

    data: str
    out: str = "runs/inverters"
    model: str = "shapes"  # registry name or checkpoint folder: gives the detector and working size
    detector: str | None = None  # overrides the model's detector (Hub id or folder)
    revision: str | None = None
    working_size: tuple[int, int] | None = None
    split: str | None = None  # COCO split name, e.g. train2017
    val_data: str | None = None  # a separate validation dataset; else a fixed part of `data`
    val_split: str | None = None
    val_fraction: float = 0.05
    objective: str = "modular"  # or "end_to_end"
    feature_weight: float = 0.0  # modular: weight of the backbone feature-matching term beside pixel MSE (0: the paper's)
    stages: tuple[str, ...] = STAGES  # modular: which inverse modules to train
    init: str | None = None  # start from the weights of this inverter checkpoint
    feature_cache: str | None = None  # train from cached detector targets (inversion.feature_cache)
    steps: int = 20_000
    batch_size: int = 16
    learning_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LEARNING_RATES))
    weight_decay: float = 0.01
    warmup_steps: int = 500
    grad_clip: float = 1.0
    val_every: int = 1000
    val_images: int = 64
    save_every: int = 1000
    log_every: int = 50
    workers: int = 2
    seed: int = 0
    resume: bool = False
    precision: str = "auto"  # "auto" (bf16 on CUDA, fp32 on CPU), "bf16" or "no"
    architecture: dict = field(default_factory=dict)  # InverterConfig overrides


def detector_for(config: TrainingConfig) -> Detector:
    """The frozen detector the inverters are trained for: the model's, or --detector's (at 480x640 by default)."""
    if config.detector:
        spec = detector_spec(config.detector, config.revision, config.working_size or DEFAULT_WORKING_SIZE)
    else:
        spec = find_spec(config.model)
        spec = replace(spec, working_size=tuple(config.working_size or spec.working_size))
    return load_detector(spec)


def build_objective(config: TrainingConfig, detector: Detector) -> ModularObjective | EndToEndObjective:
    """The objective module holding the inverter stack(s) being trained."""
    if config.init:
        stack, _ = load_inverters(config.init, detector=detector)
        architecture = stack.config
    else:
        architecture = InverterConfig.for_detector(detector, **config.architecture)
        stack = InverterStack(architecture)
    if config.objective == "modular":
        if config.feature_cache and not set(config.stages) <= set(CACHED_STAGES):
            raise DatasetError(f"A feature cache trains only the {', '.join(CACHED_STAGES)} inverses: pass --stages "
                               "from those (train the inverse backbone on images).")
        return ModularObjective(stack, tuple(config.stages), config.feature_weight, detector.backbone_map)
    if config.feature_weight:
        raise UserFacingError("--feature-weight applies to the modular objective's inverse backbone: drop it, "
                              "or train with --objective modular.")
    if config.objective == "end_to_end":
        if config.feature_cache:
            raise DatasetError("The end-to-end objective needs pixels: it cannot train from a feature cache.")
        return EndToEndObjective(architecture)
    raise ValueError(f"Unknown objective {config.objective!r}: choose 'modular' or 'end_to_end'.")


def build_optimizers(config: TrainingConfig, objective) -> tuple[dict, dict]:
    """One AdamW and one warm-up + cosine schedule per loss."""
    optimizers, schedulers = {}, {}
    for stage, parameters in objective.parameter_groups().items():
        optimizers[stage] = torch.optim.AdamW(
            parameters, lr=config.learning_rates[stage], weight_decay=config.weight_decay
        )
        schedulers[stage] = get_cosine_schedule_with_warmup(optimizers[stage], config.warmup_steps, config.steps)
    return optimizers, schedulers


@torch.no_grad()
def validate(objective, detector: Detector, loader: DataLoader, max_images: int) -> dict:
    """Chained reconstruction quality from every stage (MSE, PSNR, SSIM) and the local losses."""
    objective.eval()
    quality = {stage: {"mse": [], "psnr": [], "ssim": []} for stage in STAGES}
    local: dict[str, list[float]] = {}
    seen = 0
    for images, _ in loader:
        if seen >= max_images:
            break
        representations = detector.capture(images)
        for stage, loss in objective(representations).items():
            local.setdefault(stage, []).append(float(loss))
        for name, stack in objective.stacks().items():
            sources = STAGE_SOURCES if not name else [Source(name.removeprefix("chain-"))]
            for source, reconstructions in reconstruct(stack, representations, sources).items():
                for index, image in enumerate(reconstructions):
                    for metric, value in image_quality(image, input_image(representations, index)).items():
                        quality[source.stage][metric].append(value)
        seen += len(images)
    objective.train()
    mean = lambda values: sum(values) / max(1, len(values))  # noqa: E731
    return {
        "stages": {stage: {m: mean(v) for m, v in metrics.items()} for stage, metrics in quality.items()},
        "local_loss": {stage: mean(values) for stage, values in local.items()},
        "images": seen,
    }


def save_run(config: TrainingConfig, objective, detector: Detector, optimizers, schedulers, step: int) -> None:
    """Write the inverters (one folder per stack) and the training state into config.out."""
    out = Path(config.out)
    notes = {"objective": config.objective, "backbone_loss": {"pixel_mse": 1.0, "backbone_feature_mse": config.feature_weight},
             "step": step, "train_config": asdict(config)}
    for name, stack in objective.stacks().items():
        save_inverters(stack, out / name, detector, notes)
    save_training_state(out, step, optimizers, schedulers)


def resume_run(config: TrainingConfig, objective, optimizers, schedulers) -> int:
    """Load the weights and training state written by `save`; return the step to continue from."""
    out = Path(config.out)
    if not (out / STATE_CONFIG_FILE).is_file():
        raise CheckpointError(f"--resume: {out} has no {STATE_CONFIG_FILE} to continue from.")
    for name, stack in objective.stacks().items():
        load_weights(stack, out / name / WEIGHTS_FILE)
    return load_training_state(out, optimizers, schedulers)


def training_step(accelerator: Accelerator, detector: Detector, objective, optimizers: dict, schedulers: dict,
                  batch, config: TrainingConfig) -> dict[str, torch.Tensor]:
    """One optimisation step on one batch (images, or cached targets); the losses before the step."""
    with accelerator.autocast():
        if config.feature_cache:
            representations = cached_representations(batch, accelerator.device)
        else:
            representations = detector.capture(batch[0])
        losses = objective(representations)
    accelerator.backward(sum(losses.values()))
    for stage, optimizer in optimizers.items():
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        accelerator.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedulers[stage].step()
    return losses


def train(config: TrainingConfig) -> dict:
    """Train inverse modules as configured; return the last validation result."""
    # -- setup ---------------------------------------------------------------------------------
    precision = config.precision if config.precision != "auto" else ("bf16" if torch.cuda.is_available() else "no")
    ddp = DistributedDataParallelKwargs(find_unused_parameters=config.objective == "end_to_end")
    accelerator = Accelerator(mixed_precision=precision, kwargs_handlers=[ddp])
    set_seed(config.seed)
    if config.val_data:
        train_set = open_dataset(config.data, config.split)
        val_set = open_dataset(config.val_data, config.val_split)
    else:
        train_set, val_set = split_dataset(open_dataset(config.data, config.split), config.val_fraction, config.seed)
    detector = detector_for(config).to(accelerator.device)
    if config.feature_cache:
        train_set = FeatureCache(config.feature_cache)
        train_set.check_detector(detector)
    loader = DataLoader(
        train_set, batch_size=config.batch_size, shuffle=True, drop_last=len(train_set) > config.batch_size,
        collate_fn=collate_features if config.feature_cache else collate, num_workers=config.workers,
        generator=torch.Generator().manual_seed(config.seed),
    )
    val_loader = DataLoader(val_set, batch_size=config.batch_size, collate_fn=collate, num_workers=config.workers)

    objective = build_objective(config, detector).to(accelerator.device)
    optimizers, schedulers = build_optimizers(config, objective)
    start = resume_run(config, objective, optimizers, schedulers) if config.resume else 0
    objective, loader, *prepared = accelerator.prepare(objective, loader, *optimizers.values())
    optimizers = dict(zip(optimizers, prepared))
    plain_objective = accelerator.unwrap_model(objective)

    out = Path(config.out)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    log = (out / "metrics.jsonl").open("a") if accelerator.is_main_process else None

    # -- loop ----------------------------------------------------------------------------------
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    progress = tqdm(range(start, config.steps), initial=start, total=config.steps,
                    disable=not accelerator.is_main_process, desc=f"{config.objective} inverters")
    result: dict = {}
    started = time.time()
    for step in progress:
        losses = training_step(accelerator, detector, objective, optimizers, schedulers, next(batches), config)
        done = step + 1
        if log and (done % config.log_every == 0 or done == config.steps):
            values = {stage: float(loss.detach()) for stage, loss in losses.items()}
            progress.set_postfix({stage[:3]: f"{value:.3g}" for stage, value in values.items()})
            lrs = {stage: schedulers[stage].get_last_lr()[0] for stage in schedulers}
            rate = (done - start) * config.batch_size * accelerator.num_processes / (time.time() - started)
            log.write(json.dumps({"step": done, "split": "train", "loss": values, "lr": lrs, "images_per_s": rate}) + "\n")
            log.flush()
        if done % config.val_every == 0 or done == config.steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                result = validate(plain_objective, detector, val_loader, config.val_images)
                log.write(json.dumps({"step": done, "split": "val", **result}) + "\n")
                log.flush()
        if done % config.save_every == 0 or done == config.steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_run(config, plain_objective, detector, optimizers, schedulers, done)
    if log:
        log.close()
    accelerator.end_training()
    return result
