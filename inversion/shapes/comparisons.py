"""The paper's design claims, measured in the Shapes world.

- objectives: the modular objective (each inverse module against its own stage's target) against
  end-to-end training (one chain per stage on pixel error), from the same seed, for equal steps
  and again for equal wall time: time per step, peak memory, and every stage's PSNR, SSIM, shape
  preservation and detector AP on held-out images;
- backbones: the pixel-shuffle inverse backbone against the reference code's heavy up-convolution
  decoder, quality against FLOPs.

Each training run is a child process (`python -m inversion train`), so its time and peak memory
are its own. Results go to OUT/results.json and OUT/*.png; the runs themselves stay in WORK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..core.inverters import InverterConfig, InverterStack
from ..core.registry import load_model
from ..core.stages import STAGES
from ..experiments.evaluate import evaluate
from ..figures import backbone_comparison_plot, objective_comparison_plot
from ..training.objectives import EndToEndObjective, ModularObjective
from .world import generate_sample, sample_rng

# Runs `python -m inversion train ARGS` and prints its wall time and peak resident memory as JSON.
_MEASURED_TRAINING = (
    "import json, resource, sys, time; from inversion.__main__ import main; start = time.perf_counter(); "
    "code = main(['train', *sys.argv[1:]]); print(json.dumps({'seconds': time.perf_counter() - start, "
    "'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})); sys.exit(code)"
)


def measured_training(out: Path, arguments: list[str]) -> dict:
    """Train in a child process with one thread; its wall time, peak memory and steps."""
    command = [sys.executable, "-c", _MEASURED_TRAINING, "--out", str(out), "--workers", "0", *arguments]
    finished = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if finished.returncode != 0:
        raise RuntimeError(f"training failed: {finished.stderr[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


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
    config = InverterConfig.for_detector(shapes.detector.config, shapes.detector.stride)
    module = ModularObjective(InverterStack(config)) if objective == "modular" else EndToEndObjective(config)
    with FlopCounterMode(display=False) as counter:
        sum(module(representations).values()).backward()
    return counter.get_total_flops() / 1e9


def compare_objectives(work: Path, train: str, heldout: str, steps: int, batch_size: int, seed: int = 0) -> dict:
    """Modular against end-to-end training: equal steps, then equal wall time."""
    common = ["--model", "shapes", "--data", train, "--batch-size", str(batch_size), "--seed", str(seed),
              "--warmup-steps", str(max(1, steps // 20)), "--val-every", str(steps), "--save-every", str(steps),
              "--val-images", "16"]
    runs = {"modular": measured_training(work / "modular", [*common, "--steps", str(steps)]),
            "end_to_end": measured_training(work / "end_to_end", [*common, "--steps", str(steps), "--objective", "end_to_end"])}
    equal_time_steps = max(1, round(steps * runs["modular"]["seconds"] / runs["end_to_end"]["seconds"]))
    runs["end_to_end_equal_time"] = measured_training(
        work / "end_to_end_equal_time", [*common, "--steps", str(equal_time_steps), "--objective", "end_to_end"])
    for name, run in runs.items():
        run["steps"] = equal_time_steps if name == "end_to_end_equal_time" else steps
        run["seconds_per_step"] = run["seconds"] / run["steps"]
        run["gflops_per_step"] = objective_step_gflops("end_to_end" if name.startswith("end_to_end") else "modular", batch_size)
        if name == "modular":  # one stack inverts every stage
            evaluation = evaluate(str(work / name), heldout, str(work / "evaluations" / name), sections=("stages",))
            run["stages"] = {stage: stage_scores(evaluation, stage) for stage in STAGES}
        else:  # one chain per stage, each valid for its own stage only
            run["stages"] = {stage: stage_scores(evaluate(str(work / name / f"chain-{stage}"), heldout,
                                                          str(work / "evaluations" / name / stage), sections=("stages",)), stage)
                             for stage in STAGES}
    return runs


def inverse_backbone_flops(architecture: str, working_size: tuple[int, int], d_model: int, stride: int) -> int:
    """FLOPs of one inverse-backbone pass on a canvas of `working_size`."""
    config = InverterConfig(d_model=d_model, stride=stride, backbone_architecture=architecture)
    module = InverterStack(config).backbone.eval()
    grid = torch.zeros(1, d_model, working_size[0] // stride, working_size[1] // stride)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(grid)
    return counter.get_total_flops()


def compare_backbones(work: Path, train: str, heldout: str, steps: int, batch_size: int, seed: int = 0) -> dict:
    """The pixel-shuffle inverse backbone against the reference's up-convolution decoder."""
    shapes = load_model("shapes")
    stride, d_model = shapes.detector.stride, shapes.detector.config.d_model
    results = {}
    for architecture in ("pixel_shuffle", "upconv"):
        run = measured_training(work / architecture, [
            "--model", "shapes", "--data", train, "--stages", "backbone", "--backbone-architecture", architecture,
            "--steps", str(steps), "--batch-size", str(batch_size), "--seed", str(seed), "--warmup-steps", str(max(1, steps // 20)),
            "--val-every", str(steps), "--save-every", str(steps), "--val-images", "16"])
        evaluation = evaluate(str(work / architecture), heldout, str(work / "evaluations" / architecture), sections=("stages",))
        results[architecture] = {
            **run, "steps": steps, "seconds_per_step": run["seconds"] / steps, **stage_scores(evaluation, "backbone"),
            "parameters": sum(p.numel() for p in InverterStack(InverterConfig(d_model=d_model, stride=stride,
                                                                              backbone_architecture=architecture)).backbone.parameters()),
            "gflops_shapes_128": inverse_backbone_flops(architecture, (128, 128), d_model, stride) / 1e9,
            "gflops_detr_r50_480x640": inverse_backbone_flops(architecture, (480, 640), 256, 32) / 1e9,
        }
    return results


def run_comparisons(out: str, work: str, train: str, heldout: str, steps: int, batch_size: int,
                    which: tuple[str, ...]) -> dict:
    """Run the chosen comparisons (runs and their evaluations in WORK); write OUT/results.json and the plots."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if "objectives" in which:
        results["objectives"] = compare_objectives(Path(work) / "objectives", train, heldout, steps, batch_size)
        objective_comparison_plot(results["objectives"]).savefig(folder / "objectives.png", dpi=110)
    if "backbones" in which:
        results["backbones"] = compare_backbones(Path(work) / "backbones", train, heldout, steps, batch_size)
        backbone_comparison_plot(results["backbones"]).savefig(folder / "backbones.png", dpi=110)
    path.write_text(json.dumps(results, indent=2, allow_nan=False))
    return results
