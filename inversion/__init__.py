"""DETR Inversion Lab: see what a Detection Transformer keeps of an image, stage by stage.

    from inversion import load_model, load_image, reconstruct
    model = load_model("shapes")                             # a detector with its trained inverters
    representations = model.detector.capture([load_image("photo.jpg")])
    images = reconstruct(model.inverters, representations)   # from every stage, one cascade

The method is Rathjens et al., arXiv:2412.06534. Sub-packages: `core` (capture, inverse modules,
checkpoints, registry), `training`, `experiments`, `figures`, `shapes`, `tradeoff`; the command
line is `python -m inversion`.
"""

from .core.checkpoints import CheckpointError, load_inverters, save_inverters
from .core.detector import Detector
from .core.errors import UserFacingError
from .core.images import ImageInputError, load_image, to_pil
from .core.inverters import InverterConfig, InverterStack
from .core.metrics import image_quality
from .core.reconstruct import input_image, reconstruct
from .core.registry import Model, load_model
from .core.stages import STAGE_SOURCES, STAGES, Detection, Representations, Source, layer_sources

__version__ = "0.2.0"

__all__ = [
    "STAGES", "STAGE_SOURCES", "CheckpointError", "Detection", "Detector", "ImageInputError", "InverterConfig",
    "InverterStack", "Model", "Representations", "Source", "UserFacingError", "image_quality", "input_image",
    "layer_sources", "load_image", "load_inverters", "load_model", "reconstruct", "save_inverters", "to_pil",
]
