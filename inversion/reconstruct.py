"""Reconstruct images from captured representations, and the CLI that draws one labelled figure.

    python -m inversion.reconstruct IMAGE --model shapes --out grid.png
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from .images import ImageInputError, load_image  # noqa: E402
from .inverters import InverterStack  # noqa: E402
from .metrics import image_quality  # noqa: E402
from .stages import STAGES, Detection, Representations, Source  # noqa: E402

STAGE_SOURCES = [Source(stage) for stage in STAGES]


def layer_sources(representations: Representations) -> list[Source]:
    """Every encoder and decoder layer, each through the inverse chain of its own stage."""
    return [Source("encoder", layer) for layer in range(len(representations.encoder))] + [
        Source("decoder", layer) for layer in range(len(representations.decoder))
    ]


@torch.no_grad()
def reconstruct(
    stack: InverterStack, representations: Representations, sources: list[Source] = STAGE_SOURCES
) -> dict[Source, list[torch.Tensor]]:
    """Invert each source down to pixels, all sources in one cascade through the inverters.

    Returns, per source, one 3 x h x w tensor in [0, 1] per image: the padding cropped off, so
    each image has its input's aspect ratio (at the working resolution).
    """
    feeds = []
    for source in sources:
        tensor = representations.tensor(source)
        if source.stage == "prediction":
            tensor = stack.prediction.encode(*tensor)
        feeds.append((source.inverse, tensor))
    images = stack.invert(feeds, representations.grid_mask)
    return {
        source: [image[:, :height, :width] for image, (height, width) in zip(batch, representations.content_sizes)]
        for source, batch in zip(sources, images)
    }


def to_pil(image: torch.Tensor, size: tuple[int, int] | None = None) -> Image.Image:
    """A 3 x h x w tensor in [0, 1] as a PIL image, optionally resized to (height, width)."""
    array = (image.clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)
    picture = Image.fromarray(array)
    return picture if size is None else picture.resize((size[1], size[0]), Image.Resampling.BICUBIC)


def input_image(representations: Representations, index: int = 0) -> torch.Tensor:
    """The detector's view of image `index` (working resolution, padding cropped), 3 x h x w."""
    height, width = representations.content_sizes[index]
    return representations.pixels[index, :, :height, :width]


def draw_detections(axis, detections: list[Detection], scale: tuple[float, float]) -> None:
    """Draw labelled boxes on a matplotlib axis; `scale` maps original pixels to the shown image."""
    for detection in detections:
        x0, y0, x1, y1 = (value * factor for value, factor in zip(detection.box, (*scale, *scale)))
        axis.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", linewidth=1.5))
        axis.text(x0, y0, f"{detection.label} {detection.score:.2f}", color="black", fontsize=7,
                  bbox=dict(facecolor="lime", alpha=0.8, pad=1, linewidth=0), va="bottom")


def figure(representations: Representations, reconstructions: dict[Source, list[torch.Tensor]]) -> plt.Figure:
    """A grid: the input with its detections, then each reconstruction with its PSNR and SSIM."""
    target = input_image(representations)
    panels = len(reconstructions) + 1
    columns = min(panels, 5)
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.8 * rows), squeeze=False, layout="constrained")
    axes = axes.ravel()
    original_height, original_width = representations.original_sizes[0]
    height, width = representations.content_sizes[0]
    axes[0].imshow(to_pil(target))
    draw_detections(axes[0], representations.detections[0], (width / original_width, height / original_height))
    axes[0].set_title("input and detections", fontsize=9)
    for axis, (source, images) in zip(axes[1:], reconstructions.items()):
        quality = image_quality(images[0], target)
        axis.imshow(to_pil(images[0]))
        axis.set_title(f"from {source.label}\nPSNR {quality['psnr']:.1f} dB  SSIM {quality['ssim']:.2f}", fontsize=9)
    for axis in axes:
        axis.axis("off")
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reconstruct an image from every DETR stage into one figure.")
    parser.add_argument("image", help="path of the input image")
    parser.add_argument("--model", default="shapes", help="a model in space_config.yaml or an inverter checkpoint folder")
    parser.add_argument("--out", default="reconstruction.png", help="where to write the figure (PNG)")
    parser.add_argument("--layers", action="store_true", help="also reconstruct from every encoder and decoder layer")
    args = parser.parse_args(argv)

    from .checkpoints import CheckpointError
    from .models import load_model

    try:
        image = load_image(args.image)
        model = load_model(args.model)
    except (ImageInputError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if model.inverters is None:
        print(f"error: model {args.model!r} has no trained inverters yet.", file=sys.stderr)
        return 2
    representations = model.detector.capture([image])
    sources = STAGE_SOURCES + (layer_sources(representations) if args.layers else [])
    fig = figure(representations, reconstruct(model.inverters, representations, sources))
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
