"""One trainer for the inverse modules of a detector or an image classifier, the objective as a parameter.

    python -m inversion train --model shapes --data data/shapes-train --out runs/shapes-inverters
    python -m inversion train --model shapes-vit --data data/shapes-train --out runs/shapes-vit-inverters
    accelerate launch --num_processes 8 -m inversion train ...        (DDP on many GPUs)

Read top to bottom: the config, then `train()` (setup, loop, validation, checkpoints).
The network (`networks`: a detector or a classifier, one face) is frozen and in eval mode; its targets
are recomputed for every batch without gradients. Every inverse module has its own AdamW with warm-up
and cosine decay.

A run keeps its books (inversion.training.state): it refuses settings it cannot run before it
writes anything, refuses an --out holding another run unless resumed with the same settings or
overwritten, logs validation while it trains, and scores only the stages whose chain it trained.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, IterableDataset, Sampler
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..core.checkpoints import WEIGHTS_FILE, CheckpointError, load_weights
from ..core.detector import Detector
from ..core.errors import UserFacingError
from ..core.metrics import image_quality
from ..core.stages import STAGES
from .data import (
    MAX_UNREADABLE_SHARE,
    DatasetError,
    EpochShuffle,
    UnreadableImages,
    collate,
    readable,
    split_dataset,
)
from .feature_cache import FeatureCache, ShardGroupedSampler, collate_features
from .networks import DetectorNetwork, Network, network_for, network_type, with_defaults
from .objectives import CRITIC, CRITIC_LEARNING_RATE
from .sources import open_dataset
from .state import (
    METRICS_FILE,
    RUN_CONFIG_FILE,
    STATE_CONFIG_FILE,
    check_out_folder,
    clear_run,
    load_training_state,
    save_training_state,
)


@dataclass
class TrainingConfig:
    """Everything a training run depends on (written to OUT/train_config.json)."""

    data: str
    out: str = "runs/inverters"
    model: str = "shapes"  # registry name or checkpoint folder: gives the detector (or classifier) and working size
    detector: str | None = None  # overrides the model's detector (Hub id or folder)
    classifier: str | None = None  # or an image classifier (ViT, DeiT, Swin: Hub id or folder) instead
    revision: str | None = None
    working_size: tuple[int, int] | None = None
    split: str | None = None  # COCO split name, e.g. train2017
    val_data: str | None = None  # a separate validation dataset; else a fixed part of `data`
    val_split: str | None = None
    val_fraction: float = 0.05
    objective: str = "modular"  # or "end_to_end"
    feature_weight: float | None = None  # modular: the backbone feature-matching term's weight (0: the paper's pixel MSE
    #                                      alone; None: the network's default for the objective)
    adversarial_weight: float = 0.0  # modular: weight of the inverse backbone's patch-adversarial term (0: none)
    stages: tuple[str, ...] = ()  # modular: which inverse modules to train (none named: all the network's)
    init: str | None = None  # start from the weights of this inverter checkpoint
    feature_cache: str | None = None  # train from cached detector targets (inversion.feature_cache)
    steps: int = 20_000
    batch_size: int = 16
    learning_rates: dict[str, float] = field(default_factory=dict)  # by stage, over the network's defaults
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
    overwrite: bool = False  # replace the run already in `out`
    precision: str = "auto"  # "auto" (bf16 on CUDA, fp32 on CPU), "bf16" or "no"
    architecture: dict = field(default_factory=dict)  # InverterConfig overrides
    max_unreadable: float = MAX_UNREADABLE_SHARE  # the share of unreadable images that fails the run


def check_config(config: TrainingConfig, network: type[Network] = DetectorNetwork) -> None:
    """Refuse settings a run of this kind of `network` cannot use, naming each (before anything is read or
    written); the config's stages, learning rates and feature weight filled in (`networks.with_defaults`)."""
    problems = [f"{name} must be at least {low}, not {getattr(config, name)}"
                for name, low in (("steps", 1), ("batch_size", 1), ("val_every", 1), ("val_images", 1), ("save_every", 1),
                                  ("log_every", 1), ("warmup_steps", 0), ("workers", 0), ("weight_decay", 0),
                                  ("feature_weight", 0), ("adversarial_weight", 0))
                if not getattr(config, name) >= low]
    if config.working_size is not None and (len(config.working_size) != 2 or min(config.working_size) < 1):
        problems.append(f"working_size must be two positive sizes (height, width), not {config.working_size}")
    if not 0 < config.val_fraction < 1:
        problems.append(f"val_fraction must be between 0 and 1, not {config.val_fraction}")
    if not config.grad_clip > 0:
        problems.append(f"grad_clip must be above 0, not {config.grad_clip}")
    problems += [f"the learning rate of {stage} must be a number above 0, not {rate!r}"
                 for stage, rate in config.learning_rates.items()
                 if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < float("inf")]
    strangers = sorted(set(config.learning_rates) - set(network.stages))
    if strangers:
        problems.append(f"learning rates name stages a {network.kind} lacks ({', '.join(strangers)}): its stages are "
                        f"{', '.join(network.stages)}")
    if not set(config.stages) <= set(network.stages) or not config.stages:
        problems.append(f"stages must be some of {', '.join(network.stages)} (a {network.kind}'s), "
                        f"not {', '.join(config.stages) or 'none'}")
    problems += network.problems(config)
    if config.resume and config.overwrite:
        problems.append("resume and overwrite exclude each other")
    if problems:
        raise UserFacingError("Cannot train with these settings: " + "; ".join(problems) + ".")


