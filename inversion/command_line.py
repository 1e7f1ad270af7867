"""What every command line of the project shares: error handling and the spelling of common flags.

A `UserFacingError` (a bad file, name, checkpoint or dataset) prints `error: ...` and exits with
status 2, as does a bad argument (one line, before anything is read or written); anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

from .core.detector import DEFAULT_WORKING_SIZE
from .core.errors import UserFacingError
from .core.registry import (
    DETECTOR,
    NETWORK_KINDS,
    ClassifierModel,
    Model,
    build_any_model,
    build_model,
    classifier_spec,
    detector_spec,
    find_spec,
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong, and where the usage is."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    return _checked_number(text, int, lambda value: value >= 1, "a whole number of at least 1")


def natural_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    return _checked_number(text, int, lambda value: value >= 0, "a whole number of at least 0")


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return _checked_number(text, float, lambda value: 0 < value < math.inf, "a number above 0")


def natural_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    return _checked_number(text, float, lambda value: 0 <= value < math.inf, "a number of at least 0")


def share(text: str) -> float:
    """An argparse type: a fraction in [0, 1]."""
    return _checked_number(text, float, lambda value: 0 <= value <= 1, "a fraction from 0 to 1")


def _checked_number(text: str, kind: type, valid: Callable[[float], bool], expected: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"{text} is not {expected}")
    return value


def run(handler: Callable[[argparse.Namespace], object], args: argparse.Namespace) -> int:
    """Call a command's handler; a UserFacingError becomes `error: ...` on stderr and status 2."""
    try:
        handler(args)
    except UserFacingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse `argv` with a parser whose subcommands set `handler`, and run the chosen one."""
    args = parser.parse_args(argv)
    return run(args.handler, args)


def add_model(parser: argparse.ArgumentParser, default: str | None = "shapes", detector_alone: bool = True,
              classifiers: bool = False) -> None:
    """--model: a name in the space config or an inverter checkpoint folder; with `detector_alone`, also
    --detector (a detector of any supported family without inverters), --revision and --working-size; with
    `classifiers`, --model may name a classifier, and --classifier gives one alone."""
    kinds = "a detector or classifier" if classifiers else "a detector"
    parser.add_argument("--model", default=default,
                        help=f"{kinds} in space_config.yaml or an inverter checkpoint folder (default: %(default)s)")
    if detector_alone:
        parser.add_argument("--detector", metavar="FOLDER_OR_HUB_ID",
                            help="a detector alone (a folder or a Hub id), instead of --model: no learned inverters")
        if classifiers:
            add_classifier(parser)
        parser.add_argument("--revision", help="the detector's (or classifier's) Hub revision (pin a commit)")
        parser.add_argument("--working-size", type=positive_int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                            help=f"the detector's canvas (default: {DEFAULT_WORKING_SIZE[0]} {DEFAULT_WORKING_SIZE[1]})")


def add_classifier(parser: argparse.ArgumentParser) -> None:
    """--classifier: an image classifier of a supported family (ViT, DeiT, Swin), a folder or a Hub id."""
    parser.add_argument("--classifier", metavar="FOLDER_OR_HUB_ID",
                        help="an image classifier alone (a folder or a Hub id), instead of --model: no learned inverters")


def model_from_args(args: argparse.Namespace, device: str = "cpu") -> Model | ClassifierModel:
    """The model that --model, or --detector (or --classifier) with --revision and --working-size, name; a classifier
    only where the command takes one (it has --classifier)."""
    classifier = getattr(args, "classifier", None)
    if args.detector and classifier:
        raise UserFacingError("--detector and --classifier exclude each other: name one network.")
    if classifier:
        if args.working_size:
            raise UserFacingError("--working-size goes with --detector: a classifier resizes images to its own input size.")
        return build_any_model(classifier_spec(classifier, args.revision), device)
    if args.detector:
        size = tuple(args.working_size) if args.working_size else DEFAULT_WORKING_SIZE
        return build_model(detector_spec(args.detector, args.revision, size), device)
    if args.working_size or args.revision:
        raise UserFacingError("--revision and --working-size go with --detector (or --classifier); a --model brings its own.")
    kinds = NETWORK_KINDS if hasattr(args, "classifier") else (DETECTOR,)
    return build_any_model(find_spec(args.model, kinds=kinds), device)


def add_data(parser: argparse.ArgumentParser, coco_only: bool = False) -> None:
    """--data and --split: a COCO-format folder (or, unless `coco_only`, any folder of images)."""
    kind = "a COCO-format dataset folder" if coco_only else "a COCO-format folder or a folder of images"
    parser.add_argument("--data", required=True, help=kind)
    parser.add_argument("--split", help="a COCO 2017 split inside --data, e.g. val2017")


def add_max_images(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """--max-images: use only the first N images of the data."""
    parser.add_argument("--max-images", type=positive_int, default=default, metavar="N",
                        help="use only the first N images" + (" (default: %(default)s)" if default else ""))


def add_dataset_checks(parser: argparse.ArgumentParser, categories: bool = True) -> None:
    """--max-unreadable (the share of unreadable images that fails a run) and, with `categories`,
    --skip-unknown-categories (leave out objects of categories the detector has no label for)."""
    from .training.data import MAX_UNREADABLE_SHARE

    parser.add_argument("--max-unreadable", type=share, default=MAX_UNREADABLE_SHARE, metavar="SHARE",
                        help="fail when more than this share of the images cannot be read (default: %(default)s)")
    if categories:
        parser.add_argument("--skip-unknown-categories", action="store_true",
                            help="leave out the objects of categories the detector has no label for (default: refuse)")
