"""Is an inverter stack the limit of what its reconstructions show? Its certificate, from evaluations of its
neighbours: the same recipe with 4x the inverse modules' capacity and with 4x the training steps (beyond it), or
with a quarter of either (below it).

A stage is converged when 4x the capacity and 4x the steps each gain less than `CONVERGED_PSNR_GAIN` dB and less
than `CONVERGED_FOUND_GAIN` objects found again: then what its reconstruction loses is the detector's, not the
inverse module's. The Shapes headroom study (inversion/shapes/headroom.py) applies the rule across its grid;
`python -m inversion certify` applies it to any detector's evaluations (DETR-R50's stacks trained on GPUs).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import UserFacingError
from ..core.stages import STAGES

CONVERGED_PSNR_GAIN = 0.3  # dB
CONVERGED_FOUND_GAIN = 0.02  # share of the objects found again
STEP = 4  # the ratio between a stack and its neighbours, in capacity and in training steps
DIRECTIONS = ("capacity", "steps")
METRICS = ("psnr", "objects_found")

Neighbour = tuple[str, dict]  # a stack's name and its scores (`stage_scores`)


def stage_scores(evaluation: dict) -> dict:
    """From a detector's evaluation (`evaluate`'s results): every stage's PSNR, SSIM, objects found again and detector
    AP, the baselines' PSNR and SSIM, and each judge's objects found again and AP per stage."""
    stages = evaluation["stages"]
    scores = {stage: {"psnr": stages["quality"][stage]["psnr"], "ssim": stages["quality"][stage]["ssim"],
                      "objects_found": stages["shape_preservation"][stage]["found"], "ap": stages["ap"][stage]["AP"]}
              for stage in STAGES}
    baselines = {label.removeprefix("baseline: "): {"psnr": metrics["psnr"], "ssim": metrics["ssim"]}
                 for label, metrics in stages["quality"].items() if label.startswith("baseline: ")}
    judged = {name: {stage: {"objects_found": judge["shape_preservation"][stage]["found"], "ap": judge["ap"][stage]["AP"]}
                     for stage in STAGES} for name, judge in stages.get("judged", {}).items()}
    return {"stages": scores, "baselines": baselines, "judged": judged}


def converged(step_gains: dict) -> bool | None:
    """The rule: 4x capacity and 4x steps each gain < 0.3 dB and < 0.02 objects found (None: not all measured)."""
    values = [step_gains[d][m] for d in DIRECTIONS for m in METRICS]
    if any(value is None for value in values):
        return None
    return all(step_gains[d]["psnr"] < CONVERGED_PSNR_GAIN and step_gains[d]["objects_found"] < CONVERGED_FOUND_GAIN
               for d in DIRECTIONS)


def step_gain(lower: Neighbour, upper: Neighbour, stage: str) -> dict:
    """What the 4x step from `lower` to `upper` gains at one stage."""
    (lower_name, lower_scores), (upper_name, upper_scores) = lower, upper
    low, high = lower_scores["stages"][stage], upper_scores["stages"][stage]
    return {"from": lower_name, "to": upper_name,
            **{metric: None if None in (high[metric], low[metric]) else high[metric] - low[metric] for metric in METRICS}}


def too_large(gain: dict | None) -> bool:
    """Whether a measured 4x step gains as much as the rule forbids, in PSNR or in objects found again."""
    return gain is not None and ((gain["psnr"] or 0.0) >= CONVERGED_PSNR_GAIN
                                 or (gain["objects_found"] or 0.0) >= CONVERGED_FOUND_GAIN)


def stage_certificate(stack: Neighbour, stage: str, beyond: dict[str, Neighbour | None], below: list[Neighbour]) -> dict:
    """One stage's certificate: the stack's scores, its margin over each baseline, and a verdict: 'converged' (4x the
    capacity and 4x the steps, both measured, each gain less than the rule allows), 'not converged' (a measured 4x
    step beyond it gains as much as the rule forbids), 'still improving' (none beyond does, and a 4x step up to it
    did), or 'undecided'; `evidence` is the 4x step that decided it (undecided: a measured 4x step up to it, which
    gained less than the rule's bar or lost), `why` the same in words. `beyond` maps each
    direction to its neighbour (None: not measured); `below` lists the neighbours a quarter the size or length."""
    gains_beyond = {direction: step_gain(stack, neighbour, stage) if neighbour else None
                    for direction, neighbour in beyond.items()}
    gains_below = [step_gain(neighbour, stack, stage) for neighbour in below]
    unmeasured = dict.fromkeys(METRICS)
    if converged({direction: gains_beyond.get(direction) or unmeasured for direction in DIRECTIONS}):
        verdict, evidence = "converged", None
    elif any(map(too_large, gains_beyond.values())):
        verdict, evidence = "not converged", next(filter(too_large, gains_beyond.values()))
    elif any(map(too_large, gains_below)):
        verdict, evidence = "still improving", next(filter(too_large, gains_below))
    else:
        verdict, evidence = "undecided", next(iter(gains_below), None)
    name, record = stack
    scores = record["stages"][stage]
    return {"point": name, "psnr": scores["psnr"], "ssim": scores["ssim"], "objects_found": scores["objects_found"],
            "verdict": verdict, "evidence": evidence, "why": evidence_text(evidence),
            "margin_over_baselines_db": {label: scores["psnr"] - values["psnr"] for label, values in record["baselines"].items()}}


def evidence_text(evidence: dict | None) -> str:
    """The 4x step behind a verdict, in words ('' for none)."""
    if evidence is None:
        return ""
    found = "" if evidence["objects_found"] is None else f", {evidence['objects_found']:+.3f} objects found again"
    return f"{evidence['from']} to {evidence['to']}: {evidence['psnr']:+.2f} dB{found}"


def certificate_table(certificates: dict[str, dict | None], label: str | None = None) -> str:
    """A stack's certificate as a markdown table, under `label` (default: its name): per stage, its scores, its
    margins over the baselines and whether it is converged by the rule, with the 4x step that says so."""
    name = next((certificate["point"] for certificate in certificates.values() if certificate), "not evaluated")
    lines = [f"{label or 'Inverters ' + name}, per stage: converged when {STEP}x the capacity and {STEP}x the steps each gain "
             f"< {CONVERGED_PSNR_GAIN} dB and < {CONVERGED_FOUND_GAIN} objects found again.", "",
             "| stage | PSNR (dB) | objects found again | over mean colour (dB) | over grid average (dB) | verdict | why |",
             "|---|---|---|---|---|---|---|"]
    for stage, certificate in certificates.items():
        if certificate is None:
            continue
        margins = certificate["margin_over_baselines_db"]
        lines.append(f"| {stage} | {certificate['psnr']:.2f} | {certificate['objects_found']:.3f} | "
                     f"{margins['mean_colour']:+.2f} | {margins['grid_average']:+.2f} | {certificate['verdict']} | "
                     f"{certificate['why']} |")
    return "\n".join(lines) + "\n"


def read_evaluation(folder: str | Path) -> Neighbour:
    """An evaluation folder's name and scores; a clear error for a folder that holds none, or a classifier's."""
    path = Path(folder) / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserFacingError(f"{path} cannot be read as an evaluation ({error}): pass the --out folder of "
                              "`python -m inversion evaluate`.") from error
    if "shape_preservation" not in results.get("stages", {}):
        raise UserFacingError(f"{path} holds no detector's stage evaluation (objects found again): certify reads the "
                              "stages section of a detector's evaluation.")
    return str(folder), {**stage_scores(results), "data": results["data"], "images": results["images"],
                         "threshold": results.get("threshold")}  # (not recorded by evaluations before it was)


def certify(stack: str | Path, more_capacity: str | Path | None = None, more_steps: str | Path | None = None,
            less_capacity: str | Path | None = None, fewer_steps: str | Path | None = None) -> dict[str, dict]:
    """The certificate of the stack evaluated in `stack`, per stage, from the evaluations of its neighbours (folders
    written by `evaluate` on the same images); at least one neighbour."""
    evaluated = read_evaluation(stack)
    others = {role: read_evaluation(folder) for role, folder in (("capacity", more_capacity), ("steps", more_steps),
                                                                 ("less capacity", less_capacity), ("fewer steps", fewer_steps))
              if folder is not None}
    if not others:
        raise UserFacingError("certify needs a neighbour: --more-capacity, --more-steps, --less-capacity or --fewer-steps.")
    for role, (name, scores) in others.items():
        if (scores["data"], scores["images"]) != (evaluated[1]["data"], evaluated[1]["images"]):
            raise UserFacingError(f"{name} ({role}) was evaluated on {scores['images']} images of {scores['data']}, "
                                  f"{evaluated[0]} on {evaluated[1]['images']} of {evaluated[1]['data']}: evaluate both "
                                  "on the same images.")
        if scores["threshold"] != evaluated[1]["threshold"]:
            raise UserFacingError(f"{name} ({role}) counted detections above {scores['threshold']}, {evaluated[0]} above "
                                  f"{evaluated[1]['threshold']}: objects found again compare only at one threshold "
                                  "(evaluate both as the same model, or both as checkpoint folders).")
    beyond = {direction: others.get(direction) for direction in DIRECTIONS}
    below = [others[role] for role in ("less capacity", "fewer steps") if role in others]
    return {stage: stage_certificate(evaluated, stage, beyond, below) for stage in STAGES}
