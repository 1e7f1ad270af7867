"""Serving the app: queue settings, the files it may serve, and a launcher with options.

    python -m lab.server --config other.yaml --port 7861 --optimise-steps 20

(`python app.py` is the same with the defaults: ./space_config.yaml or $INVERSION_SPACE_CONFIG.)
"""

from __future__ import annotations

import argparse
import socket

import gradio as gr
import torch

from lab.catalogue import load_catalogue
from lab.links import EXAMPLES_DIR
from lab.page import build_demo

QUEUE_SIZE = 20  # requests waiting at once, all visitors together
CONCURRENCY = 1  # requests running at once per event: one model forward at a time


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(demo: gr.Blocks, **options):
    """Queue and start the app; `options` go to gr.Blocks.launch (tests pass a port and prevent_thread_lock)."""
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    return demo.launch(allowed_paths=[str(EXAMPLES_DIR)], show_error=True, **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.server", description="Run the app with options.")
    parser.add_argument("--config", help="the space config (default: $INVERSION_SPACE_CONFIG or ./space_config.yaml)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--optimise-steps", type=int, help="optimisation steps per stage (default: each model's budget)")
    args = parser.parse_args(argv)
    catalogue = load_catalogue(args.config, device="cuda" if torch.cuda.is_available() else "cpu")
    launch(build_demo(catalogue, args.optimise_steps), server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
