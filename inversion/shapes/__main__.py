"""The Shapes world's command line.

    python -m inversion.shapes export --out DIR --n N --seed S
    python -m inversion.shapes train-detector --out checkpoints/shapes/detector [...]
    python -m inversion.shapes eval-detector --model checkpoints/shapes/detector [...]
    python -m inversion.shapes train-classifier --out checkpoints/shapes/classifier-vit [...]
    python -m inversion.shapes train-classifier-inverters --classifier checkpoints/shapes/classifier-vit [...]
    python -m inversion.shapes eval-classifier --model checkpoints/shapes/classifier-vit [...]
    python -m inversion.shapes compare --train DIR --heldout DIR --out checkpoints/shapes/comparisons [...]
    python -m inversion.shapes colour-dial --models shapes shapes40 --heldout 80%=DIR 40%=DIR --out DIR
    python -m inversion.shapes headroom [run|report|status] [--points M-2500-mse ...]
    python -m inversion.shapes bundle --model shapes-conditional --run runs/shapes_conditional/inverters-b40000
    python -m inversion.shapes architectures --out checkpoints/shapes/architectures [--n 200]
    python -m inversion.shapes chain-swap BASE_FOLDER OTHER_FOLDER --stage prediction [--images 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ..command_line import dispatch, positive_int
from ..core.errors import UserFacingError
from .detector import HELDOUT_SEED, DetectorRecipe, evaluate, heldout, load_trained, train
from .world import IMAGE_SIZE, PROTOTYPE_PROB, export_coco

COMPARISON_RUNS = {"objectives": (2000, 16), "backbones": (600, 8)}  # default steps and batch size of the equal-step runs


def export_command(args: argparse.Namespace) -> None:
    print(export_coco(args.out, args.n, args.seed, args.size, args.prototype_share))


def train_detector_command(args: argparse.Namespace) -> None:
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(DetectorRecipe)}
    train(DetectorRecipe(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}))


def train_classifier_command(args: argparse.Namespace) -> None:
    from .classifier import ClassifierRecipe
    from .classifier import train as train_classifier

    train_classifier(ClassifierRecipe(**{field.name: getattr(args, field.name) for field in dataclasses.fields(ClassifierRecipe)}))


def train_classifier_inverters_command(args: argparse.Namespace) -> None:
    from .classifier import InverterRecipe, train_inverters

    train_inverters(InverterRecipe(**{field.name: getattr(args, field.name) for field in dataclasses.fields(InverterRecipe)}))


def eval_classifier_command(args: argparse.Namespace) -> None:
    from ..core.classifier import Classifier
    from .classifier import colour_effect, evaluate, samples

    classifier = Classifier.from_pretrained(args.model)
    heldout_result = evaluate(classifier, *samples(args.seed, 0, args.n, classifier))
    print(json.dumps({"n": args.n, "seed": args.seed, **heldout_result, "colour": colour_effect(classifier, args.n, args.seed)},
                     indent=1))


def architectures_command(args: argparse.Namespace) -> None:
    from .architectures import run, table

    print(table(run(args.out, args.n, args.batch_size)))


def eval_detector_command(args: argparse.Namespace) -> None:
    result = evaluate(load_trained(args.model), *heldout(args.n, args.seed, args.size, args.prototype_share))
    print(json.dumps({"n": args.n, "seed": args.seed, "prototype_share": args.prototype_share, **result}, indent=1))


def compare_command(args: argparse.Namespace) -> None:
    from .comparisons import run_comparisons

    steps = {name: args.steps or default for name, (default, _) in COMPARISON_RUNS.items()}
    batch_size = {name: args.batch_size or default for name, (_, default) in COMPARISON_RUNS.items()}
    run_comparisons(args.out, args.work, args.train, args.heldout, steps, batch_size, tuple(args.which), args.rounds,
                    {name: args.equal_time_budget for name in args.which})
    print(f"wrote {args.out}/results.json")


def colour_dial_command(args: argparse.Namespace) -> None:
    from .colour_dial import colour_dial

    heldout = dict(item.partition("=")[::2] for item in args.heldout)
    if not all(heldout.values()):
        raise SystemExit("--heldout takes LABEL=FOLDER pairs, e.g. 80%=runs/data/shapes-heldout")
    colour_dial(args.models, heldout, args.out, args.work, args.max_images)
    print(f"wrote {args.out}/README.md")


def headroom_command(args: argparse.Namespace) -> None:
    from . import headroom

    if args.action == "status":
        print("\n".join(headroom.status(args.out, args.work)))
        return
    if args.action == "ship":
        if len(args.points or []) != 1:
            raise UserFacingError("headroom ship takes one finished point: --points M-40000-feature")
        folder = headroom.ship(headroom.Point.parse(args.points[0]), args.out, args.work)
        print(f"wrote {folder}: the Shapes DETR's inverters are now {args.points[0]}")
    if args.action == "run":
        points = [headroom.Point.parse(name) for name in args.points] if args.points else list(headroom.GRID)
        for path in headroom.run_points(points, args.out, args.work, threads=args.threads):
            print(f"wrote {path}")
            headroom.write_report(args.out)
    headroom.write_report(args.out)
    print(f"wrote {args.out}/results.json, table.md and a plot per stage")


def bundle_command(args: argparse.Namespace) -> None:
    from .bundle import bundle

    folder = bundle(args.model, args.run)
    print(f"wrote {folder}: {args.model}'s inverters are now those of {args.run}")


def chain_swap_command(args: argparse.Namespace) -> None:
    from .chain_swap import chain_swap

    print(f"| {args.stage} reconstructed by | PSNR (dB) |\n|---|---|")
    for name, psnr in chain_swap(args.base, args.other, args.stage, args.images).items():
        print(f"| {name} | {psnr:.2f} |")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m inversion.shapes", description="The synthetic Shapes world.")
    commands = main.add_subparsers(dest="command", required=True)

    command = commands.add_parser("export", help="write a COCO-format Shapes dataset")
    command.add_argument("--out", required=True, help="output folder")
    command.add_argument("--n", type=int, required=True, help="number of images")
    command.add_argument("--seed", type=int, required=True, help="stream seed")
    command.add_argument("--size", type=int, default=IMAGE_SIZE, help="image side in pixels")
    command.add_argument("--prototype-share", type=float, default=PROTOTYPE_PROB,
                         help="the share of objects wearing their class's prototype hue")
    command.set_defaults(handler=export_command)

    command = commands.add_parser("train-detector", help="train the Shapes DETR from scratch")
    for field in dataclasses.fields(DetectorRecipe):
        flag = f"--{field.name.replace('_', '-')}"
        if isinstance(field.default, tuple):
            command.add_argument(flag, type=int, nargs="+", default=field.default)
        else:
            command.add_argument(flag, type=type(field.default), default=field.default)
    command.set_defaults(handler=train_detector_command)

    from .classifier import ClassifierRecipe, InverterRecipe

    command = commands.add_parser("train-classifier", help="train the Shapes ViT (which shapes an image holds) from scratch")
    for field in dataclasses.fields(ClassifierRecipe):
        command.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    command.set_defaults(handler=train_classifier_command)

    command = commands.add_parser("train-classifier-inverters", help="train the inverse modules of a Shapes classifier")
    for field in dataclasses.fields(InverterRecipe):
        command.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    command.set_defaults(handler=train_classifier_inverters_command)

    command = commands.add_parser("eval-classifier", help="held-out accuracy of a Shapes classifier, and under colour perturbations")
    command.add_argument("--model", default="checkpoints/shapes/classifier-vit")
    command.add_argument("--n", type=int, default=500)
    command.add_argument("--seed", type=int, default=HELDOUT_SEED)
    command.set_defaults(handler=eval_classifier_command)

    command = commands.add_parser("eval-detector", help="COCO AP of a saved detector on held-out images")
    command.add_argument("--model", default="checkpoints/shapes/detector")
    command.add_argument("--n", type=int, default=500)
    command.add_argument("--seed", type=int, default=HELDOUT_SEED)
    command.add_argument("--size", type=int, default=IMAGE_SIZE)
    command.add_argument("--prototype-share", type=float, default=PROTOTYPE_PROB)
    command.set_defaults(handler=eval_detector_command)

    command = commands.add_parser("compare", help="modular vs end-to-end training; pixel-shuffle vs up-conv inverse backbone")
    command.add_argument("--train", required=True, help="a Shapes dataset to train on (export)")
    command.add_argument("--heldout", required=True, help="a held-out Shapes dataset to evaluate on")
    command.add_argument("--out", default="checkpoints/shapes/comparisons", help="results.json and plots")
    command.add_argument("--work", default="runs/comparisons", help="the training runs and their evaluations")
    command.add_argument("--steps", type=int, help="steps of the equal-step runs (default: objectives 2000, backbones 600)")
    command.add_argument("--batch-size", type=int, help="default: objectives 16, backbones 8")
    command.add_argument("--rounds", type=int, default=40, help="paired steps per variant that measure the step-time ratio")
    command.add_argument("--equal-time-budget", choices=("fastest", "slowest"), default="fastest",
                         help="the equal-time run: the slowest variant for the wall time of the fastest one's steps "
                              "(fastest), or the fastest for the slowest one's (slowest)")
    command.add_argument("--which", nargs="+", choices=("objectives", "backbones"), default=["objectives", "backbones"])
    command.set_defaults(handler=compare_command)

    command = commands.add_parser("colour-dial", help="models trained on different prototype shares under the same colour perturbations")
    command.add_argument("--models", nargs="+", required=True, help="space-config names or inverter checkpoint folders")
    command.add_argument("--heldout", nargs="+", required=True, help="LABEL=FOLDER: held-out COCO-format Shapes sets")
    command.add_argument("--out", required=True, help="results.json, README.md and colour_dial.png")
    command.add_argument("--work", default="runs/colour_dial", help="each evaluation's own report")
    command.add_argument("--max-images", type=int, help="the first N images of each held-out set")
    command.set_defaults(handler=colour_dial_command)

    command = commands.add_parser("headroom", help="reconstruction quality against inverter capacity and training length")
    command.add_argument("action", nargs="?", choices=("run", "report", "status", "ship"), default="run",
                         help="run: train, continue or evaluate points, then report (default); report: from the finished "
                              "points only; status: where each point stands; ship: make one finished point's stack the "
                              "bundled Shapes DETR's inverters, then report")
    command.add_argument("--points", nargs="+", metavar="SIZE-STEPS-OBJECTIVE",
                         help="the points to run, e.g. S-625-mse M-2500-feature, or a refined one, M-40000-feature+b16000 (default: "
                              "the whole grid, cheapest first)")
    command.add_argument("--out", default="checkpoints/shapes/headroom", help="points/*.json, results.json, table.md, plots")
    command.add_argument("--work", default="runs/headroom", help="the training runs and their evaluations")
    command.add_argument("--threads", type=positive_int, default=1,
                         help="CPU threads for training (default 1: one queue per core)")
    command.set_defaults(handler=headroom_command)

    command = commands.add_parser("bundle", help="make a training run's inverters a bundled model's (its folder in "
                                  "space_config.yaml)")
    command.add_argument("--model", required=True, help="the bundled model, e.g. shapes-conditional")
    command.add_argument("--run", required=True, help="the --out folder of its `python -m inversion train` run")
    command.set_defaults(handler=bundle_command)

    command = commands.add_parser("architectures", help="what the Shapes DETR, ViT and Swin keep, depth by depth")
    command.add_argument("--out", default="checkpoints/shapes/architectures", help="results.json, table.md, depth.png, cka.png")
    command.add_argument("--n", type=int, default=200, help="held-out images (stream seed 1)")
    command.add_argument("--batch-size", type=int, default=50)
    command.set_defaults(handler=architectures_command)

    command = commands.add_parser("chain-swap", help="which inverse module makes a stage's chain lose: swap each for another stack's")
    command.add_argument("base", help="the Shapes DETR's inverter folder to swap modules in")
    command.add_argument("other", help="the Shapes DETR's inverter folder to take them from")
    command.add_argument("--stage", choices=("encoder", "decoder", "prediction"), default="prediction")
    command.add_argument("--images", type=positive_int, default=200, help="held-out images (stream seed 1)")
    command.set_defaults(handler=chain_swap_command)
    return main


if __name__ == "__main__":
    sys.exit(dispatch(parser()))
