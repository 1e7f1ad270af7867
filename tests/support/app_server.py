"""The app built and launched in this process on a free loopback port, serving random-weight stand-ins.

The stand-in config offers `shapes` (the Shapes architecture with random weights, every query a
detection), `detr-resnet-50` (the real Hub entry: unreachable offline, so reported on screen)
and `bare` (a detector without inverters). Optimisation-based inversion is kept to 3 steps per
stage so the tests stay fast. Used by the gradio_client and the browser tests.
"""

from __future__ import annotations

import os
from pathlib import Path

from inversion.core.registry import read_space_config
from inversion.testing import save_standin, shapes_config, write_space_config
from lab.catalogue import load_catalogue
from lab.page import build_demo
from lab.server import free_port, launch

OPTIMISE_STEPS = 3
_served: dict = {}


def standin_config(folder: Path) -> Path:
    entry = save_standin(folder / "shapes", shapes_config(), (128, 128))
    real = read_space_config()
    models = {
        "shapes": {"label": "Shapes stand-in (random weights)", **entry, "threshold": 0.0},
        "detr-resnet-50": real["models"]["detr-resnet-50"],
        "bare": {"label": "Stand-in without inverters", **entry, "inverters": None, "threshold": 0.0},
    }
    return write_space_config(folder / "space_config.yaml", models, default_model="shapes", limits=real["limits"])


def serve(folder: Path, config: Path | None = None):
    """(the catalogue, the app's URL): built and launched once per test process."""
    if not _served:
        os.environ["GRADIO_EXAMPLES_CACHE"] = str(folder / "examples-cache")
        catalogue = load_catalogue(config or standin_config(folder))
        port = free_port()
        launch(build_demo(catalogue, OPTIMISE_STEPS), server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
               quiet=True)
        _served.update(catalogue=catalogue, url=f"http://127.0.0.1:{port}/")
    return _served["catalogue"], _served["url"]