def check_working_size(detector: Detector) -> None:
    """Refuse a working size that is not a whole number of the detector's grid cells (at least one each way)."""
    height, width = detector.working_size
    stride = detector.stride
    if height % stride or width % stride or min(height, width) < stride:
        raise UserFacingError(f"The working size {height}x{width} must be a multiple of the detector's stride {stride} "
                              f"(at least {stride}x{stride}, one grid cell): try "
                              f"{max(1, round(height / stride)) * stride} {max(1, round(width / stride)) * stride}.")


def trained_stages(config: TrainingConfig, stages: tuple[str, ...] = STAGES) -> tuple[str, ...]:
    """The stages (of the network's `stages`, input first) whose whole chain down to the image this run trains
    (or starts from trained weights)."""
    if config.objective == "end_to_end" or config.init:
        return stages
    return tuple(stage for position, stage in enumerate(stages) if set(stages[: position + 1]) <= set(config.stages))


def build_objective(config: TrainingConfig, network: Network):
    """The objective module holding the inverter stack(s) being trained, for `network`."""
    if config.feature_cache and config.objective == "modular" and not set(config.stages) <= set(network.cached_stages):
        raise DatasetError(f"A feature cache trains only the {', '.join(network.cached_stages)} inverses: pass --stages "
                           "from those (train the inverse of the stage that meets the pixels on images).")
    return network.objective(config)


def build_optimizers(config: TrainingConfig, objective) -> tuple[dict, dict]:
    """One AdamW and one warm-up + cosine schedule per loss."""
    optimizers, schedulers = {}, {}
    for stage, parameters in objective.parameter_groups().items():
        rate = CRITIC_LEARNING_RATE if stage == CRITIC else config.learning_rates[stage]
        optimizers[stage] = torch.optim.AdamW(parameters, lr=rate, weight_decay=config.weight_decay)
        schedulers[stage] = get_cosine_schedule_with_warmup(optimizers[stage], config.warmup_steps, config.steps)
    return optimizers, schedulers


@torch.no_grad()
def validate(objective, network: Network, loader: DataLoader, max_images: int, trained: tuple[str, ...] | None = None,
             unreadable: UnreadableImages | None = None) -> dict:
    """Chained reconstruction quality (MSE, PSNR, SSIM) from every `trained` stage (default: all the network's), and
    the local losses; the other stages are marked {"trained": False} and not scored."""
    trained = network.stages if trained is None else trained
    objective.eval()
    quality = {stage: {"mse": [], "psnr": [], "ssim": []} for stage in trained}
    local: dict[str, list[float]] = {}
    seen = 0
    for batch in loader:
        if seen >= max_images:
            break
        if unreadable is not None:
            unreadable.add(batch.unreadable)
        images = batch.images
        if not images:
            continue
        representations = network.capture(images, (*objective.stages, *trained))
        for stage, loss in objective(representations).items():
            local.setdefault(stage, []).append(float(loss))
        for stage, image, target in network.reconstructions(objective, representations, trained):
            for metric, value in image_quality(image, target).items():
                quality[stage][metric].append(value)
        seen += len(images)
    objective.train()
    mean = lambda values: sum(values) / max(1, len(values))  # noqa: E731
    return {
        "stages": {stage: {"trained": True, **{m: mean(v) for m, v in quality[stage].items()}} if stage in trained
                   else {"trained": False} for stage in network.stages},
        "local_loss": {stage: mean(values) for stage, values in local.items()},
        "images": seen,
    }


