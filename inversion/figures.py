"""Every matplotlib figure of the library, drawn on `matplotlib.figure.Figure` objects.

No pyplot and no global backend: a Figure renders through the Agg canvas when saved, so
importing this module changes nothing for the app or a notebook.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import segno
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from .core.images import to_pil
from .core.metrics import image_quality
from .core.reconstruct import input_image
from .core.stages import STAGES, Detection, Representations, Source


def to_image(figure: Figure, dpi: int = 100) -> Image.Image:
    """A figure rendered to an RGB PIL image."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return Image.open(buffer).convert("RGB")


Box = tuple[tuple[float, float, float, float], str]  # (x0, y0, x1, y1) in a picture's pixels, and its label


def draw_detections(axis, detections: list[Detection], scale: tuple[float, float], fontsize: int = 7) -> None:
    """Draw labelled boxes on a matplotlib axis; `scale` maps original pixels to the shown image."""
    draw_boxes(axis, labelled_boxes(detections, scale), fontsize)


def labelled_boxes(detections: list[Detection], scale: tuple[float, float] = (1.0, 1.0)) -> list[Box]:
    """Detections as boxes scaled by `scale` and labelled 'square 0.93'."""
    return [(tuple(value * factor for value, factor in zip(d.box, (*scale, *scale))), f"{d.label} {d.score:.2f}")
            for d in detections]


def draw_boxes(axis, boxes: list[Box], fontsize: int = 7) -> None:
    """Draw labelled boxes on a matplotlib axis, in the pixels of the image shown there."""
    for (x0, y0, x1, y1), label in boxes:
        axis.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", linewidth=1.5))
        axis.text(x0, y0, label, color="black", fontsize=fontsize, bbox=dict(facecolor="lime", alpha=0.8, pad=1, linewidth=0),
                  va="bottom")



def similarity_heat_map(encoder: np.ndarray, decoder: np.ndarray) -> Image.Image:
    """The encoder and decoder CKA matrices side by side, annotated, as an image."""
    figure = Figure(figsize=(8.4, 3.6), dpi=100, layout="constrained")
    for axis, matrix, stage in zip(figure.subplots(1, 2), (encoder, decoder), ("encoder", "decoder")):
        shown = _similarity_axis(axis, matrix, [str(layer) for layer in range(len(matrix))], f"{stage} layer")
        axis.set_title(f"{stage}: linear CKA between layers", fontsize=10)
    figure.colorbar(shown, ax=figure.axes, shrink=0.8)
    return to_image(figure)


def layer_similarity_map(matrix: np.ndarray, names: list[str], title: str) -> Image.Image:
    """One CKA matrix between named layers, annotated, as an image (a classifier's layers)."""
    figure = Figure(figsize=(5.6, 4.4), dpi=100, layout="constrained")
    axis = figure.subplots()
    shown = _similarity_axis(axis, matrix, names, "layer")
    axis.set_title(title, fontsize=10)
    figure.colorbar(shown, ax=axis, shrink=0.8)
    return to_image(figure)


def _similarity_axis(axis, matrix: np.ndarray, names: list[str], label: str):
    """A CKA matrix on `axis`, each finite value written in its cell, the layers named on both axes."""
    shown = axis.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=1, cmap="viridis")
    for (row, column), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="black" if value > 0.6 else "white")
    rotation = 0 if max(map(len, names)) <= 2 else 45
    axis.set_xticks(range(len(matrix)), names, rotation=rotation, ha="right" if rotation else "center", fontsize=8)
    axis.set_yticks(range(len(matrix)), names, fontsize=8)
    axis.set_xlabel(label)
    axis.set_ylabel(label)
    return shown


