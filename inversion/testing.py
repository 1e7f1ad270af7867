"""For tests and benchmarks: random-weight stand-ins of real architectures, and space configs naming them.

The app's tests and its benchmark need the Shapes world's and DETR-R50's architectures, not their
training: a stand-in is the same DetrConfig with random weights, saved as a local detector folder
plus a random inverter checkpoint, so it loads through the same code path as the real models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from transformers import AutoConfig, DetrConfig, PretrainedConfig, ResNetConfig

from .core.checkpoints import save_inverters
from .core.detector import Detector
from .core.families import family_for
from .core.inverters import InverterConfig, InverterStack
from .shapes.detector import DetectorRecipe, build_detector
from .shapes.world import ID2LABEL


def tiny_resnet_config(out_features: tuple[str, ...] = ("stage4",)) -> ResNetConfig:
    """A 4-stage basic-block ResNet with 8 to 32 channels (stride 32 at its last stage)."""
    return ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic",
                        out_features=list(out_features))


def tiny_detr_config(d_model: int = 32, num_queries: int = 6, num_labels: int = 3) -> DetrConfig:
    """A DETR with a 4-stage basic-block ResNet (stride 32), 2 encoder and 2 decoder layers."""
    return tiny_config("detr", d_model=d_model, num_queries=num_queries, num_labels=num_labels)


def tiny_shapes_detr_config() -> DetrConfig:
    """The tiny DETR with the Shapes world's labels and label ids (0 "N/A", then 1..4 as COCO category ids)."""
    config = tiny_detr_config(num_labels=len(ID2LABEL))
    config.id2label = dict(ID2LABEL)
    config.label2id = {name: index for index, name in ID2LABEL.items()}
    return config


TINY_LABELS = ("circle", "square", "triangle")

# The tiny configs' multi-scale extras: fewer sampling points, and RT-DETR's one AIFI module on the coarsest level.
TINY_MULTI_SCALE_EXTRAS = {"deformable_detr": dict(encoder_n_points=2, decoder_n_points=2),
                           "rt_detr": dict(decoder_n_points=2, encoder_layers=1)}


def multi_scale_sizes(model_type: str, d_model: int, stage_channels: list[int]) -> dict:
    """What a multi-scale family's tiny config sets beyond the common sizes (nothing for the others)."""
    return {**family_for(model_type).scale_config(d_model, stage_channels), **TINY_MULTI_SCALE_EXTRAS.get(model_type, {})}


def resnet_out_features(model_type: str, stages: int = 4) -> tuple[str, ...]:
    """The stages of a `stages`-stage ResNet that a family's encoder reads (its last `backbone_stages`)."""
    return tuple(f"stage{stage}" for stage in range(stages - family_for(model_type).backbone_stages + 1, stages + 1))


# Families without a CNN: their tiny configs' patch size and the image size their position embeddings are made for.
VISION_TRANSFORMERS = {"yolos": dict(patch_size=16, image_size=[64, 96], use_mid_position_embeddings=True)}


def tiny_config(model_type: str, d_model: int = 32, num_queries: int = 6, num_labels: int = 3) -> PretrainedConfig:
    """A tiny random config of a family's architecture (by config model type): the tiny ResNet, 2 encoder and
    2 decoder layers of width `d_model` with 2 heads, `num_queries` queries, `num_labels` classes."""
    labels = {index: name for index, name in enumerate(TINY_LABELS[:num_labels])}
    if model_type in VISION_TRANSFORMERS:
        return AutoConfig.for_model(model_type, hidden_size=d_model, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, num_detection_tokens=num_queries, num_labels=num_labels,
                                    id2label=labels, label2id={name: index for index, name in labels.items()},
                                    **VISION_TRANSFORMERS[model_type])
    backbone = tiny_resnet_config(resnet_out_features(model_type))
    common = dict(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
        encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=num_queries, num_labels=num_labels,
        id2label=labels, label2id={name: index for index, name in labels.items()},
    )
    stage_channels = [backbone.hidden_sizes[backbone.stage_names.index(stage) - 1] for stage in backbone.out_features]
    common.update(multi_scale_sizes(model_type, d_model, stage_channels))
    return AutoConfig.for_model(model_type, **{family_for(model_type).width_attribute: d_model}, **common)


