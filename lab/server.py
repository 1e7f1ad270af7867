"""Serving the app: queue settings, the files it may serve, and launching it here, in the background or in a child process.

    python -m lab.server --config other.yaml --port 7861 --optimise-steps 20

(`python app.py` is the same with the defaults: ./space_config.yaml or $INVERSION_SPACE_CONFIG.)
Tests and benchmarks serve a catalogue of their own with `start` (in their process) or a config
with `child_process` (its own process: its memory measured alone, its environment read afresh).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import httpx
import torch
from gradio import processing_utils

from lab import SPACE_ROOT
from lab.admission import bounded_queue
from lab.catalogue import Catalogue, Limits, load_catalogue
from lab.links import EXAMPLES_DIR, example_files
from lab.page import PAGE_CSS, build_demo

LOOPBACK = "127.0.0.1"


def device() -> str:
    """Where the models go: the GPU when there is one (ZeroGPU's, inside its calls), else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def save_image_to_cache(image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """gradio.processing_utils.save_pil_to_cache without its race: Gradio names the file after its content and
    rewrites it in place, so identical images for concurrent visitors (the box masks of gr.AnnotatedImage when a
    room opens one shared link) truncated the file another visitor was downloading ("Too little data for declared
    Content-Length"). Here an existing file (same content, by its name) is only touched, a new one written aside
    and renamed into place."""
    data = processing_utils.encode_pil_to_bytes(image, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    if target.exists():
        target.touch()  # Gradio's delete_cache ages files by their times: this one is handed out again
        return str(target)
    handle, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.replace(staging, target)
    return str(target)


def launch(demo: gr.Blocks, limits: Limits, **options):
    """Queue and start the app; `options` go to gr.Blocks.launch (a host and port, prevent_thread_lock...).

    The queue is bounded as a whole and per visitor (lab.admission); Gradio's image cache is written safely for
    concurrent visitors (`save_image_to_cache`). Only the example images are served
    from the Space's folder (not their provenance notes), and uploads over the limit are refused before
    they are read."""
    bounded_queue(demo)
    processing_utils.save_pil_to_cache = save_image_to_cache
    return demo.launch(**served_examples(), max_file_size=f"{limits.max_upload_mb:g}mb", show_error=True,
                       css_paths=[PAGE_CSS], mcp_server=True, **options)


def served_examples() -> dict[str, list[str]]:
    """Gradio's allowed and blocked paths that serve the example images and no other file of their folder.

    The folder is allowed and its other files blocked, rather than each image allowed: Gradio resolves every
    allowed and blocked path again for each file it hands out or serves (ten per stage request), so the list
    stays short."""
    images = example_files()
    others = [path for path in EXAMPLES_DIR.iterdir() if path not in images]
    return {"allowed_paths": [str(EXAMPLES_DIR)], "blocked_paths": [str(path) for path in others]}


def start(catalogue: Catalogue, port: int, optimise_steps: int | None = None) -> gr.Blocks:
    """Build the app for `catalogue` and serve it on the loopback port from a background thread.

    Returns the demo: its URL is http://127.0.0.1:PORT/ and `demo.close()` stops it.
    """
    demo = build_demo(catalogue, optimise_steps)
    launch(demo, catalogue.limits, server_name=LOOPBACK, server_port=port, prevent_thread_lock=True, quiet=True)
    return demo


@contextmanager
def child_process(config: Path, folder: Path, optimise_steps: int | None = None, timeout: float = 300.0,
                  root: Path = SPACE_ROOT, entry: tuple[str, ...] = ("-m", "lab.server"),
                  ) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python -m lab.server` serving `config` on a free loopback port until the block ends; yields (process, URL).

    The child runs the app of the checkout at `root` (this one unless told: another serves as a baseline) and
    inherits this environment; its log goes to FOLDER/app.log, its cached examples to FOLDER/examples-cache, its
    other files (uploads, results) to FOLDER/gradio-cache, apart from other apps on this machine. `entry`: what
    python runs instead of lab.server (a script taking lab.server's options that ends by calling its `main`).
    """
    port = free_port()
    env = dict(os.environ, GRADIO_EXAMPLES_CACHE=str(folder / "examples-cache"), GRADIO_TEMP_DIR=str(folder / "gradio-cache"),
               GRADIO_ANALYTICS_ENABLED="False")
    command = [sys.executable, *entry, "--config", str(config), "--port", str(port)]
    command += ["--optimise-steps", str(optimise_steps)] if optimise_steps else []
    log_path = folder / "app.log"
    url = f"http://{LOOPBACK}:{port}/"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _answers(url):
                if process.poll() is not None:
                    raise RuntimeError(f"The app exited with {process.returncode}: {log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"The app did not answer within {timeout:.0f} s; see {log_path}")
                time.sleep(0.5)
            yield process, url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.server", description="Run the app with options.")
    parser.add_argument("--config", help="the space config (default: $INVERSION_SPACE_CONFIG or ./space_config.yaml)")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--optimise-steps", type=int, help="optimisation steps of a request (default: each model's budget)")
    args = parser.parse_args(argv)
    catalogue = load_catalogue(args.config, device=device())
    launch(build_demo(catalogue, args.optimise_steps), catalogue.limits, server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
