"""The Shapes world: synthetic coloured shapes with a tiny DETR trained on them, offline.

    world.py     the generator (classes with prototype hues) and its COCO export
    detector.py  the recipe that trains the small DETR from scratch on a CPU
    __main__.py  python -m inversion.shapes export | train-detector | eval-detector
"""

from .world import CLASS_NAMES, PROTOTYPE_HUES, ShapeObject, coco_dataset, export_coco, generate_sample, sample_rng

__all__ = ["CLASS_NAMES", "PROTOTYPE_HUES", "ShapeObject", "coco_dataset", "export_coco", "generate_sample", "sample_rng"]