def tiny_classifier_config(model_type: str, num_labels: int = 3, multi_label: bool = False) -> PretrainedConfig:
    """A tiny random config of a classification family (by config model type) on 32 x 32 images.

    ViT and DeiT: 4 x 4 patches at width 64 (48 pixel values a patch, so the patch embedding is invertible),
    2 blocks of 2 heads. Swin: 2 x 2 patches at width 16, three stages of 2 blocks (2 heads, 4 x 4 windows:
    the last stage's 4 x 4 grid is one unshifted window), so two patch mergings.
    """
    labels = {index: name for index, name in enumerate(TINY_LABELS[:num_labels])}
    common = dict(image_size=32, num_labels=num_labels, id2label=labels, label2id={name: index for index, name in labels.items()},
                  problem_type="multi_label_classification" if multi_label else None)
    if model_type == "swin":
        sizes = dict(patch_size=2, embed_dim=16, depths=[2, 2, 2], num_heads=[2, 2, 2], window_size=4)
    else:
        sizes = dict(patch_size=4, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    return AutoConfig.for_model(model_type, **sizes, **common)


def r50_config(model_type: str) -> PretrainedConfig:
    """A family's ResNet-50 architecture with its config defaults (transformers' own ResNet-50, 91 COCO labels):
    what its Hub checkpoint computes, with random weights. YOLOS has no ResNet: its size is hustvl/yolos-small's."""
    if model_type == "yolos":
        return AutoConfig.for_model(model_type, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                    intermediate_size=1536, num_labels=91)
    return AutoConfig.for_model(model_type, use_timm_backbone=False, use_pretrained_backbone=False, num_labels=91,
                                backbone_config=ResNetConfig(out_features=list(resnet_out_features(model_type))))


def detr_r50_config() -> DetrConfig:
    """DETR-R50's architecture: ResNet-50 backbone (transformers' own), 6+6 layers, d=256, 100 queries."""
    return DetrConfig(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        backbone_config=ResNetConfig(out_features=["stage4"]),
        num_labels=91,
    )


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    """A smooth random RGB image (blurred noise), reproducible from its seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


def save_standin(folder: str | Path, config: DetrConfig, working_size: tuple[int, int], seed: int = 0) -> dict:
    """Save a random DETR (FOLDER/detector) and random inverters for it (FOLDER/inverters).

    Returns the space-config entry (without label and threshold) that loads them.
    """
    folder = Path(folder).resolve()
    torch.manual_seed(seed)
    model = family_for(config).model_class(config).eval()
    model.save_pretrained(folder / "detector")
    detector = Detector(model, working_size, name=str(folder / "detector"))
    stack = InverterStack(InverterConfig.for_detector(detector))
    save_inverters(stack, folder / "inverters", detector, notes={"standin": "random weights"})
    return {"detector": str(folder / "detector"), "revision": None, "inverters": str(folder / "inverters"),
            "working_size": list(working_size)}


def shapes_config() -> DetrConfig:
    """The Shapes world's detector architecture (its training recipe's defaults)."""
    return build_detector(DetectorRecipe()).config


def write_space_config(path: str | Path, models: dict[str, dict], default_model: str, limits: dict) -> Path:
    """A space_config.yaml offering `models` (name -> entry) with the app's `limits`, for $INVERSION_SPACE_CONFIG."""
    document = {"default_model": default_model, "models": models, "limits": limits}
    Path(path).write_text(yaml.dump(document, Dumper=_PlainDumper, sort_keys=False))
    return Path(path)


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases, as a person would write it."""

    def ignore_aliases(self, data) -> bool:
        return True


def export_hub_parquet(coco_folder: str | Path, out: str | Path, split: str, rows_per_file: int | None = None) -> Path:
    """Write a COCO-format export (DIR/annotations.json + DIR/images/) as parquet files in detection-datasets/coco's
    schema (inversion.training.hub_datasets): OUT/data/SPLIT-0000N-of-0000M.parquet, rows in image-id order, each
    image file's bytes as they are, the categories as a ClassLabel of their names in id order, boxes as corners."""
    import json

    import datasets

    coco_folder, out = Path(coco_folder), Path(out)
    document = json.loads((coco_folder / "annotations.json").read_text())
    categories = sorted(document["categories"], key=lambda category: category["id"])
    position = {category["id"]: index for index, category in enumerate(categories)}
    features = datasets.Features({
        "image_id": datasets.Value("int64"), "image": datasets.Image(),
        "width": datasets.Value("int64"), "height": datasets.Value("int64"),
        "objects": datasets.Sequence({
            "bbox_id": datasets.Value("int64"),
            "category": datasets.ClassLabel(names=[category["name"] for category in categories]),
            "bbox": datasets.Sequence(datasets.Value("float64"), length=4), "area": datasets.Value("int64")}),
    })
    rows = []
    for image in sorted(document["images"], key=lambda entry: entry["id"]):
        objects = [a for a in document["annotations"] if a["image_id"] == image["id"]]
        rows.append({"image_id": image["id"], "width": image["width"], "height": image["height"],
                     "image": {"bytes": (coco_folder / "images" / image["file_name"]).read_bytes(), "path": image["file_name"]},
                     "objects": {"bbox_id": [a["id"] for a in objects], "category": [position[a["category_id"]] for a in objects],
                                 "bbox": [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                                          for a in objects],
                                 "area": [round(a.get("area", a["bbox"][2] * a["bbox"][3])) for a in objects]}})
    table = datasets.Dataset.from_list(rows, features=features)
    size = rows_per_file or len(rows)
    parts = range(0, len(rows), size)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for number, start in enumerate(parts):
        table.select(range(start, min(start + size, len(rows)))).to_parquet(
            out / "data" / f"{split}-{number:05d}-of-{len(parts):05d}.parquet")
    return out