def evaluation_plots(results: dict, out: Path) -> list[str]:
    """Write the PNG plots of whatever sections are in `results`; return their file names."""
    written = []
    if "stages" in results:
        quality = results["stages"]["quality"]
        labels = [label for label in quality if not label.startswith("baseline")]
        fig = Figure(figsize=(16, 4.2))
        axes = fig.subplots(1, 3, width_ratios=[3, 3, 1.4])
        for axis, metric in zip(axes, ("psnr", "ssim")):
            axis.bar(range(len(labels)), [quality[label][metric] for label in labels], color="tab:blue")
            for (label, metrics), style in zip(((k, v) for k, v in quality.items() if k.startswith("baseline")), ("--", ":")):
                axis.axhline(metrics[metric], color="tab:red", linestyle=style, label=label.removeprefix("baseline: "))
            axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
            axis.set_ylabel(metric.upper())
            axis.legend(fontsize=8, title="baselines", title_fontsize=8)
        kept = results["stages"]["shape_preservation"]
        axes[2].bar(list(kept), [kept[stage]["found"] or 0 for stage in kept], color="tab:green")
        axes[2].set_ylim(0, 1)
        axes[2].set_ylabel("objects found again, same label")
        axes[2].tick_params(axis="x", rotation=45)
        fig.suptitle("Reconstruction quality by stage and layer, against baselines; shape preservation by stage")
        fig.tight_layout()
        fig.savefig(out / "stages.png", dpi=110)
        written.append("stages.png")
    if "layer_swap" in results:
        swap = results["layer_swap"]
        fig = Figure(figsize=(15, 4))
        axes = fig.subplots(1, 3)
        rows = [(f"{stage} layer -> inverse {entry}", values)
                for stage, metrics in swap["matrices"].items() for entry, values in metrics["psnr"].items()]
        width = max(len(values) for _, values in rows)
        matrix = np.full((len(rows), width), np.nan)
        for row, (_, values) in enumerate(rows):
            matrix[row, : len(values)] = values
        image = axes[0].imshow(matrix, cmap="viridis", aspect="auto")
        axes[0].set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
        axes[0].set_xlabel("layer")
        axes[0].set_title("PSNR of layer-swap reconstructions (dB)")
        fig.colorbar(image, ax=axes[0])
        for axis, stage in zip(axes[1:], ("encoder", "decoder")):
            image = axis.imshow(np.array(swap["cka"][stage], dtype=float), cmap="magma", vmin=0, vmax=1)
            axis.set_title(f"linear CKA between {stage} layers")
            axis.set_xlabel("layer")
            axis.set_ylabel("layer")
            fig.colorbar(image, ax=axis)
        fig.tight_layout()
        fig.savefig(out / "layer_swap.png", dpi=110)
        written.append("layer_swap.png")
    if "color" in results and results["color"]:
        color = results["color"]
        classes = list(color)
        kinds = list(color[classes[0]]["perturbations"])
        fig = Figure(figsize=(13, 4))
        axes = fig.subplots(1, 2)
        drop = np.array([[color[c]["perturbations"][k]["ap"] - color[c]["clean_ap"] for k in kinds] for c in classes])
        image = axes[0].imshow(drop, cmap="RdBu", vmin=-1, vmax=1)
        axes[0].set_xticks(range(len(kinds)), kinds, rotation=30)
        axes[0].set_yticks(range(len(classes)), classes)
        axes[0].set_title("change in class AP under perturbation")
        for (row, column), value in np.ndenumerate(drop):
            axes[0].text(column, row, f"{value:+.2f}", ha="center", va="center", fontsize=8)
        fig.colorbar(image, ax=axes[0])
        drifts = "hue_distance_to_prototype" in color[classes[0]]["perturbations"][kinds[0]]  # none without inverters
        for kind in ("red", "green", "blue", "rotate120", "rotate240") if drifts else ():
            values = [np.nanmean([np.nan if color[c]["perturbations"][kind]["hue_distance_to_prototype"][s] is None
                                  else color[c]["perturbations"][kind]["hue_distance_to_prototype"][s] for c in classes])
                      for s in STAGES]
            axes[1].plot(STAGES, values, marker="o", label=kind)
        axes[1].set_ylabel("hue distance to class prototype (OpenCV units)")
        axes[1].set_title("reconstructed object hue vs. prototype, by stage")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "color.png", dpi=110)
        written.append("color.png")
    return written


def error_gallery(cases: list[tuple[Image.Image, list[Detection], list[str], list[Image.Image]]], stages) -> Figure:
    """Images the detector got wrong (its detections drawn, its errors in the title) and their reconstruction
    from each stage beside them: where a reconstruction shows why an object was missed or mislabelled."""
    fig = Figure(figsize=(2.4 * (1 + len(stages)), 2.6 * len(cases)), layout="constrained")
    axes = fig.subplots(len(cases), 1 + len(stages), squeeze=False)
    for row, (image, detections, errors, reconstructions) in zip(axes, cases):
        row[0].imshow(image)
        draw_detections(row[0], detections, (1.0, 1.0))
        row[0].set_title(textwrap.fill("; ".join(errors), 34), fontsize=8, color="darkred")
        for axis, stage, picture in zip(row[1:], stages, reconstructions):
            axis.imshow(picture)
            axis.set_title(f"from {stage}", fontsize=8)
        for axis in row:
            axis.axis("off")
    fig.suptitle("Detection errors and what each stage kept", fontsize=10)
    return fig


