"""The study's command line.

    python -m inversion.tradeoff sweep --arch fc-m --latent 4 8 16 --lambdas 0 0.1 ... 1 --seeds 3 --data digits --out DIR
    python -m inversion.tradeoff plot DIR/results.json [MORE.json ...] --out DIR   # merge sweeps, redraw
    python -m inversion.tradeoff bench                                              # timing, as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..command_line import dispatch
from .data import DATASETS, load
from .models import ARCHITECTURES
from .sweep import DEFAULT_LAMBDAS, merge, parse_lambdas, run_sweep, save, write_plots
from .train import threads


def sweep(args: argparse.Namespace) -> int:
    lambdas = parse_lambdas(args.lambdas)
    dataset = load(args.data, args.data_root, args.limit)
    out = Path(args.out)
    previous_path = out / "results.json"
    previous = json.loads(previous_path.read_text()) if args.resume and previous_path.exists() else None
    with threads(args.threads):
        results = run_sweep(dataset, args.arch, args.latent, lambdas, list(range(args.seeds)), args.steps, out, previous)
    if previous is not None:
        results = merge([previous, results])
    save(results, previous_path)
    for path in [previous_path, *write_plots(results, out)]:
        print(f"wrote {path}")
    print(f"{len(results['runs'])} runs, {results['seconds']:.0f} s")
    return 0


def plot(args: argparse.Namespace) -> int:
    results = merge([json.loads(Path(path).read_text()) for path in args.results])
    out = Path(args.out)
    save(results, out / "results.json")
    for path in [out / "results.json", *write_plots(results, out)]:
        print(f"wrote {path}")
    return 0


def bench(args: argparse.Namespace) -> int:
    """An 11-point lambda sweep of one architecture and latent size on digits, one seed."""
    dataset = load("digits")
    start = time.perf_counter()
    with threads(args.threads):
        results = run_sweep(dataset, [args.arch], [args.latent], list(DEFAULT_LAMBDAS), [0], show_progress=False)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "arch": args.arch, "latent": args.latent, "lambdas": len(DEFAULT_LAMBDAS), "seeds": 1,
        "threads": args.threads, "sweep_s": round(seconds, 2), "target_s": 120, "within_target": seconds <= 120,
        "per_run_s": [run["seconds"] for run in results["runs"]],
    }))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inversion.tradeoff",
                                     description="Classification vs reconstruction in a shared latent (arXiv:2401.09237).")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("sweep", help="train every configuration; write results.json and plots")
    run.add_argument("--arch", nargs="+", default=["fc-m"], choices=ARCHITECTURES)
    run.add_argument("--latent", nargs="+", type=int, default=[4, 8, 16])
    run.add_argument("--lambdas", nargs="+", default=["0", "0.1", "...", "1"],
                     help="values in [0, 1]; '0 0.1 ... 1' continues the step (default: 11 points)")
    run.add_argument("--seeds", type=int, default=1, help="number of seeds (0, 1, ...)")
    run.add_argument("--data", default="digits", choices=DATASETS)
    run.add_argument("--data-root", help="folder with torchvision's copy of mnist / fashion-mnist / cifar10")
    run.add_argument("--limit", type=int, help="use only the first LIMIT training images")
    run.add_argument("--steps", type=int, help="optimizer steps per run (default: per architecture)")
    run.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for these models)")
    run.add_argument("--resume", action="store_true", help="keep the runs already in OUT/results.json")
    run.add_argument("--out", required=True)
    run.set_defaults(handler=sweep)

    redraw = commands.add_parser("plot", help="merge results.json files and draw the plots")
    redraw.add_argument("results", nargs="+")
    redraw.add_argument("--out", required=True)
    redraw.set_defaults(handler=plot)

    timing = commands.add_parser("bench", help="time an 11-point lambda sweep on digits (JSON)")
    timing.add_argument("--arch", default="fc-m", choices=ARCHITECTURES)
    timing.add_argument("--latent", type=int, default=8)
    timing.add_argument("--threads", type=int, default=1)
    timing.set_defaults(handler=bench)

    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
