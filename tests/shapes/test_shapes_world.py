"""Behaviour of the shipped Shapes world: its inverters reconstruct, depth costs detail, colour matters.

These run on the bundled checkpoints (checkpoints/shapes/) and a fixed held-out set the detector
and inverters never trained on (seed 1 of the generator, as the detector's held-out set).
"""

import numpy as np
import pytest
from PIL import Image

from inversion.core.metrics import image_quality
from inversion.core.reconstruct import input_image, reconstruct
from inversion.core.registry import load_model
from inversion.core.stages import STAGE_SOURCES
from inversion.experiments.coco_ap import coco_ap
from inversion.experiments.colour import PERTURBATIONS, hue_distance, perturb
from inversion.experiments.evaluate import instance_mask, load_samples, run_detector, subset_ground_truth
from inversion.shapes.world import PROTOTYPE_HUES, export_coco
from inversion.training.sources import open_dataset

# Measured on the shipped stack (see checkpoints/shapes/README.md); the threshold leaves a margin.
BACKBONE_PSNR_AT_LEAST = 20.0


@pytest.fixture(scope="module")
def shapes():
    return load_model("shapes")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes-held-out")
    export_coco(folder, n=100, seed=1)
    dataset = open_dataset(folder)
    return dataset, load_samples(dataset, None)[0]


def test_backbone_reconstructions_clear_the_threshold_and_quality_falls_with_depth(shapes, held_out):
    _, samples = held_out
    psnr = {stage: [] for stage in ("backbone", "encoder", "decoder", "prediction")}
    for start in range(0, 48, 16):
        reps = shapes.detector.capture([s.image for s in samples[start:start + 16]])
        for source, images in reconstruct(shapes.inverters, reps, STAGE_SOURCES).items():
            psnr[source.stage] += [image_quality(image, input_image(reps, i))["psnr"] for i, image in enumerate(images)]
    mean = {stage: float(np.mean(values)) for stage, values in psnr.items()}
    assert mean["backbone"] >= BACKBONE_PSNR_AT_LEAST, mean
    assert mean["backbone"] > mean["encoder"] > mean["decoder"] > mean["prediction"], mean


def test_setting_the_hue_away_from_the_prototype_lowers_that_class_ap(shapes, held_out):
    dataset, samples = held_out
    coco = dataset.coco
    drops = {}
    for category in coco.dataset["categories"]:
        holding = [s for s in samples if any(a["category_id"] == category["id"] for a in s.annotations)]
        ids = [s.image_id for s in holding]
        truth = subset_ground_truth(coco, ids)
        clean = coco_ap(truth, run_detector(shapes, [s.image for s in holding], ids, 32).ranked)["per_class"][category["name"]]
        prototype = PROTOTYPE_HUES[category["name"]]
        farthest = max(("red", "green", "blue"), key=lambda kind: hue_distance(PERTURBATIONS[kind][1], prototype))
        recoloured = [
            Image.fromarray(perturb(s.image, instance_mask(coco, s.annotations, category["id"], (s.image.height, s.image.width)), farthest))
            for s in holding
        ]
        after = coco_ap(truth, run_detector(shapes, recoloured, ids, 32).ranked)["per_class"][category["name"]]
        drops[category["name"]] = (clean - after) / max(clean, 1e-9)
    strongest = max(drops, key=drops.get)
    assert drops[strongest] >= 0.3, drops