def method_comparison_grid(inputs: list[Image.Image], methods: dict[str, list[dict[str, Image.Image]]],
                           stages: list[str]) -> Figure:
    """Per input image a block of rows, one per method, of its reconstruction from each stage beside the input."""
    rows = [(index, name) for index in range(len(inputs)) for name in methods]
    fig = Figure(figsize=(1.9 * (1 + len(stages)), 1.9 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 1 + len(stages), squeeze=False)
    for row, (index, name) in zip(axes, rows):
        row[0].imshow(inputs[index])
        row[0].set_title("input", fontsize=7)
        for axis, stage in zip(row[1:], stages):
            axis.imshow(methods[name][index][stage])
            axis.set_title(f"{name}: {stage}", fontsize=7)
        for axis in row:
            axis.axis("off")
    return fig


def objective_comparison_plot(runs: dict) -> Figure:
    """Modular against end-to-end training: each stage's PSNR and share of objects found again, per run."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    width = 0.8 / len(runs)
    for offset, (name, run) in enumerate(runs.items()):
        label = f"{name.replace('_', ' ')} ({run['steps']} steps, {run['gflops_per_step']:.0f} GFLOPs per step)"
        for axis, key in zip(axes, ("psnr", "objects_found")):
            values = [run["stages"][stage][key] or 0 for stage in STAGES]
            axis.bar(np.arange(len(STAGES)) + offset * width, values, width, label=label)
    for axis, title in zip(axes, ("PSNR (dB)", "objects found again, same label")):
        axis.set_xticks(np.arange(len(STAGES)) + width * (len(runs) - 1) / 2, STAGES)
        axis.set_title(title, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.suptitle("Modular vs end-to-end training of the inverse modules (Shapes world)", fontsize=11)
    return fig


def backbone_comparison_plot(results: dict) -> Figure:
    """Inverse backbones: reconstruction quality against compute."""
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    axis = fig.subplots()
    for name, result in results.items():
        axis.scatter(result["gflops_shapes_128"], result["psnr"], s=60)
        axis.annotate(f"{name}\n{result['parameters'] / 1e6:.2f} M parameters", (result["gflops_shapes_128"], result["psnr"]),
                      fontsize=8, xytext=(6, 4), textcoords="offset points")
    axis.set_xscale("log")
    axis.margins(x=0.3, y=0.15)  # room for the labels
    axis.set_xlabel("GFLOPs per 128 x 128 reconstruction")
    axis.set_ylabel("PSNR from the backbone (dB)")
    axis.set_title("Inverse backbone: quality against cost", fontsize=10)
    return fig


def headroom_plot(points: dict[str, dict], stage: str, sizes: list[str], lengths: tuple[int, ...]) -> Figure:
    """One stage of the headroom study: PSNR, SSIM, objects found again by the DETR and by the judges (their mean, for
    the points they scored) against training steps, a line per inverter size and objective (pixel MSE solid, with the
    feature term dashed, with a patch critic too dotted), the baselines as horizontal lines."""
    fig = Figure(figsize=(17, 3.8), layout="constrained")
    axes = fig.subplots(1, 4)
    colours = dict(zip(sizes, colormaps["viridis"](np.linspace(0.1, 0.85, len(sizes)))))
    styles = {"mse": ("-", "pixel MSE"), "feature": ("--", "+ feature term"), "adversarial": (":", "+ feature, patch critic")}
    baselines = next(iter(points.values()))["baselines"]

    def value(record: dict, metric: str) -> float | None:
        if metric != "judged":
            return record["stages"][stage][metric]
        judged = [judge[stage]["objects_found"] for judge in record.get("judged", {}).values()]
        return sum(judged) / len(judged) if judged else None

    panels = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("objects_found", "objects found again by the DETR, same label"),
              ("judged", "... by the judges (mean of the two)"))
    for axis, (metric, title) in zip(axes, panels):
        for size in sizes:
            for objective, (style, objective_label) in styles.items():
                runs = sorted((record["steps"], measured) for record in points.values()
                              if record["size"] == size and record["objective"] == objective
                              and (measured := value(record, metric)) is not None)
                if runs:
                    millions = sum(next(r for r in points.values() if r["size"] == size)["parameters"].values()) / 1e6
                    axis.plot(*zip(*runs), style, marker="o", color=colours[size],
                              label=f"{size} ({millions:.2f} M), {objective_label}")
        if metric in ("psnr", "ssim"):
            for (label, values), line in zip(baselines.items(), (":", "-.")):
                axis.axhline(values[metric], color="tab:red", linestyle=line, linewidth=1, label=f"baseline: {label.replace('_', ' ')}")
        else:
            axis.set_ylim(0, 1)  # the DETR's count and the judges' on one scale
        axis.set_xscale("log")
        axis.set_xticks(list(lengths), [f"{n:,}" for n in lengths])
        axis.minorticks_off()
        axis.set_xlabel("training steps (batch 16)")
        axis.set_title(title, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Headroom from the {stage}: quality against inverter capacity and training length (Shapes, held-out)", fontsize=11)
    return fig


def architecture_depth_plot(results: dict, skipped: tuple[str, ...]) -> Figure:
    """The architecture comparison: PSNR and objects found again against relative depth, a line per architecture
    (rows whose source is in `skipped` left out)."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for name, architecture in results["architectures"].items():
        rows = [row for row in architecture["rows"] if row["source"] not in skipped]
        depth = np.linspace(0, 1, len(rows))
        for axis, metric in zip(axes, ("psnr", "found_again")):
            axis.plot(depth, [row[metric] for row in rows], marker="o", label=name)
    for axis, title in zip(axes, ("PSNR (dB)", "objects found again, same label (by the Shapes DETR)")):
        axis.set_xlabel("depth (0: the first stage; 1: logits or predictions)")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(f"What each depth keeps: the Shapes world, {results['images']} held-out images", fontsize=11)
    return fig


def architecture_cka_plot(results: dict) -> Figure:
    """The architecture comparison's inter-layer linear CKA, one matrix per architecture."""
    architectures = results["architectures"]
    fig = Figure(figsize=(5 * len(architectures) + 1, 4.8), layout="constrained")
    axes = fig.subplots(1, len(architectures))
    for axis, (name, architecture) in zip(axes, architectures.items()):
        names = architecture["cka"]["layers"]
        shown = axis.imshow(architecture["cka"]["cka"], vmin=0, vmax=1, cmap="viridis")
        axis.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        axis.set_yticks(range(len(names)), names, fontsize=7)
        axis.set_title(f"{name}: linear CKA between layers", fontsize=10)
    fig.colorbar(shown, ax=list(axes), shrink=0.8)
    return fig


def colour_dial_plot(table: dict) -> Figure:
    """Class AP under colour perturbations, one panel per class (and their mean), one bar per column of `table`
    (a detector on a held-out set): {column: {class: {perturbation: AP}}}."""
    columns = list(table)
    classes = list(table[columns[0]])
    kinds = list(table[columns[0]][classes[0]])
    fig = Figure(figsize=(3.2 * len(classes), 3.6), layout="constrained")
    axes = fig.subplots(1, len(classes), sharey=True)
    width = 0.8 / len(columns)
    for axis, name in zip(axes, classes):
        for offset, column in enumerate(columns):
            axis.bar(np.arange(len(kinds)) + offset * width, [table[column][name][kind] or 0 for kind in kinds], width,
                     label=column)
        axis.set_xticks(np.arange(len(kinds)) + width * (len(columns) - 1) / 2, kinds, rotation=60, fontsize=7)
        axis.set_title(name, fontsize=10)
    axes[0].set_ylabel("class AP")
    axes[0].legend(fontsize=7)
    fig.suptitle("Colour reliance as a dial: class AP under colour perturbations", fontsize=11)
    return fig


CITATION = "Rathjens, Reyhanian, Kappel, Wiskott: Inverting Visual Representations with Detection Transformers, arXiv:2412.06534"
CARD_SIZE = (19.2, 10.8)  # inches: 1920 x 1080 pixels at 100 dpi, a 16:9 slide
CARD_DPI = 100
STAGE_CARD_TITLE = "What DETR keeps of this image, stage by stage"
CARD_TITLE_LENGTH = 62  # characters that fit the width at the title's full size (34 pt)
CARD_ROW_LENGTH = 7  # pictures per row at most; longer rows wrap
CARD_PICTURES = (0.03, 0.22, 0.94, 0.66)  # left, bottom, width, height of the pictures' area (figure fractions)


@dataclass
class CardPanel:
    """One picture on a result card, with its caption and the labelled boxes to draw on it (its pixels)."""

    image: Image.Image
    caption: str
    boxes: list[Box] = field(default_factory=list)


def model_line(label: str, detector: str, revision: str | None) -> str:
    """A card's model line: 'Model: Shapes world (checkpoints/shapes @ 0123456789ab)'."""
    pinned = f" @ {revision[:12]}" if revision else ""
    return f"Model: {label} ({detector}{pinned})"


def save_card(figure: Figure, path: str | Path) -> None:
    """Write a card: PNG at 1920 x 1080, or PDF / SVG (vector, the pictures embedded), by the path's suffix."""
    figure.savefig(path, dpi=CARD_DPI, facecolor="white")


def qr_code(text: str, pixels_per_module: int = 10) -> Image.Image:
    """A QR code of `text` (segno, error correction M) as an RGB image with its quiet zone."""
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=pixels_per_module, border=4)
    return Image.open(buffer).convert("RGB")


