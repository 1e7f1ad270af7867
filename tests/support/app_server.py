"""The app built and served in the test process on a free loopback port, for the gradio_client and browser tests.

`standin_config` offers `shapes` (the Shapes architecture with random weights, every query a
detection), `detr-resnet-50` (the real Hub entry: unreachable offline, so reported on screen)
and `bare` (a detector without inverters). Optimisation-based inversion is kept to
OPTIMISE_STEPS steps so the tests stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inversion.core.registry import read_space_config
from inversion.testing import save_standin, shapes_config, write_space_config
from lab.catalogue import Catalogue, load_catalogue
from lab.server import LOOPBACK, free_port, start
from support.paths import REPO

OPTIMISE_STEPS = 3
SPACE_CONFIG = REPO / "space_config.yaml"  # the bundled Shapes model and the DETR-R50 entry


def standin_config(folder: Path) -> Path:
    """A space config of random-weight stand-ins (saved in `folder`) and the real DETR-R50 entry."""
    entry = save_standin(folder / "shapes", shapes_config(), (128, 128))
    real = read_space_config(SPACE_CONFIG)
    models = {
        "shapes": {"label": "Shapes stand-in (random weights)", **entry, "threshold": 0.0},
        "detr-resnet-50": real["models"]["detr-resnet-50"],
        "bare": {"label": "Stand-in without inverters", **entry, "inverters": None, "threshold": 0.0},
    }
    return write_space_config(folder / "space_config.yaml", models, default_model="shapes", limits=real["limits"])


@contextmanager
def serving(config: Path, folder: Path, optimise_steps: int = OPTIMISE_STEPS) -> Iterator[tuple[Catalogue, str]]:
    """(the catalogue, the app's URL) while the app serves `config`; its cached examples go to `folder`."""
    with pytest.MonkeyPatch.context() as patch:  # Gradio's own settings, read while the app runs
        patch.setenv("GRADIO_EXAMPLES_CACHE", str(folder / "examples-cache"))
        patch.setenv("GRADIO_TEMP_DIR", str(folder / "gradio-cache"))  # Gradio names files by content, and other
        # processes on this machine (other test runs) write and delete the same names in the shared /tmp/gradio
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        catalogue = load_catalogue(config)
        port = free_port()
        demo = start(catalogue, port, optimise_steps)
        try:
            yield catalogue, f"http://{LOOPBACK}:{port}/"
        finally:
            demo.close(verbose=False)
