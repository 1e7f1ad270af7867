"""What every command line of the project shares: error handling and the spelling of common flags.

A `UserFacingError` (a bad file, name, checkpoint or dataset) prints `error: ...` and exits with
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .core.errors import UserFacingError


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


def add_model(parser: argparse.ArgumentParser, default: str | None = "shapes") -> None:
    """--model: a name in the space config or an inverter checkpoint folder."""
    parser.add_argument("--model", default=default, required=default is None,
                        help="a model in space_config.yaml or an inverter checkpoint folder (default: %(default)s)")


def add_data(parser: argparse.ArgumentParser, coco_only: bool = False) -> None:
    """--data and --split: a COCO-format folder (or, unless `coco_only`, any folder of images)."""
    kind = "a COCO-format dataset folder" if coco_only else "a COCO-format folder or a folder of images"
    parser.add_argument("--data", required=True, help=kind)
    parser.add_argument("--split", help="a COCO 2017 split inside --data, e.g. val2017")


def add_max_images(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """--max-images: use only the first N images of the data."""
    parser.add_argument("--max-images", type=int, default=default, metavar="N",
                        help="use only the first N images" + (" (default: %(default)s)" if default else ""))
