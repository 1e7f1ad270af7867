"""A sweep over architectures, latent sizes, lambdas and seeds: results JSON and the three plots.

results JSON:  {"data", "config", "runs": [one RunResult per configuration], "summary": [mean and
std over seeds per (arch, latent, lambda)], "frontier": [per (arch, latent): accuracy at lambda 0,
MSE at lambda 1, the area the frontier dominates], "seconds", "versions"}
plots:         accuracy.png and mse.png (test metric against lambda, one line per latent size,
one panel per architecture) and frontier.png (test accuracy against test MSE).
"""

from __future__ import annotations

import json
import statistics
import time
from itertools import product
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from ..core.errors import UserFacingError
from .data import Dataset
from .train import DEFAULT_STEPS, RunConfig, train_run

DEFAULT_LAMBDAS = tuple(round(0.1 * i, 1) for i in range(11))
PLOTS = ("accuracy", "mse", "frontier")


def parse_lambdas(tokens: list[str]) -> list[float]:
    """Numbers, where '...' continues the step of the two numbers before it up to the one after:
    ['0', '0.1', '...', '1'] -> [0.0, 0.1, ..., 1.0]."""
    values: list[float] = []
    for index, token in enumerate(tokens):
        if token != "...":
            values.append(float(token))
            continue
        if len(values) < 2 or index + 1 >= len(tokens) or tokens[index + 1] == "...":
            raise UserFacingError("'...' needs two numbers before it and one after it, e.g. 0 0.1 ... 1")
        step, end = values[-1] - values[-2], float(tokens[index + 1])
        if step <= 0 or end <= values[-1]:
            raise UserFacingError("'...' needs an increasing sequence, e.g. 0 0.1 ... 1")
        count = int(round((end - values[-1]) / step))
        values += [round(values[-1] + step * k, 10) for k in range(1, count)]
    for value in values:
        if not 0.0 <= value <= 1.0:
            raise UserFacingError(f"lambda must lie in [0, 1], got {value}.")
    return sorted(set(values))


def run_key(run: dict) -> tuple:
    return run["arch"], run["latent"], run["lam"], run["seed"]


def run_sweep(
    dataset: Dataset,
    archs: list[str],
    latents: list[int],
    lambdas: list[float],
    seeds: list[int],
    steps: int | None = None,
    out: Path | None = None,
    previous: dict | None = None,
    show_progress: bool = True,
) -> dict:
    """Train every configuration (skipping those already in `previous`); writes `out`/results.json
    after each run so an interrupted sweep keeps what it finished."""
    runs = list(previous["runs"]) if previous else []
    done = {run_key(run) for run in runs}
    configs = [RunConfig(arch, latent, lam, seed, steps)
               for arch, latent, seed, lam in product(archs, latents, seeds, lambdas)
               if (arch, latent, lam, seed) not in done]
    config = {
        "archs": archs, "latents": latents, "lambdas": lambdas, "seeds": seeds,
        "steps": {arch: steps or DEFAULT_STEPS[arch] for arch in archs},
        "batch_size": RunConfig.batch_size, "lr": RunConfig.lr,
    }
    start = time.perf_counter()
    bar = tqdm(configs, desc="sweep", unit="run", disable=not show_progress)
    results = {}
    for train_config in bar:
        bar.set_postfix_str(f"{train_config.arch} z={train_config.latent} lambda={train_config.lam} seed={train_config.seed}")
        _, result = train_run(train_config, dataset)
        runs.append(result.to_dict())
        results = assemble(dataset, config, runs, time.perf_counter() - start)
        if out is not None:
            save(results, out / "results.json")
    return results or assemble(dataset, config, runs, 0.0)


def assemble(dataset: Dataset, config: dict, runs: list[dict], seconds: float) -> dict:
    import sklearn

    runs = sorted((dict(run, steps=run.get("steps") or config["steps"][run["arch"]]) for run in runs), key=run_key)
    return {
        "study": "classification vs reconstruction in a shared latent (arXiv:2401.09237)",
        "data": {"name": dataset.name, "train": len(dataset.train), "test": len(dataset.test),
                 "image_shape": list(dataset.image_shape)},
        "config": config,
        "runs": runs,
        "summary": summarise(runs),
        "frontier": frontier_summary(summarise(runs)),
        "seconds": round(seconds, 1),
        "versions": {"torch": torch.__version__, "scikit-learn": sklearn.__version__},
    }


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and (population) standard deviation over seeds per (arch, latent, lambda)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["arch"], run["latent"], run["lam"]), []).append(run)
    rows = []
    for (arch, latent, lam), members in sorted(groups.items()):
        row = {"arch": arch, "latent": latent, "lam": lam, "seeds": len(members)}
        for metric in ("accuracy", "mse"):
            values = [member[metric] for member in members]
            row[metric] = round(statistics.fmean(values), 6)
            row[f"{metric}_std"] = round(statistics.pstdev(values), 6)
        rows.append(row)
    return rows


