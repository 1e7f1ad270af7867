"""What each architecture keeps, in the Shapes world: the DETR, the ViT and the Swin side by side, as the
paper's final version compares DETR with ViT and Swin (issue 27, point 3).

On the same held-out images (stream seed 1), for every depth of each model (every encoder layer or block
through its stage's inverse chain as if final, and each stage's output):
- PSNR and SSIM of the reconstruction against the model's own input (the DETR's 128 px canvas, the
  classifiers' 64 px input);
- objects found again: the Shapes DETR's detections on the original (128 px) against its detections on the
  reconstruction (the classifiers' upsampled to 128 px), with their label (`matching.shape_preservation`);
  the classifiers' ceiling is the original downsampled to their input and back (`input round trip`);
- inter-layer linear CKA between every two captured layers, the images as examples and each layer's whole
  tensor as features (the paper's inter-layer correlation).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from ..core.classifier import Classifier
from ..core.classifier_checkpoints import load_classifier_inverters
from ..core.classifier_inverters import ANALYTIC_LABEL, AnalyticPatchInverse
from ..core.classifier_stages import ClassifierSource
from ..core.images import to_pil
from ..core.metrics import image_quality
from ..core.reconstruct import reconstruct
from ..core.registry import Model, load_model
from ..core.stages import Source
from ..experiments.matching import shape_preservation
from ..experiments.similarity import linear_cka
from ..figures import architecture_cka_plot, architecture_depth_plot
from .detector import HELDOUT_SEED
from .world import IMAGE_SIZE, PROTOTYPE_PROB, generate_sample, sample_rng

CLASSIFIERS = {"ViT": ("checkpoints/shapes/classifier-vit", "checkpoints/shapes/classifier-vit-inverters"),
               "Swin": ("checkpoints/shapes/classifier-swin", "checkpoints/shapes/classifier-swin-inverters")}
ROUND_TRIP = "input round trip"


def heldout_images(count: int, seed: int = HELDOUT_SEED, prototype_share: float = PROTOTYPE_PROB) -> list[Image.Image]:
    """The first `count` images of a Shapes stream (the held-out one of the bundled world by default)."""
    return [generate_sample(sample_rng(seed, index), IMAGE_SIZE, prototype_share)[0] for index in range(count)]


def cka_matrix(layers: dict[str, torch.Tensor]) -> dict:
    """Linear CKA between every two layers (B x ... each): the images as examples, each layer flattened."""
    flat = {name: tensor.flatten(1) for name, tensor in layers.items()}
    names = list(flat)
    return {"layers": names, "cka": [[round(linear_cka(flat[row], flat[column]), 4) for column in names] for row in names]}


class _Found:
    """The Shapes DETR's detections on the originals, and objects found again in any 128 px reconstruction."""

    def __init__(self, detr: Model, originals: list[Image.Image], batch_size: int):
        self.detector, self.batch_size = detr.detector, batch_size
        self.originals = self.detect(originals)

    def detect(self, images: list[Image.Image]) -> list:
        found = []
        for start in range(0, len(images), self.batch_size):
            found += self.detector.capture(images[start:start + self.batch_size]).detections
        return found

    def again(self, reconstructions: list[torch.Tensor]) -> float | None:
        images = [to_pil(image, (IMAGE_SIZE, IMAGE_SIZE)) for image in reconstructions]
        return shape_preservation(list(zip(self.originals, self.detect(images))))["found"]


def _row(label: str, reconstructions: list[torch.Tensor], inputs: torch.Tensor, found: _Found) -> dict:
    """PSNR and SSIM against the model's input (none for the input itself), and objects found again."""
    scores = {"psnr": None, "ssim": None} if label == ROUND_TRIP else image_quality(torch.stack(reconstructions), inputs)
    return {"source": label, "psnr": scores["psnr"] and round(scores["psnr"], 2), "ssim": scores["ssim"] and round(scores["ssim"], 4),
            "found_again": round(found.again(reconstructions), 4)}