def validation_line(result: dict) -> str:
    """A validation result in one line: PSNR by stage, the untrained ones said so."""
    return ", ".join(f"{stage} {metrics['psnr']:.2f} dB" if metrics["trained"] else f"{stage} not trained"
                     for stage, metrics in result["stages"].items())


def save_run(config: TrainingConfig, objective, network: Network, optimizers, schedulers, step: int,
             batches_drawn: int) -> None:
    """Write the inverters (one folder per stack, recording the network and its local folder, and the notes of the
    checkpoint the run started from) and the training state into config.out."""
    out = Path(config.out)
    notes = {"objective": config.objective, "step": step, "train_config": asdict(config),
             "trained_stages": list(trained_stages(config, network.stages))}
    if network.init_notes is not None:
        notes["init_notes"] = network.init_notes
    if isinstance(network, DetectorNetwork):
        notes["backbone_loss"] = {"pixel_mse": 1.0, "backbone_feature_relative_mse": config.feature_weight,
                                  "patch_adversarial": config.adversarial_weight}
    for name, stack in objective.stacks().items():
        network.save(stack, out / name, notes)
    save_training_state(out, step, optimizers, schedulers, objective.helpers(), batches_drawn)


def resume_run(config: TrainingConfig, objective, optimizers, schedulers) -> tuple[int, int]:
    """Load the weights and training state written by `save`; return the step to continue from and the batches
    drawn from the data until then."""
    out = Path(config.out)
    if not (out / STATE_CONFIG_FILE).is_file():
        raise CheckpointError(f"--resume: {out} has no {STATE_CONFIG_FILE} to continue from.")
    for name, stack in objective.stacks().items():
        load_weights(stack, out / name / WEIGHTS_FILE)
    step, batches_drawn = load_training_state(out, optimizers, schedulers, objective.helpers())
    if step >= config.steps:
        raise UserFacingError(f"--resume: the run in {out} already finished at step {step} (--steps {config.steps}): "
                              "pass a larger --steps to train further.")
    return step, batches_drawn


