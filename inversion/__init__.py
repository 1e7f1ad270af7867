"""DETR Inversion Lab: see what a Detection Transformer keeps of an image, stage by stage.

    from inversion import load_model, load_image, reconstruct
    model = load_model("shapes")                             # a detector with its trained inverters
    representations = model.detector.capture([load_image("photo.jpg")])
    images = reconstruct(model.inverters, representations)   # from every stage, one cascade

The method is Rathjens et al., arXiv:2412.06534 (docs/method.md); the Python API, with an example
for each study, is docs/api.md. Sub-packages: `core` (capture, inverse modules, checkpoints,
registry), `optimisation`, `training`, `experiments`, `figures`, `shapes`, `tradeoff`; the command
line is `python -m inversion`.
"""

from .core.checkpoints import CheckpointError, load_inverters, save_inverters
from .core.detector import Detector
from .core.errors import DatasetError, UserFacingError
from .core.images import ImageInputError, load_image, to_pil
from .core.inverters import InverterConfig, InverterStack
from .core.metrics import image_quality
from .core.reconstruct import input_image, reconstruct
from .core.registry import Model, load_model
from .core.rerun import run_from
from .core.stages import STAGE_SOURCES, STAGES, Detection, Representations, Source, layer_sources
from .experiments.attention import Attention, capture_attention, rerun_attention
from .experiments.interventions import skip_layer, transplant
from .experiments.similarity import layer_similarity, linear_cka
from .optimisation import OptimisationConfig, OptimisedInversions, optimise_inversions
from .training.sources import open_dataset

__version__ = "0.2.0"

# Loaded on first use, so that `import inversion` does not load the trainer's and the evaluation's dependencies.
_LAZY = {"TrainingConfig": "training.trainer", "train": "training.trainer", "evaluate": "experiments.evaluate"}

__all__ = [
    "STAGES", "STAGE_SOURCES", "Attention", "CheckpointError", "DatasetError", "Detection", "Detector", "ImageInputError",
    "InverterConfig", "InverterStack", "Model", "OptimisationConfig", "OptimisedInversions", "Representations", "Source",
    "TrainingConfig", "UserFacingError", "capture_attention", "evaluate", "image_quality", "input_image", "layer_sources",
    "layer_similarity", "linear_cka", "load_image", "load_inverters", "load_model", "open_dataset", "optimise_inversions",
    "reconstruct", "rerun_attention", "run_from", "save_inverters", "skip_layer", "to_pil", "train", "transplant",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'inversion' has no attribute {name!r}")