@torch.no_grad()
def detr_rows(detr: Model, images: list[Image.Image], found: _Found, batch_size: int) -> tuple[list[dict], dict]:
    """The DETR's rows (backbone, every encoder and decoder layer, prediction) and its layers' CKA."""
    stack = detr.require_inverters()
    sources = [Source("backbone"), *(Source("encoder", layer) for layer in range(1, detr.detector.sizes.encoder_layers + 1)),
               *(Source("decoder", layer) for layer in range(1, detr.detector.sizes.decoder_layers + 1)), Source("prediction")]
    reconstructions: dict[Source, list[torch.Tensor]] = {source: [] for source in sources}
    inputs, layers = [], {}
    for start in range(0, len(images), batch_size):
        reps = detr.detector.capture(images[start:start + batch_size])
        inputs.append(reps.pixels)
        for source, batch in reconstruct(stack, reps, sources).items():
            reconstructions[source] += batch
        captured = {"backbone": reps.backbone, **{f"encoder {layer}": reps.encoder[layer] for layer in range(1, len(reps.encoder))},
                    **{f"decoder {layer}": reps.decoder[layer] for layer in range(1, len(reps.decoder))},
                    "prediction": torch.cat([reps.logits, reps.boxes], -1)}
        for name, tensor in captured.items():
            layers.setdefault(name, []).append(tensor)
    pixels = torch.cat(inputs)
    rows = [_row(source.label if source.layer is None else f"{source.stage} {source.layer}", batch, pixels, found)
            for source, batch in reconstructions.items()]
    return rows, cka_matrix({name: torch.cat(parts) for name, parts in layers.items()})


@torch.no_grad()
def classifier_rows(classifier: Classifier, stack, images: list[Image.Image], found: _Found,
                    batch_size: int) -> tuple[list[dict], dict]:
    """A classifier's rows (the embedding by the analytic and the learned inverse, every encoder entry, the pooled
    token, the logits; and the input round trip, its ceiling) and its layers' CKA."""
    labels: dict[str, list[torch.Tensor]] = {}
    inputs, layers = [], {}
    for start in range(0, len(images), batch_size):
        reps = classifier.capture(images[start:start + batch_size])
        inputs.append(reps.pixels)
        batch = {ROUND_TRIP: reps.pixels,
                 ANALYTIC_LABEL: stack.invert(reps, ClassifierSource("embedding"), AnalyticPatchInverse(classifier)),
                 "embedding": stack.invert(reps, ClassifierSource("embedding")),
                 **{f"encoder {entry}": stack.invert(reps, ClassifierSource("encoder", entry)) for entry in range(1, len(reps.encoder))},
                 "pooled": stack.invert(reps, ClassifierSource("pooled")), "logits": stack.invert(reps, ClassifierSource("logits"))}
        for label, tensor in batch.items():
            labels.setdefault(label, []).extend(tensor.clamp(0, 1))
        captured = {"embedding": reps.embedding, **{f"encoder {entry}": reps.encoder[entry] for entry in range(1, len(reps.encoder))},
                    "pooled": reps.pooled, "logits": reps.logits}
        for name, tensor in captured.items():
            layers.setdefault(name, []).append(tensor)
    pixels = torch.cat(inputs)
    rows = [_row(label, reconstructions, pixels, found) for label, reconstructions in labels.items()]
    return rows, cka_matrix({name: torch.cat(parts) for name, parts in layers.items()})


def compare(count: int = 200, batch_size: int = 50, detr: str = "shapes",
            classifiers: dict[str, tuple[str, str]] = CLASSIFIERS) -> dict:
    """Every architecture's rows and CKA matrix on the first `count` held-out images."""
    images = heldout_images(count)
    model = load_model(detr)
    found = _Found(model, images, batch_size)
    results = {"images": count, "seed": HELDOUT_SEED, "objects": sum(map(len, found.originals)), "architectures": {}}
    rows, cka = detr_rows(model, images, found, batch_size)
    results["architectures"]["DETR"] = {"rows": rows, "cka": cka}
    for name, (weights, inverters) in classifiers.items():
        classifier = Classifier.from_pretrained(weights)
        stack, _ = load_classifier_inverters(inverters, classifier)
        rows, cka = classifier_rows(classifier, stack.eval(), images, found, batch_size)
        results["architectures"][name] = {"rows": rows, "cka": cka}
    return results


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: dict) -> str:
    """The rows as one markdown table."""
    lines = ["| architecture | reconstructed from | PSNR (dB) | SSIM | objects found again |", "|---|---|---|---|---|"]
    for name, architecture in results["architectures"].items():
        lines += [f"| {name} | {row['source']} | {_cell(row['psnr'], 2)} | {_cell(row['ssim'], 3)} | {row['found_again']:.3f} |"
                  for row in architecture["rows"]]
    return "\n".join(lines)


def run(out: str | Path, count: int = 200, batch_size: int = 50) -> dict:
    """Compare, then write results.json, table.md and the two figures to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = compare(count, batch_size)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "table.md").write_text(table(results) + "\n")
    architecture_depth_plot(results, (ROUND_TRIP, ANALYTIC_LABEL)).savefig(out / "depth.png", dpi=110)
    architecture_cka_plot(results).savefig(out / "cka.png", dpi=110)
    return results