def result_card(title: str, panels: list[CardPanel] | list[list[CardPanel]], model: str, link: str | None = None,
                subtitle: str = "") -> Figure:
    """A 16:9 slide of one result: its pictures in rows (a flat list is one row; rows longer than
    CARD_ROW_LENGTH wrap), each sized by its aspect, the model, the citation, and the link with its QR
    code, in large high-contrast type. Write it with `save_card` (PNG 1920 x 1080, PDF or SVG)."""
    rows = [list(row) for row in (panels if panels and isinstance(panels[0], list) else [panels])]
    rows = [part for row in rows for part in _wrapped(row)]
    fig = Figure(figsize=CARD_SIZE, facecolor="white")
    fig.text(0.03, 0.95, title, fontsize=min(34, 34 * CARD_TITLE_LENGTH / len(title)), weight="bold", color="black",
             va="center")
    if subtitle:
        fig.text(0.03, 0.905, subtitle, fontsize=17, color="black", va="center")
    left, bottom, width, height = (value * size for value, size in zip(CARD_PICTURES, CARD_SIZE * 2))  # inches
    caption_size = 18 if len(rows) == 1 else 14 if len(rows) == 2 else 11
    caption = max(panel.caption.count("\n") + 1 for row in rows for panel in row) * caption_size * 1.5 / 72
    gap = 0.2
    # each row as tall as fills the width, all shrunk together until they fit the height
    heights = [(width - gap * (len(row) - 1)) / sum(panel.image.width / panel.image.height for panel in row) for row in rows]
    scale = min(1.0, (height - caption * len(rows)) / sum(heights))
    y = bottom + height - (height - sum(heights) * scale - caption * len(rows)) / 2  # the block centred
    for row, row_height in zip(rows, heights):
        picture_height = row_height * scale
        widths = [picture_height * panel.image.width / panel.image.height for panel in row]
        # each picture in a slot as wide as its caption needs (roughly 0.55 em per character)
        slots = [max(picture_width, max(map(len, panel.caption.split("\n"))) * caption_size * 0.55 / 72)
                 for panel, picture_width in zip(row, widths)]
        x = left + (width - sum(slots) - gap * (len(row) - 1)) / 2
        y -= caption + picture_height
        for panel, picture_width, slot in zip(row, widths, slots):
            position = (x + (slot - picture_width) / 2) / CARD_SIZE[0], y / CARD_SIZE[1]
            axis = fig.add_axes((*position, picture_width / CARD_SIZE[0], picture_height / CARD_SIZE[1]))
            axis.imshow(panel.image)
            draw_boxes(axis, panel.boxes, fontsize=max(8, caption_size - 6))
            axis.set_title(panel.caption, fontsize=caption_size, color="black", pad=6)
            axis.axis("off")
            x += slot + gap
    fig.text(0.03, 0.15, model, fontsize=18, color="black")
    fig.text(0.03, 0.095, CITATION, fontsize=15, color="#222222")
    if link:
        fig.text(0.03, 0.04, link, fontsize=13 if len(link) < 150 else 9, color="#0b3d91", family="monospace")
        code = fig.add_axes((0.86, 0.01, 0.13, 0.2))
        code.imshow(qr_code(link), interpolation="nearest")
        code.axis("off")
    return fig


