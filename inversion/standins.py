"""Random-weight stand-ins for models whose trained weights are not at hand, and a space config naming them.

The app's tests and its benchmark need the Shapes world's and DETR-R50's architectures, not their
training: a stand-in is the same DetrConfig with random weights, saved as a local detector folder
plus a random inverter checkpoint, so it loads through the same code path as the real models.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from transformers import DetrConfig, DetrForObjectDetection

from .checkpoints import save_inverters
from .detector import Detector
from .inverters import InverterConfig, InverterStack


def save_standin(folder: str | Path, config: DetrConfig, working_size: tuple[int, int], seed: int = 0) -> dict:
    """Save a random DETR (FOLDER/detector) and random inverters for it (FOLDER/inverters).

    Returns the space-config entry (without label and threshold) that loads them.
    """
    folder = Path(folder).resolve()
    torch.manual_seed(seed)
    model = DetrForObjectDetection(config).eval()
    model.save_pretrained(folder / "detector")
    detector = Detector(model, working_size, name=str(folder / "detector"))
    stack = InverterStack(InverterConfig.for_detector(config, detector.stride))
    save_inverters(stack, folder / "inverters", detector, notes={"standin": "random weights"})
    return {"detector": str(folder / "detector"), "revision": None, "inverters": str(folder / "inverters"),
            "working_size": list(working_size)}


def shapes_config() -> DetrConfig:
    """The Shapes world's detector architecture (its training recipe's defaults)."""
    from .shapes_detector import TrainConfig, build_detector

    return build_detector(TrainConfig()).config


def write_space_config(path: str | Path, models: dict[str, dict], default_model: str) -> Path:
    """A space_config.yaml offering `models` (name -> entry), for INVERSION_SPACE_CONFIG."""
    document = {"default_model": default_model, "models": models, "limits": {"max_megapixels": 40}}
    Path(path).write_text(yaml.dump(document, Dumper=_PlainDumper, sort_keys=False))
    return Path(path)


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases, as a person would write it."""

    def ignore_aliases(self, data) -> bool:
        return True
