"""The paper's design claims, measured in the Shapes world.

- objectives: the modular objective (each inverse module against its own stage's target) against
  end-to-end training (one chain per stage on pixel error), from the same seed, for equal steps
  and again for equal wall time: time per step, peak memory, and every stage's PSNR, SSIM, shape
  preservation and detector AP on held-out images;
- backbones: the pixel-shuffle inverse backbone against the reference code's heavy up-convolution
  decoder, quality against FLOPs, at equal steps and at equal wall time.

Wall time on a shared machine measures the load as much as the code, so the ratio of step times is
measured in one process, alternating single steps of the two variants on the same batches (`paired_step_seconds`);
the equal-time run gives the slower variant the wall time of the faster one's steps at that ratio.
Each training run is a child process on one thread, so its peak memory (resident set size) is its own;
a short run of each variant gives its peak memory on equal terms. Results go to OUT/results.json and
OUT/*.png; the runs themselves stay in WORK, and a finished run found there is used again, not retrained.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from ..core.inverters import InverterConfig, InverterStack
from ..core.registry import load_model
from ..core.stages import STAGES
from ..experiments.evaluate import evaluate
from ..figures import backbone_comparison_plot, objective_comparison_plot
from ..training.data import collate
from ..training.networks import DetectorNetwork, network_for, with_defaults
from ..training.objectives import EndToEndObjective, ModularObjective
from ..training.sources import open_dataset
from ..training.trainer import TrainingConfig, build_objective, build_optimizers, training_step
from .world import generate_sample, sample_rng

MEMORY_PROBE_STEPS = 30  # steps of the short run that measures a variant's peak memory

# Trains with the TrainingConfig given as JSON and prints the wall time and peak resident memory as JSON.
_MEASURED_TRAINING = (
    "import json, resource, sys, time; from inversion.training.trainer import TrainingConfig, train; "
    "fields = json.loads(sys.argv[1]); fields['stages'] = tuple(fields['stages']); start = time.perf_counter(); "
    "train(TrainingConfig(**fields)); print(json.dumps({'seconds': time.perf_counter() - start, "
    "'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
)


def run_config(work: Path, name: str, train: str, steps: int, batch_size: int, seed: int = 0, **fields) -> TrainingConfig:
    """A comparison run: the Shapes detector, one data stream, validation and a checkpoint at the last step."""
    return TrainingConfig(data=train, out=str(work / name), model="shapes", steps=steps, batch_size=batch_size,
                          seed=seed, warmup_steps=max(1, steps // 20), val_every=steps, save_every=steps,
                          val_images=16, workers=0, **fields)


def with_steps(config: TrainingConfig, name: str, steps: int) -> TrainingConfig:
    """The same run for another number of steps, in the folder `name` beside it."""
    return replace(config, out=str(Path(config.out).parent / name), steps=steps, warmup_steps=max(1, steps // 20),
                   val_every=steps, save_every=steps)


def measured_training(config: TrainingConfig) -> dict:
    """Train in a child process with one thread; its wall time and peak resident memory."""
    command = [sys.executable, "-c", _MEASURED_TRAINING, json.dumps(dataclasses.asdict(config))]
    finished = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if finished.returncode != 0:
        raise RuntimeError(f"training failed: {finished.stderr[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def finished_steps(out: str | Path) -> int | None:
    """The step a run folder's saved training state reached (None: no finished run there)."""
    state = Path(out) / "training_state.json"
    return json.loads(state.read_text())["step"] if state.is_file() else None


def trained(config: TrainingConfig) -> dict:
    """Train the run, measured, unless its folder already holds it at its last step (then `reused`)."""
    if finished_steps(config.out) == config.steps:
        return {"reused": True}
    return measured_training(config)