def dominated_area(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area of the (MSE, accuracy) region the points dominate (lower MSE, higher accuracy) within
    the reference corner (worst MSE, worst accuracy): larger = a frontier further out."""
    ref_mse, ref_accuracy = reference
    front = []
    for mse, accuracy in sorted(points):
        if not front or accuracy > front[-1][1]:
            front.append((mse, accuracy))
    edges = [mse for mse, _ in front[1:]] + [ref_mse]
    return sum(max(0.0, edge - mse) * max(0.0, accuracy - ref_accuracy) for (mse, accuracy), edge in zip(front, edges))


def frontier_summary(summary: list[dict]) -> list[dict]:
    """Per (arch, latent): both ends of the lambda range and the dominated area, with one reference
    corner per architecture (its worst MSE and worst accuracy) so latent sizes compare."""
    rows = []
    for arch in sorted({row["arch"] for row in summary}):
        mine = [row for row in summary if row["arch"] == arch]
        reference = (max(row["mse"] for row in mine), min(row["accuracy"] for row in mine))
        for latent in sorted({row["latent"] for row in mine}):
            curve = sorted((row for row in mine if row["latent"] == latent), key=lambda row: row["lam"])
            rows.append({
                "arch": arch, "latent": latent,
                "accuracy_at_lambda_min": curve[0]["accuracy"], "mse_at_lambda_min": curve[0]["mse"],
                "accuracy_at_lambda_max": curve[-1]["accuracy"], "mse_at_lambda_max": curve[-1]["mse"],
                "best_accuracy": max(row["accuracy"] for row in curve), "best_mse": min(row["mse"] for row in curve),
                "area": round(dominated_area([(row["mse"], row["accuracy"]) for row in curve], reference), 7),
            })
    return rows


def save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(results, indent=1) + "\n")
    temporary.replace(path)


def merge(results: list[dict]) -> dict:
    """One results dict from several sweeps on the same data (later runs win on duplicates)."""
    runs = {run_key(run): run for result in results for run in result["runs"]}
    first = results[0]
    config = {
        key: sorted({value for result in results for value in result["config"][key]}, key=_arch_order if key == "archs" else None)
        for key in ("archs", "latents", "lambdas", "seeds")
    }
    config["steps"] = {arch: steps for result in results for arch, steps in result["config"]["steps"].items()}
    config.update(batch_size=first["config"]["batch_size"], lr=first["config"]["lr"])
    steps = config["steps"]
    merged = dict(first, config=config,
                  runs=sorted((dict(run, steps=run.get("steps") or steps[run["arch"]]) for run in runs.values()), key=run_key))
    merged["summary"] = summarise(merged["runs"])
    merged["frontier"] = frontier_summary(merged["summary"])
    merged["seconds"] = round(sum(result["seconds"] for result in results), 1)
    return merged


def figure(results: dict, plot: str, archs: list[str] | None = None, highlight: dict | None = None) -> Figure:
    """One of PLOTS, a panel per architecture, a colour per latent size. `highlight` (a dict with
    arch, accuracy, mse and lam) is marked with a star in the matching panel."""
    summary = results["summary"]
    archs = archs or sorted({row["arch"] for row in summary}, key=_arch_order)
    latents = sorted({row["latent"] for row in summary})
    colours = dict(zip(latents, _colours(len(latents))))
    fig = Figure(figsize=(3.4 * len(archs) + 0.6, 3.3), layout="constrained")
    axes = fig.subplots(1, len(archs), squeeze=False, sharey=plot != "frontier")[0]
    for ax, arch in zip(axes, archs):
        for latent in latents:
            curve = sorted((r for r in summary if r["arch"] == arch and r["latent"] == latent), key=lambda r: r["lam"])
            if not curve:
                continue
            lam = np.array([r["lam"] for r in curve])
            colour, label = colours[latent], f"latent {latent}"
            if plot == "frontier":
                mse, acc = np.array([r["mse"] for r in curve]), np.array([r["accuracy"] for r in curve])
                ax.plot(mse, acc, "-o", color=colour, label=label, markersize=3, linewidth=1)
                ax.annotate("λ=0", (mse[0], acc[0]), fontsize=7, color=colour, xytext=(3, 3), textcoords="offset points")
                ax.annotate("λ=1", (mse[-1], acc[-1]), fontsize=7, color=colour, xytext=(3, -9), textcoords="offset points")
            else:
                mean, std = np.array([r[plot] for r in curve]), np.array([r[f"{plot}_std"] for r in curve])
                ax.plot(lam, mean, "-o", color=colour, label=label, markersize=3, linewidth=1)
                ax.fill_between(lam, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
        if highlight is not None and highlight.get("arch") == arch:
            x = highlight["mse"] if plot == "frontier" else highlight["lam"]
            y = highlight["accuracy"] if plot != "mse" else highlight["mse"]
            ax.plot([x], [y], "*", color="black", markersize=12, label="live run", zorder=5)
        ax.set_title(arch)
        ax.grid(alpha=0.3)
        if plot == "frontier":
            ax.set_xlabel("test reconstruction MSE (lower is better)")
        else:
            ax.set_xlabel("λ (0 = classify only, 1 = reconstruct only)")
    axes[0].set_ylabel({"accuracy": "test accuracy", "mse": "test reconstruction MSE", "frontier": "test accuracy"}[plot])
    axes[-1].legend(fontsize=7)
    seeds = len(results["config"]["seeds"])
    fig.suptitle(f"{results['data']['name']}: {_titles[plot]} (mean over {seeds} seed{'s' * (seeds > 1)})", fontsize=10)
    return fig


_titles = {"accuracy": "test accuracy against λ", "mse": "test reconstruction MSE against λ",
           "frontier": "accuracy-vs-MSE frontier, λ from 0 to 1 along each line"}


def write_plots(results: dict, out: Path) -> list[Path]:
    """accuracy.png, mse.png and frontier.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for plot in PLOTS:
        path = out / f"{plot}.png"
        figure(results, plot).savefig(path, dpi=110)
        paths.append(path)
    return paths


def _arch_order(arch: str) -> int:
    from .models import ARCHITECTURES

    return ARCHITECTURES.index(arch) if arch in ARCHITECTURES else len(ARCHITECTURES)


def _colours(count: int) -> list:
    from matplotlib import colormaps

    return [colormaps["viridis"](0.85 * i / max(1, count - 1)) for i in range(count)]