def training_step(accelerator: Accelerator, network: Network, objective, optimizers: dict, schedulers: dict,
                  batch, config: TrainingConfig) -> dict[str, torch.Tensor]:
    """One optimisation step on one batch (images, or cached targets); the losses before the step."""
    with accelerator.autocast():
        if config.feature_cache:
            representations = network.cached(batch, accelerator.device)
        else:
            representations = network.capture(batch[0], config.stages)
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
    # -- setup: everything checked before anything is written ----------------------------------
    kind = network_type(config)
    config = with_defaults(config, kind)
    check_config(config, kind)
    settings = json.loads(json.dumps(asdict(config)))
    out = Path(config.out)
    check_out_folder(out, settings, config.resume, config.overwrite)
    precision = config.precision if config.precision != "auto" else ("bf16" if torch.cuda.is_available() else "no")
    ddp = DistributedDataParallelKwargs(find_unused_parameters=config.objective == "end_to_end")
    accelerator = Accelerator(mixed_precision=precision, kwargs_handlers=[ddp],  # batches of PIL images: each
                              dataloader_config=DataLoaderConfiguration(dispatch_batches=False))  # process reads its own
    set_seed(config.seed)
    if config.val_data:
        train_set = open_dataset(config.data, config.split)
        val_set = open_dataset(config.val_data, config.val_split)
    else:
        train_set, val_set = split_dataset(open_dataset(config.data, config.split), config.val_fraction, config.seed)
    streamed = isinstance(train_set, IterableDataset)  # a Hub dataset: read in its order, one pass an epoch
    network = network_for(config)  # with its folder, resolved once: a space config edited while the run goes on
    network.model.to(accelerator.device)  # cannot change what it saves
    if isinstance(network, DetectorNetwork):
        check_working_size(network.model)
    sampler = None if streamed else EpochShuffle(len(train_set), config.seed)
    if config.feature_cache:
        train_set = FeatureCache(config.feature_cache)
        train_set.check_network(network.model)
        train_set.check_not_validation(config.val_data or config.data, config.val_split if config.val_data else config.split,
                                       named_for_validation=bool(config.val_data))
        sampler = ShardGroupedSampler(train_set, config.seed)
    unreadable = UnreadableImages(len(train_set) + len(val_set), config.max_unreadable)
    loader = DataLoader(
        train_set if config.feature_cache else readable(train_set), batch_size=config.batch_size,
        sampler=sampler,
        drop_last=not streamed and len(train_set) > config.batch_size,
        collate_fn=collate_features if config.feature_cache else collate, num_workers=config.workers,
        generator=torch.Generator().manual_seed(config.seed),
    )
    val_loader = DataLoader(readable(val_set), batch_size=config.batch_size, collate_fn=collate,
                            num_workers=config.workers)

    objective = build_objective(config, network).to(accelerator.device)
    optimizers, schedulers = build_optimizers(config, objective)
    start, drawn = resume_run(config, objective, optimizers, schedulers) if config.resume else (0, 0)
    objective, loader, *prepared = accelerator.prepare(objective, loader, *optimizers.values())
    optimizers = dict(zip(optimizers, prepared))
    plain_objective = accelerator.unwrap_model(objective)
    trained = trained_stages(config, network.stages)

    if accelerator.is_main_process:
        if config.overwrite:
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / RUN_CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
    log = (out / METRICS_FILE).open("a") if accelerator.is_main_process else None

    # -- loop ----------------------------------------------------------------------------------
    batches = EndlessBatches(loader, sampler, accelerator, drawn)
    if drawn and sampler is None and accelerator.is_main_process:
        tqdm.write("resumed: a streamed dataset is read again from its first image")
    progress = tqdm(range(start, config.steps), initial=start, total=config.steps,
                    disable=not accelerator.is_main_process, desc=f"{config.objective} inverters")
    result: dict = {}
    postfix: dict[str, str] = {}
    started = time.time()
    for step in progress:
        batch = next_batch(batches, unreadable, config.feature_cache)
        losses = training_step(accelerator, network, objective, optimizers, schedulers, batch, config)
        done = step + 1
        if log and (done % config.log_every == 0 or done == config.steps):
            values = {stage: float(loss.detach()) for stage, loss in losses.items()}
            postfix.update({stage[:3]: f"{value:.3g}" for stage, value in values.items()})
            progress.set_postfix(postfix)
            lrs = {stage: schedulers[stage].get_last_lr()[0] for stage in schedulers}
            rate = (done - start) * config.batch_size * accelerator.num_processes / (time.time() - started)
            log.write(json.dumps({"step": done, "split": "train", "loss": values, "lr": lrs, "images_per_s": rate}) + "\n")
            log.flush()
        if done % config.val_every == 0 or done == config.steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                result = validate(plain_objective, network, val_loader, config.val_images, trained, unreadable)
                postfix.update({f"val {stage[:3]} dB": f"{metrics['psnr']:.1f}"
                                for stage, metrics in result["stages"].items() if metrics["trained"]})
                progress.set_postfix(postfix)
                progress.write(f"step {done} validation PSNR: {validation_line(result)}")
                log.write(json.dumps({"step": done, "split": "val", **result}) + "\n")
                log.flush()
        if done % config.save_every == 0 or done == config.steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_run(config, plain_objective, network, optimizers, schedulers, done, batches.drawn)
    if log:
        if unreadable.found:
            log.write(json.dumps({"step": config.steps, "split": "unreadable", "images": unreadable.found}) + "\n")
            progress.write(unreadable.summary())
        log.close()
    accelerator.end_training()
    return result


class EndlessBatches:
    """The loader's batches, epoch after epoch, counting those drawn (per process). Started `drawn` batches in, it
    takes up the order where a run stopped: the sampler's epoch is set and the batches drawn in it are skipped by
    index, unread (without a sampler, a streamed dataset, it starts from the first batch)."""

    def __init__(self, loader: DataLoader, sampler: Sampler | None, accelerator: Accelerator, drawn: int = 0):
        self.drawn = drawn
        first = loader
        if sampler is not None and drawn:
            sampler.epoch, within = divmod(drawn, len(loader))
            first = accelerator.skip_first_batches(loader, within) if within else loader
        self.batches = itertools.chain.from_iterable(itertools.chain([first], itertools.repeat(loader)))

    def __iter__(self) -> EndlessBatches:
        return self

    def __next__(self):
        self.drawn += 1
        return next(self.batches)


def next_batch(batches, unreadable: UnreadableImages, from_cache: str | None):
    """The next batch with at least one image, recording the unreadable images met on the way."""
    while True:
        batch = next(batches)
        if from_cache:
            return batch
        unreadable.add(batch.unreadable)
        if batch.images:
            return batch