def paired_step_seconds(variants: dict[str, TrainingConfig], rounds: int, warmup: int = 3) -> dict:
    """Seconds per training step of each variant, measured in this process on one thread by alternating
    single steps of the variants on the same batches (ABBA order), so that the machine's varying load
    weighs on all alike: each variant's median step time, and the median of the per-round ratios to the fastest."""
    torch.set_num_threads(1)
    first = next(iter(variants.values()))
    network = network_for(first)
    accelerator = Accelerator(cpu=True)
    loader = DataLoader(open_dataset(first.data), batch_size=first.batch_size, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(first.seed))
    batches = [batch for _, batch in zip(range(warmup + rounds), loader)]
    runs = {}
    for name, config in variants.items():
        config = with_defaults(config, DetectorNetwork)
        objective = build_objective(config, network)
        runs[name] = (config, objective, *build_optimizers(config, objective))
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for index, batch in enumerate(batches):
        for name in list(variants)[:: 1 if index % 2 == 0 else -1]:
            config, objective, optimizers, schedulers = runs[name]
            start = time.perf_counter()
            training_step(accelerator, network, objective, optimizers, schedulers, batch, config)
            if index >= warmup:
                seconds[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    fastest = min(medians, key=medians.get)
    return {
        "rounds": len(batches) - warmup,
        "seconds_per_step": medians,
        "fastest": fastest,
        "ratio_to_fastest": {name: statistics.median(a / b for a, b in zip(seconds[name], seconds[fastest]))
                             for name in variants},
    }


def equal_time_run(variants: dict[str, TrainingConfig], timing: dict, budget: str = "fastest") -> TrainingConfig:
    """One variant trained again for the wall time of another's steps, at the paired ratio of step times:
    budget "fastest" gives the slowest variant the wall time of the fastest one's steps (the cheap run),
    "slowest" gives the fastest variant the wall time of the slowest one's steps."""
    ratios = timing["ratio_to_fastest"]
    fastest, slowest = timing["fastest"], max(ratios, key=ratios.get)
    if budget == "fastest":
        name, steps = slowest, variants[fastest].steps / ratios[slowest]
    elif budget == "slowest":
        name, steps = fastest, variants[slowest].steps * ratios[slowest]
    else:
        raise ValueError(f"Unknown equal-time budget {budget!r}: choose 'fastest' or 'slowest'.")
    return with_steps(variants[name], f"{name}_equal_time", max(1, round(steps)))


def peak_memory(config: TrainingConfig) -> float:
    """Peak resident memory (MiB) of a short run of this variant in its own child process."""
    probe = with_steps(config, f"memory/{Path(config.out).name}", MEMORY_PROBE_STEPS)
    return measured_training(probe)["peak_rss_mib"]


def stage_scores(results: dict, stage: str) -> dict:
    """One stage's PSNR, SSIM, shape preservation and detector AP from an evaluation."""
    stages = results["stages"]
    return {"psnr": stages["quality"][stage]["psnr"], "ssim": stages["quality"][stage]["ssim"],
            "objects_found": stages["shape_preservation"][stage]["found"], "ap": stages["ap"][stage]["AP"]}


def objective_step_gflops(objective: str, batch_size: int) -> float:
    """FLOPs of one training step (forward and backward of the inverse modules) on Shapes images, in GFLOPs:
    a cost measure that does not depend on how busy the machine is."""
    shapes = load_model("shapes")
    representations = shapes.detector.capture([generate_sample(sample_rng(10, index))[0] for index in range(batch_size)])
    config = InverterConfig.for_detector(shapes.detector)
    module = ModularObjective(InverterStack(config)) if objective == "modular" else EndToEndObjective(config)
    with FlopCounterMode(display=False) as counter:
        sum(module(representations).values()).backward()
    return counter.get_total_flops() / 1e9


def variant_of(name: str) -> str:
    """The variant a run belongs to ("end_to_end_equal_time" -> "end_to_end")."""
    return name.removesuffix("_equal_time")


def measured_runs(variants: dict[str, TrainingConfig], rounds: int, budget: str) -> tuple[dict, dict[str, TrainingConfig], dict]:
    """The paired step times, every run (equal steps, and one at equal wall time) trained or reused, and each
    variant's peak memory: (timing, configs by run name, run records by run name)."""
    timing = paired_step_seconds(variants, rounds)
    equal_time = equal_time_run(variants, timing, budget)
    configs = {**variants, Path(equal_time.out).name: equal_time}
    timing["equal_time_budget"] = budget
    timing["equal_time_run"] = f"{Path(equal_time.out).name}: {equal_time.steps} steps"
    memory = {name: peak_memory(config) for name, config in variants.items()}
    runs = {name: {**trained(config), "steps": config.steps,
                   "seconds_per_step_paired": timing["seconds_per_step"][variant_of(name)],
                   "peak_rss_mib_probe": memory[variant_of(name)]}
            for name, config in configs.items()}
    return timing, configs, runs


def compare_objectives(work: Path, train: str, heldout: str, steps: int, batch_size: int, rounds: int,
                       budget: str = "fastest", seed: int = 0) -> tuple[dict, dict]:
    """Modular against end-to-end training: equal steps, then equal wall time; (runs, timing)."""
    variants = {"modular": run_config(work, "modular", train, steps, batch_size, seed),
                "end_to_end": run_config(work, "end_to_end", train, steps, batch_size, seed, objective="end_to_end")}
    timing, configs, runs = measured_runs(variants, rounds, budget)
    for name, run in runs.items():
        out = Path(configs[name].out)
        run["gflops_per_step"] = objective_step_gflops(variant_of(name), batch_size)
        if variant_of(name) == "modular":  # one stack inverts every stage
            evaluation = evaluate(str(out), heldout, str(work / "evaluations" / name), sections=("stages",))
            run["stages"] = {stage: stage_scores(evaluation, stage) for stage in STAGES}
        else:  # one chain per stage, each valid for its own stage only
            run["stages"] = {stage: stage_scores(evaluate(str(out / f"chain-{stage}"), heldout,
                                                          str(work / "evaluations" / name / stage), sections=("stages",)), stage)
                             for stage in STAGES}
    return runs, timing


def inverse_backbone_flops(architecture: str, working_size: tuple[int, int], d_model: int, stride: int) -> int:
    """FLOPs of one inverse-backbone pass on a canvas of `working_size`."""
    config = InverterConfig(d_model=d_model, stride=stride, backbone_architecture=architecture)
    module = InverterStack(config).backbone.eval()
    grid = torch.zeros(1, d_model, working_size[0] // stride, working_size[1] // stride)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(grid)
    return counter.get_total_flops()


def compare_backbones(work: Path, train: str, heldout: str, steps: int, batch_size: int, rounds: int,
                      budget: str = "fastest", seed: int = 0) -> tuple[dict, dict]:
    """The pixel-shuffle inverse backbone against the reference's up-convolution decoder; (runs, timing)."""
    shapes = load_model("shapes")
    stride, d_model = shapes.detector.stride, shapes.detector.sizes.d_model
    variants = {architecture: run_config(work, architecture, train, steps, batch_size, seed, stages=("backbone",),
                                         architecture={"backbone_architecture": architecture})
                for architecture in ("pixel_shuffle", "upconv")}
    timing, configs, runs = measured_runs(variants, rounds, budget)
    for name, run in runs.items():
        architecture = variant_of(name)
        evaluation = evaluate(configs[name].out, heldout, str(work / "evaluations" / name), sections=("stages",))
        run.update({
            **stage_scores(evaluation, "backbone"),
            "parameters": sum(p.numel() for p in InverterStack(InverterConfig(d_model=d_model, stride=stride,
                                                                              backbone_architecture=architecture)).backbone.parameters()),
            "gflops_shapes_128": inverse_backbone_flops(architecture, (128, 128), d_model, stride) / 1e9,
            "gflops_detr_r50_480x640": inverse_backbone_flops(architecture, (480, 640), 256, 32) / 1e9,
        })
    return runs, timing


def run_comparisons(out: str, work: str, train: str, heldout: str, steps: dict[str, int], batch_size: dict[str, int],
                    which: tuple[str, ...], rounds: int = 40, budget: dict[str, str] | None = None) -> dict:
    """Run the chosen comparisons (runs and their evaluations in WORK); write OUT/results.json and the plots.
    `steps`, `batch_size` and `budget` (the equal-time budget, see `equal_time_run`) are per comparison."""
    budget = budget or {}
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    comparisons = {"objectives": (compare_objectives, objective_comparison_plot),
                   "backbones": (compare_backbones, backbone_comparison_plot)}
    for name in which:
        compare, plot = comparisons[name]
        results[name], results.setdefault("timing", {})[name] = compare(
            Path(work) / name, train, heldout, steps[name], batch_size[name], rounds, budget.get(name, "fastest"))
        plot(results[name]).savefig(folder / f"{name}.png", dpi=110)
        path.write_text(json.dumps(results, indent=2, allow_nan=False))
    return results
