"""A training run made a bundled model's inverters: the folder its registry entry (space_config.yaml) names.

    python -m inversion.shapes bundle --model shapes-conditional --run runs/shapes_conditional/inverters-b40000
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..core.checkpoints import load_inverters, save_inverters
from ..core.errors import UserFacingError
from ..core.registry import find_spec, load_detector
from ..training.state import METRICS_FILE, RUN_CONFIG_FILE


def bundled_folder(model: str) -> Path:
    """Where a bundled model's inverters lie."""
    spec = find_spec(model)
    return Path(spec.locate(spec.inverters))


def bundle(model: str, run: str | Path, into: str | Path | None = None, notes: dict | None = None) -> Path:
    """Write the inverters a `python -m inversion train` run saved in RUN as MODEL's (into INTO, by default its
    bundled folder): the weights, the run's notes and `notes`, the detector's folder as seen from there, and the run's
    training log and config beside them."""
    run = Path(run)
    missing = [name for name in (METRICS_FILE, RUN_CONFIG_FILE) if not (run / name).is_file()]
    if missing:
        raise UserFacingError(f"{run} has no {' or '.join(missing)}: bundle the --out folder of a "
                              "`python -m inversion train` run, which keeps its training log and config beside the weights.")
    spec = find_spec(model)
    detector = load_detector(spec)
    stack, config = load_inverters(run, detector)
    folder = Path(into) if into is not None else bundled_folder(model)
    save_inverters(stack, folder, detector, {**config["notes"], **(notes or {})}, spec.detector_location())
    for name in (METRICS_FILE, RUN_CONFIG_FILE):
        shutil.copyfile(run / name, folder / name)
    return folder
