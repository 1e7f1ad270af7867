"""Colour reliance as a dial: detectors trained on Shapes worlds where different shares of the objects
wear their class's prototype colour, evaluated under the same colour perturbations on the same images.

    python -m inversion.shapes colour-dial --models shapes shapes40 \
        --heldout 80%=runs/data/shapes-heldout 40%=runs/data/shapes40-heldout --out checkpoints/shapes40/colour_dial

For every held-out set and every model: the evaluation harness's colour section (`evaluate(..., sections=("color",))`:
per class and perturbation the class's AP, how often the object is seen as another class, and the hue the
reconstructions give it); an evaluation already in WORK for the same model and images is used again.
Writes OUT/results.json, OUT/README.md (the side-by-side tables) and OUT/colour_dial.png.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.stages import STAGES
from ..experiments.evaluate import COLOUR_PERTURBATIONS, evaluate
from ..figures import colour_dial_plot

CLEAN = "clean"


def colour_dial(models: list[str], heldout: dict[str, str], out: str, work: str, max_images: int | None = None) -> dict:
    """Run the colour evaluation of every model on every held-out set (label -> COCO folder); write the results."""
    evaluations = []
    for data_label, data in heldout.items():
        for model in models:
            result = colour_evaluation(model, data, Path(work) / f"{model}-on-{Path(data).name}", max_images)
            evaluations.append({"model": model, "heldout": data_label, "data": data, "images": result["images"],
                                "detector": result["detector"], "color": result["color"]})
    results = {"models": models, "heldout": heldout, "evaluations": evaluations, "table": ap_table(evaluations)}
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    colour_dial_plot(results["table"]).savefig(folder / "colour_dial.png", dpi=110)
    (folder / "README.md").write_text(report(results))
    return results


def colour_evaluation(model: str, data: str, folder: Path, max_images: int | None) -> dict:
    """The colour section of `model` on `data`, or the one already in `folder` for the same model, data and
    number of images (delete the folder to evaluate again, e.g. after retraining the model)."""
    saved = folder / "results.json"
    if saved.is_file():
        result = json.loads(saved.read_text())
        if (result["model"], result["data"]) == (model, str(data)) and "color" in result and \
                (max_images is None or result["images"] == max_images):
            return result
    return evaluate(model, data, str(folder), max_images=max_images, sections=("color",))


def ap_table(evaluations: list[dict]) -> dict:
    """Class AP by column ("model on held-out set"), class (and "mean") and perturbation ("clean" first)."""
    table: dict = {}
    for evaluation in evaluations:
        column = f"{evaluation['model']} on {evaluation['heldout']}"
        classes = {name: {CLEAN: entry["clean_ap"], **{kind: entry["perturbations"][kind]["ap"] for kind in COLOUR_PERTURBATIONS}}
                   for name, entry in evaluation["color"].items()}
        classes["mean"] = {kind: sum(values[kind] for values in classes.values()) / len(classes) for kind in (CLEAN, *COLOUR_PERTURBATIONS)}
        table[column] = classes
    return table


def report(results: dict) -> str:
    """The side-by-side tables, in markdown."""
    table, evaluations = results["table"], results["evaluations"]
    columns = list(table)
    kinds = (CLEAN, *COLOUR_PERTURBATIONS)
    lines = ["# Colour reliance as a dial", "",
             "Each column is a detector evaluated on a held-out set (the label says which share of the objects "
             "wears its class's prototype colour there). Class AP, clean and under each perturbation (inside that "
             "class's instance masks; grey_image: the whole image grey, as in the paper).", "",
             "| detector on held-out set | images | AP (all classes, clean) |", "|---|---|---|"]
    lines += [f"| {column} | {e['images']} | {e['detector']['AP']:.3f} |" for column, e in zip(columns, evaluations)]
    lines += ["", "## Mean class AP over the four classes", "", "| perturbation | " + " | ".join(columns) + " |",
              "|---|" + "---|" * len(columns)]
    lines += [f"| {kind} | " + " | ".join(f"{table[c]['mean'][kind]:.3f}" for c in columns) + " |" for kind in kinds]
    for name in [n for n in table[columns[0]] if n != "mean"]:
        lines += ["", f"## {name}", "", "| perturbation | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        lines += [f"| {kind} | " + " | ".join(f"{table[c][name][kind]:.2f}" for c in columns) + " |" for kind in kinds]
    lines += ["", "## Seen as another class, and the reconstructed hue", "",
              "Share of the perturbed objects the detector finds with another class's label; hue distance (OpenCV "
              "units, 0..90) of the object reconstructed from the prediction stage to its class's prototype, and in "
              "brackets to the prototype of the class the detector saw.", "",
              "| class, perturbation | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    last = STAGES[-1]
    for name in evaluations[0]["color"]:
        for kind in COLOUR_PERTURBATIONS:
            cells = []
            for evaluation in evaluations:
                p = evaluation["color"][name]["perturbations"][kind]
                to_class = p.get("hue_distance_to_prototype", {}).get(last)  # no hue without inverters
                to_seen = p.get("hue_distance_to_predicted_prototype", {}).get(last)
                cells.append(f"{p['seen_as_other_class']:.2f}; {'-' if to_class is None else f'{to_class:.0f}'} "
                             f"({'-' if to_seen is None else f'{to_seen:.0f}'})")
            lines.append(f"| {name}, {kind} | " + " | ".join(cells) + " |")
    lines += ["", "![colour dial](colour_dial.png)", ""]
    return "\n".join(lines)