def _wrapped(row: list[CardPanel]) -> list[list[CardPanel]]:
    """A row split into rows of equal length, none longer than CARD_ROW_LENGTH."""
    parts = -(-len(row) // CARD_ROW_LENGTH)
    length = -(-len(row) // parts)
    return [row[start:start + length] for start in range(0, len(row), length)]


def stage_panels(representations: Representations, reconstructions: dict[Source, list[torch.Tensor]],
                 index: int = 0) -> list[CardPanel]:
    """Image `index` as the detector saw it with its detections, then each reconstruction with its PSNR and SSIM."""
    target = input_image(representations, index)
    (height, width), (original_height, original_width) = representations.content_sizes[index], representations.original_sizes[index]
    sx, sy = width / original_width, height / original_height
    detections = [replace(d, box=(d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy))
                  for d in representations.detections[index]]
    panels = [CardPanel(to_pil(target), "input and detections", labelled_boxes(detections))]
    for source, images in reconstructions.items():
        quality = image_quality(images[index], target)
        panels.append(CardPanel(to_pil(images[index]),
                                f"from {source.label}\nPSNR {quality['psnr']:.1f} dB  SSIM {quality['ssim']:.2f}"))
    return panels


def reconstruction_grid(representations: Representations, reconstructions: dict[Source, list[torch.Tensor]]) -> Figure:
    """A grid: the input with its detections, then each reconstruction with its PSNR and SSIM."""
    panels = stage_panels(representations, reconstructions)
    columns = min(len(panels), 5)
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(3.2 * columns, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for axis, panel in zip(axes, panels):
        axis.imshow(panel.image)
        draw_boxes(axis, panel.boxes)
        axis.set_title(panel.caption, fontsize=9)
    for axis in axes:
        axis.axis("off")
    return fig


def attention_overlay(representations: Representations, index: int, attention_map: torch.Tensor,
                      opacity: float = 0.6, colour_map: str = "inferno") -> Image.Image:
    """An h x w attention map upsampled (bilinear) onto the detector's view of image `index`, scaled to its
    maximum and blended over the image (working resolution, padding cropped off)."""
    view = input_image(representations, index)
    height, width = view.shape[-2:]
    canvas = torch.nn.functional.interpolate(attention_map[None, None].float().cpu(), size=representations.pixels.shape[-2:],
                                             mode="bilinear", align_corners=False)[0, 0, :height, :width]
    return heat_overlay(view, canvas, opacity, colour_map)


def heat_overlay(view: torch.Tensor, heat_map: torch.Tensor, opacity: float = 0.6,
                 colour_map: str = "inferno") -> Image.Image:
    """An h x w map upsampled (bilinear) to a 3 x H x W image in [0, 1], scaled to its maximum and blended over it."""
    canvas = torch.nn.functional.interpolate(heat_map[None, None].float().cpu(), size=view.shape[-2:], mode="bilinear",
                                             align_corners=False)[0, 0]
    heat = colormaps[colour_map]((canvas / canvas.max().clamp(min=1e-12)).numpy())[..., :3]
    blended = (1 - opacity) * view.permute(1, 2, 0).float().cpu().numpy() + opacity * heat
    return Image.fromarray((blended.clip(0, 1) * 255).round().astype(np.uint8))


def layer_skip_chart(layer_skip: dict) -> Figure:
    """Bars: the change of the detector's AP when each encoder or decoder layer is skipped."""
    names = list(layer_skip["skipped"])
    changes = [layer_skip["skipped"][name]["AP_change"] for name in names]
    figure = Figure(figsize=(1.0 + 0.7 * len(names), 3.4), layout="constrained")
    axis = figure.subplots()
    colours = ["tab:blue" if name.startswith("encoder") else "tab:orange" for name in names]
    bars = axis.bar(names, changes, color=colours)
    axis.bar_label(bars, labels=[f"{change:+.3f}" for change in changes], fontsize=8)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylabel("AP change (skipped - unmodified)")
    axis.set_title(f"AP with one layer skipped (unmodified AP {layer_skip['unmodified']['AP']:.3f})", fontsize=10)
    axis.tick_params(axis="x", labelrotation=45)
    return figure
