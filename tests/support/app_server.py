"""Run app.py in this process on a free localhost port, serving random-weight stand-ins.

The stand-in config offers `shapes` (the Shapes architecture with random weights, every query a
detection), `detr-resnet-50` (the real Hub entry: unreachable offline, so reported on screen)
and `bare` (a detector without inverters). Used by the gradio_client and the browser tests.
`serve` keeps optimisation-based inversion short (3 steps per stage) so the tests stay fast.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from benchmarks.app import free_port
from inversion.core.registry import read_space_config
from inversion.testing import save_standin, shapes_config, write_space_config

_served: dict = {}


def standin_config(folder: Path) -> Path:
    entry = save_standin(folder / "shapes", shapes_config(), (128, 128))
    models = {
        "shapes": {"label": "Shapes stand-in (random weights)", **entry, "threshold": 0.0},
        "detr-resnet-50": read_space_config()["models"]["detr-resnet-50"],
        "bare": {"label": "Stand-in without inverters", **entry, "inverters": None, "threshold": 0.0},
    }
    return write_space_config(folder / "space_config.yaml", models, default_model="shapes")


def serve(folder: Path):
    """(the imported app module, its URL); the app is imported and launched once per process."""
    if not _served:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["INVERSION_SPACE_CONFIG"] = str(standin_config(folder))
        os.environ["GRADIO_EXAMPLES_CACHE"] = str(folder / "examples-cache")
        os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
        os.environ["INVERSION_OPTIMISE_STEPS"] = "3"
        app = importlib.import_module("app")
        port = free_port()
        app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        _served.update(app=app, url=f"http://127.0.0.1:{port}/")
    return _served["app"], _served["url"]

