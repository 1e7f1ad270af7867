"""The headroom study: are the Shapes inverters the limit, or is the detector?

Every stage's reconstruction quality on one held-out set (PSNR, SSIM, objects found again, the
detector's AP on the reconstructions) against the inverse modules' capacity (sizes S, M, L, every
module at least 4x the parameters of the size below; M is the shipped architecture) and training
length (625, 2,500, 10,000 steps: 4x apart), for pixel MSE and for pixel MSE plus the feature-matching
term through the detector's own backbone. Each point is one training run of the shipped recipe
(batch 16, seed 0, the default learning rates, warm-up 3% of the steps, cosine decay to zero) in
WORK/<point>, resumable; a finished point's result is a small JSON in OUT/points/. The bundled Shapes DETR's
inverters are a point too: their inverters.json names it (`shipped_point`), `ship` makes a finished point the bundled
one; the first, M-10000-mse, was trained before the study by the same recipe and is evaluated where it lies. A refined
point (M-40000-feature+b16000) goes on from a finished one, training its inverse backbone alone on 80,000 images, the
training set's and three fresh streams': more steps and more data for the module the backbone stage rests on.

A stage is converged at a point when 4x the capacity and 4x the steps each gain less than
`CONVERGED_PSNR_GAIN` dB and less than `CONVERGED_FOUND_GAIN` objects found again; the plateau is
estimated from the last 4x step in each direction (`plateau`).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from ..core.checkpoints import WEIGHTS_FILE, read_config
from ..core.errors import UserFacingError
from ..core.inverters import InverterConfig, InverterStack
from ..core.registry import find_spec, load_detector
from ..core.stages import STAGES
from ..experiments.certificate import (
    CONVERGED_FOUND_GAIN,
    CONVERGED_PSNR_GAIN,
    METRICS,
    STEP,
    certificate_table,
    converged,
    stage_certificate,
    stage_scores,
    step_gain,
)
from ..experiments.evaluate import evaluate
from ..figures import headroom_plot
from ..training.cost import training_step_flops
from ..training.objectives import DEFAULT_FEATURE_WEIGHT
from ..training.recipe import warmup_steps
from ..training.trainer import TrainingConfig, train
from .bundle import bundle, bundled_folder
from .world import export_coco, generate_sample, sample_rng

SIZES: dict[str, dict] = {  # InverterConfig overrides; every module has at least 4x the parameters of the size before
    "S": {"backbone_widths": [44, 24, 12, 8], "encoder_layers": 1, "decoder_layers": 1, "ffn_dim": 192,
          "prediction_hidden": [200, 100]},
    "M": {},  # the shipped architecture
    "L": {"backbone_widths": [320, 160, 80, 40], "encoder_layers": 6, "decoder_layers": 6, "ffn_dim": 1600,
          "prediction_hidden": [1100, 550]},
}
LENGTHS = (625, 2500, 10_000)  # training steps, 4x apart
FEATURE_WEIGHT = DEFAULT_FEATURE_WEIGHT  # calibrated here, on the Shapes DETR (see its definition)
ADVERSARIAL_WEIGHT = 0.01  # pix2pix's ratio of the adversarial term to the reconstruction term (1 : 100)
OBJECTIVES = {  # the trainer's settings of each objective: the paper's pixel MSE, + the feature term, + a patch critic
    "mse": {"feature_weight": 0.0}, "feature": {"feature_weight": FEATURE_WEIGHT},
    "adversarial": {"feature_weight": FEATURE_WEIGHT, "adversarial_weight": ADVERSARIAL_WEIGHT}}
TRAINING_FIT_IMAGES = 500  # a point also reconstructs this many of its own training images: does it overfit?
JUDGES = ("shapes-conditional", "shapes-deformable")  # bundled detectors trained apart, each with its own ResNet: they
# score the reconstructions too, since the feature term matches the DETR's own features and may please it alone
DATA = {  # folder: (images, stream seed), as the shipped inverters were trained and evaluated
    "runs/data/shapes-train": (20_000, 10), "runs/data/shapes-val": (500, 11), "runs/data/shapes-heldout": (500, 1)}
TRAIN, VAL, HELDOUT = DATA
FRESH_STREAMS = (12, 13, 14)  # a refinement trains on TRAIN's images and 20,000 of each of these streams'
REFINE_TRAIN = "runs/data/shapes-train-80k"  # hard links to those 80,000 images (a folder of images, no annotations)
REFINE_LEARNING_RATE = 5e-4  # a refinement's inverse backbone: a quarter of the default, a warm restart
LEDGER_FILE = "cpu_seconds.json"  # in a run folder: the CPU seconds of each session that trained it
LEDGER_EVERY = 30.0  # seconds between ledger writes


@dataclass(frozen=True)
class Point:
    """One run of the study: an inverter size, a training length and an objective; a refined point then trains its
    inverse backbone alone `refine` steps more, on 80,000 images (REFINE_TRAIN)."""

    size: str
    steps: int
    objective: str = "mse"
    refine: int = 0

    @property
    def name(self) -> str:
        return f"{self.size}-{self.steps}-{self.objective}" + (f"+b{self.refine}" if self.refine else "")

    @property
    def base(self) -> Point:
        """The point a refined one starts from (itself for any other)."""
        return Point(self.size, self.steps, self.objective)

    @classmethod
    def parse(cls, name: str) -> Point:
        """The point named like `M-2500-feature` (refined: `M-40000-feature+b16000`); a clear error for anything else."""
        head, refined, refine = name.partition("+b")
        size, _, rest = head.partition("-")
        steps, _, objective = rest.partition("-")
        if (size not in SIZES or not steps.isdigit() or objective not in OBJECTIVES
                or refined and not (refine.isdigit() and int(refine))):
            raise UserFacingError(f"{name!r} is not a study point: write SIZE-STEPS-OBJECTIVE, SIZE one of {', '.join(SIZES)}, "
                                  f"OBJECTIVE one of {', '.join(OBJECTIVES)}, e.g. M-2500-mse; refined, +bSTEPS after it "
                                  "(the inverse backbone's further steps, e.g. M-40000-feature+b16000).")
        return cls(size, int(steps), objective, int(refine or 0))


def is_point(name: str) -> bool:
    """Whether a name is a study point's (a run folder or result beside them may be anything else)."""
    try:
        Point.parse(name)
    except UserFacingError:
        return False
    return True


SHIPPED_MODEL = "shapes"  # the bundled model whose inverters the study certifies; its inverters.json names their point


def shipped_folder() -> Path:
    """Where the bundled Shapes DETR's inverters lie (space_config.yaml's folder)."""
    return bundled_folder(SHIPPED_MODEL)


def shipped_point() -> Point:
    """The study point the bundled inverters are: their checkpoint's `notes.headroom_point`, written by `ship`."""
    folder = shipped_folder()
    name = read_config(folder)["notes"].get("headroom_point")
    if name is None:
        raise UserFacingError(f"{folder / 'inverters.json'} names no study point (notes.headroom_point): ship a finished "
                              "point with `python -m inversion.shapes headroom ship --points POINT`.")
    return Point.parse(name)


# The order the runs are taken in: the cheapest first, so that every session finishes points.
GRID: tuple[Point, ...] = (
    Point("S", 625), Point("M", 625), Point("M", 625, "feature"), Point("S", 2500), Point("M", 2500),
    Point("M", 2500, "feature"), Point("L", 625), Point("S", 10_000), Point("M", 10_000), Point("L", 2500),
    Point("M", 10_000, "feature"), Point("L", 10_000),
)


def point_config(point: Point, work: str | Path, data: dict[str, str] | None = None,
                 start: str | None = None) -> TrainingConfig:
    """The training run of a point: the shipped recipe at the point's size, length and objective; a refined point's,
    the inverse backbone alone from the stack `start` (its base point's checkpoint) on data["refine"] (REFINE_TRAIN),
    at REFINE_LEARNING_RATE with the same warm-up share and cosine decay, validated four times."""
    data = {"train": TRAIN, "val": VAL, "refine": REFINE_TRAIN, **(data or {})}
    if point.refine:
        return replace(point_config(point.base, work, data), data=data["refine"], out=str(Path(work) / point.name),
                       init=start, stages=("backbone",), steps=point.refine, warmup_steps=warmup_steps(point.refine),
                       val_every=max(1, point.refine // 4), save_every=min(500, point.refine),
                       learning_rates={"backbone": REFINE_LEARNING_RATE})
    return TrainingConfig(
        data=data["train"], val_data=data["val"], out=str(Path(work) / point.name), model="shapes",
        objective="modular", **OBJECTIVES[point.objective], steps=point.steps, batch_size=16,
        warmup_steps=warmup_steps(point.steps), val_every=point.steps, val_images=128,
        save_every=min(500, point.steps), log_every=50, workers=0, seed=0, architecture=dict(SIZES[point.size]))


def parameters(size: str) -> dict[str, int]:
    """Parameters of each inverse module at a size."""
    detector = load_detector(find_spec("shapes"))
    stack = InverterStack(InverterConfig.for_detector(detector, **SIZES[size]))
    return {stage: sum(p.numel() for p in stack.module(stage).parameters()) for stage in STAGES}


def training_step_gflops(size: str, objective: str, batch_size: int = 16) -> dict[str, float]:
    """FLOPs of one training step at a size and objective, in GFLOPs (load-independent, unlike seconds): the frozen
    detector's capture of the batch, and the inverse modules' forward and backward (through the detector's backbone
    for the feature term), counted on two Shapes images and scaled to the batch."""
    detector = load_detector(find_spec("shapes"))
    images = [generate_sample(sample_rng(10, index))[0] for index in range(2)]
    stack = InverterStack(InverterConfig.for_detector(detector, **SIZES[size]))
    capture, inverses = training_step_flops(detector, images, stack, **OBJECTIVES[objective])
    scale = batch_size / len(images) / 1e9
    return {"detector_capture": capture * scale, "inverse_modules": inverses * scale}


def ensure_data(folders: dict[str, tuple[int, int]] = DATA) -> None:
    """Export any of the study's Shapes sets that is not on disk yet (the generator is deterministic)."""
    for folder, (count, seed) in folders.items():
        if not (Path(folder) / "annotations.json").is_file():
            export_coco(folder, count, seed)


def ensure_refine_data(folder: str | Path = REFINE_TRAIN) -> None:
    """The refinements' 80,000 images, if not on disk yet: TRAIN's and 20,000 of each fresh stream (exported beside
    it), hard-linked into FOLDER/stream<seed>/."""
    count, train_seed = DATA[TRAIN]
    streams = {train_seed: Path(TRAIN), **{seed: Path(TRAIN).with_name(f"shapes-stream{seed}") for seed in FRESH_STREAMS}}
    ensure_data({str(source): (count, seed) for seed, source in streams.items()})
    for seed, source in streams.items():
        target = Path(folder) / f"stream{seed}"
        if not target.is_dir():
            partial = target.with_name(f".{target.name}.partial")  # a killed link run's leftovers are redone
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(source / "images", partial, copy_function=os.link)
            partial.replace(target)


def saved_step(folder: str | Path) -> int:
    """The step a run folder's training state reached (0: none saved)."""
    state = Path(folder) / "training_state.json"
    return json.loads(state.read_text())["step"] if state.is_file() else 0


class CpuLedger:
    """Books this process's CPU seconds against a run folder while it trains, every `LEDGER_EVERY` seconds and at
    the end, one entry per session, so that the study's CPU cost survives a killed run."""

    def __init__(self, folder: Path, start_step: int, threads: int = 1):
        self.path = folder / LEDGER_FILE
        self.entries = json.loads(self.path.read_text()) if self.path.is_file() else []
        self.entry = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "from_step": start_step,
                      "threads": threads, "cpu_seconds": 0.0}
        self.entries.append(self.entry)
        self.begin = time.process_time()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._keep, daemon=True)

    def _write(self) -> None:
        self.entry["cpu_seconds"] = round(time.process_time() - self.begin, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.entries, indent=1))

    def _keep(self) -> None:
        while not self.stopped.wait(LEDGER_EVERY):
            self._write()

    def __enter__(self) -> CpuLedger:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self._write()


def cpu_seconds(folder: str | Path) -> float:
    """All the CPU seconds booked against a run folder."""
    path = Path(folder) / LEDGER_FILE
    return sum(entry["cpu_seconds"] for entry in json.loads(path.read_text())) if path.is_file() else 0.0


def train_point(config: TrainingConfig, threads: int = 1) -> None:
    """Train a point's run to its last step on `threads` CPU threads: continue from its saved state, or start afresh
    (a folder without a saved state holds nothing worth keeping), or nothing when it is finished."""
    folder = Path(config.out)
    step = saved_step(folder)
    if step >= config.steps:
        return
    if not step and folder.exists():
        ledger = (folder / LEDGER_FILE).read_text() if (folder / LEDGER_FILE).is_file() else None
        shutil.rmtree(folder)
        if ledger:  # the CPU seconds a killed start cost still count
            folder.mkdir(parents=True)
            (folder / LEDGER_FILE).write_text(ledger)
    torch.set_num_threads(threads)
    with CpuLedger(folder, step, threads):
        train(TrainingConfig(**{**asdict(config), "stages": tuple(config.stages), "resume": bool(step)}))


def point_result(point: Point, config: TrainingConfig, checkpoint: str, heldout: str, training: str,
                 work: str | Path, max_images: int | None = None) -> dict:
    """Evaluate a finished point's checkpoint on the held-out set, and on the first of its own training images (those
    of `training`, which a refinement's images include); the point's record."""
    started = time.process_time()
    evaluation = evaluate(checkpoint, heldout, str(Path(work) / "evaluations" / point.name), sections=("stages",),
                          max_images=max_images, layers=False, judges=JUDGES)
    fit = evaluate(checkpoint, training, str(Path(work) / "evaluations" / f"{point.name}-training-images"),
                   sections=("stages",), max_images=min(TRAINING_FIT_IMAGES, max_images or TRAINING_FIT_IMAGES), layers=False)
    return {
        "point": point.name, **asdict(point), "checkpoint": checkpoint,
        "parameters": parameters(point.size),
        "train_config": {key: value for key, value in asdict(config).items() if key not in ("out", "resume")},
        "heldout": {"data": heldout, "images": evaluation["images"], "threshold": evaluation["threshold"]},
        "detector_ap_clean": evaluation["detector"]["AP"],
        **stage_scores(evaluation),
        "training_images": {"images": fit["images"], "stages": stage_scores(fit)["stages"]},
        "cpu_seconds": {"training": cpu_seconds(checkpoint), "evaluation": round(time.process_time() - started, 1)},
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_atomically(path: Path, text: str) -> None:
    """Write a file whole or not at all (two queues of the study may read what the other writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def run_points(points: list[Point], out: str | Path, work: str | Path, data: dict[str, str] | None = None,
               max_images: int | None = None, threads: int = 1) -> Iterator[Path]:
    """Train (or continue) each point in turn on `threads` CPU threads (one: a queue per core), evaluate it when
    finished and write OUT/points/<point>.json, yielding its path; a point whose JSON exists is skipped. The shipped
    checkpoint stands for its point. A refined point starts from its base's checkpoint (the bundled stack, where the base
    is the shipped point: its run folder may be gone with an earlier machine): the base must be finished."""
    study_data = {"train": TRAIN, "val": VAL, "heldout": HELDOUT, "refine": REFINE_TRAIN}
    data = {**study_data, **(data or {})}
    own_data = data == study_data  # the study's sets are exported (and linked) when missing; others are the caller's
    if own_data:
        ensure_data()
    shipped = shipped_point()
    for point in points:
        path = Path(out) / "points" / f"{point.name}.json"
        if path.is_file():
            continue
        start = None
        if point.refine:
            base = load_points(out).get(point.base.name)
            if base is None:
                raise UserFacingError(f"{point.name} refines {point.base.name}, which is not finished: run it first "
                                      f"(`python -m inversion.shapes headroom run --points {point.base.name}`).")
            if own_data:
                ensure_refine_data()
            start = str(shipped_folder()) if point.base == shipped else base["checkpoint"]
        config = point_config(point, work, data, start)
        if point == shipped:  # trained before the study (M-10000-mse): evaluated where it is
            checkpoint = str(shipped_folder())
        else:
            train_point(config, threads)
            checkpoint = config.out
        torch.set_num_threads(1)
        result = point_result(point, config, checkpoint, data["heldout"], data["train"], work, max_images)
        write_atomically(path, json.dumps(result, indent=1, allow_nan=False) + "\n")
        yield path


def load_points(out: str | Path) -> dict[str, dict]:
    """Every finished point's record in OUT/points, by point name."""
    return {path.stem: json.loads(path.read_text()) for path in sorted((Path(out) / "points").glob("*.json"))}


def curve_value(points: dict[str, dict], size: str, steps: int, objective: str, stage: str, metric: str) -> float | None:
    """One metric of one stage at one point (None: not finished)."""
    record = points.get(Point(size, steps, objective).name)
    return None if record is None else record["stages"][stage][metric]


def neighbours(points: dict[str, dict], point: Point) -> tuple[dict[str, tuple[str, dict] | None], list[tuple[str, dict]]]:
    """The finished points 4x beyond `point` (by direction: the next size up, 4x the steps; None where not finished)
    and those 4x below it, with their records. A refined point's steps are its refinement's (the inverse backbone's
    further steps, from the same base), and its base is below it too (a step smaller than 4x, so a gain above the
    rule's bar from it counts all the more)."""
    sizes = list(SIZES)
    index = sizes.index(point.size)

    def finished(size: str | None, ratio: float = 1.0) -> tuple[str, dict] | None:
        steps, refine = (point.steps, int(point.refine * ratio)) if point.refine else (int(point.steps * ratio), 0)
        name = None if size is None or (point.refine and not refine) else Point(size, steps, point.objective, refine).name
        return (name, points[name]) if name in points else None

    beyond = {"capacity": finished(sizes[index + 1] if index + 1 < len(sizes) else None),
              "steps": finished(point.size, STEP)}
    base = (point.base.name, points[point.base.name]) if point.refine and point.base.name in points else None
    below = [neighbour for neighbour in (finished(sizes[index - 1] if index else None),
                                         finished(point.size, 1 / STEP), base) if neighbour]
    return beyond, below


def gains(points: dict[str, dict], point: Point, stage: str) -> dict:
    """What 4x the capacity and 4x the steps add to a finished point, in PSNR and objects found again (None: not
    measured)."""
    beyond, _ = neighbours(points, point)
    here = (point.name, points[point.name])
    return {direction: {metric: None if neighbour is None else step_gain(here, neighbour, stage)[metric] for metric in METRICS}
            for direction, neighbour in beyond.items()}


def direction_headroom(values: list[float]) -> dict:
    """From a metric's values at 4x steps along one direction (None where not measured): the last 4x step's gain and,
    where the gains shrink (ratio r of the last to the one before, 0 <= r < 1), the geometric rest r/(1 - r) x the last
    gain that all further 4x steps would add; None where the curve does not bend yet or is not measured."""
    ends = [index for index in range(1, len(values)) if values[index] is not None and values[index - 1] is not None]
    if not ends:  # no two neighbouring (4x apart) values measured
        return {"last_gain": None, "rest": None}
    end = ends[-1]
    last = values[end] - values[end - 1]
    rest = None
    if end >= 2 and values[end - 2] is not None:
        before = values[end - 1] - values[end - 2]
        ratio = last / before if before > 0 else None
        if ratio is not None and 0 <= ratio < 1:
            rest = last * ratio / (1 - ratio)
        elif last <= 0:
            rest = 0.0
    return {"last_gain": last, "rest": rest}


def measured_lengths(points: dict[str, dict]) -> tuple[int, ...]:
    """The grid's lengths, continued by every further 4x step that some finished point reached (M-40000 beyond
    10,000), so that the curves and the plateau read them."""
    lengths = list(LENGTHS)
    while any(record["steps"] == lengths[-1] * STEP for record in points.values()):
        lengths.append(lengths[-1] * STEP)
    return tuple(lengths)


def plateau(points: dict[str, dict], objective: str, stage: str, metric: str) -> dict:
    """The plateau of one stage's metric, estimated from the last 4x step in each direction: along capacity at the
    longest length with two sizes finished, along steps at the size whose curve reaches furthest (of those with two
    lengths finished; the larger size on a tie); the estimate is
    the best measured value plus both directions' geometric rests (None when either is unknown)."""
    lengths = measured_lengths(points)
    grid = {(size, steps): curve_value(points, size, steps, objective, stage, metric) for size in SIZES for steps in lengths}
    along_capacity = next(({"at_steps": steps, **direction_headroom([grid[(size, steps)] for size in SIZES])}
                           for steps in reversed(lengths) if sum(grid[(s, steps)] is not None for s in SIZES) >= 2), None)
    curves = [size for size in SIZES if sum(grid[(size, n)] is not None for n in lengths) >= 2]
    longest = max(curves, key=lambda size: (max(n for n in lengths if grid[(size, n)] is not None), list(SIZES).index(size)),
                  default=None)
    along_steps = None if longest is None else {
        "at_size": longest, **direction_headroom([grid[(longest, steps)] for steps in lengths])}
    measured = [value for value in grid.values() if value is not None]
    best = max(measured) if measured else None
    rests = [None if d is None else d["rest"] for d in (along_capacity, along_steps)]
    estimate = None if best is None or None in rests else best + sum(rests)
    return {"best": best, "capacity": along_capacity, "steps": along_steps, "estimate": estimate}


def shipped_certificate(points: dict[str, dict], stage: str, shipped: Point) -> dict | None:
    """The shipped inverters' certificate for one stage (they are the point `shipped`), from the finished points 4x
    beyond and below it (`certificate.stage_certificate`); None if the point is not evaluated."""
    if shipped.name not in points:
        return None
    return stage_certificate((shipped.name, points[shipped.name]), stage, *neighbours(points, shipped))


def study(points: dict[str, dict], shipped: Point) -> dict:
    """The analysis of the finished points: per objective and stage, each point's gains and convergence, the best point
    and its margins over the baselines, the plateau of PSNR and of objects found again, and the certificate of the
    shipped inverters (the point `shipped`)."""
    baselines = next(iter(points.values()))["baselines"] if points else {}
    result: dict = {"rule": {"psnr_gain_below": CONVERGED_PSNR_GAIN, "objects_found_gain_below": CONVERGED_FOUND_GAIN,
                             "step": STEP}, "baselines": baselines, "objectives": {}}
    for objective in OBJECTIVES:
        mine = {name: record for name, record in points.items() if record["objective"] == objective}
        if not mine:
            continue
        by_stage = {}
        for stage in STAGES:
            verdicts = {name: {"gains": gains(points, Point.parse(name), stage)} for name in mine}
            for verdict in verdicts.values():
                verdict["converged"] = converged(verdict["gains"])
            best = max(mine, key=lambda name: mine[name]["stages"][stage]["psnr"])
            by_stage[stage] = {
                "points": verdicts,
                "converged_at": sorted(name for name, verdict in verdicts.items() if verdict["converged"]),
                "best": best,
                "margin_over_baselines_db": {label: mine[best]["stages"][stage]["psnr"] - values["psnr"]
                                             for label, values in baselines.items()},
                "plateau": {metric: plateau(points, objective, stage, metric) for metric in METRICS},
            }
        result["objectives"][objective] = by_stage
    result["shipped"] = {stage: shipped_certificate(points, stage, shipped) for stage in STAGES}
    result["cpu_hours"] = sum(sum(record["cpu_seconds"].values()) for record in points.values()) / 3600
    return result


def study_order(point: Point) -> tuple:
    """Points by objective, then size, then length: the order of the study's tables."""
    return list(OBJECTIVES).index(point.objective), list(SIZES).index(point.size), point.steps, point.refine


def in_study_order(points: dict[str, dict]) -> list[dict]:
    """The finished points' records in `study_order`."""
    return sorted(points.values(), key=lambda record: study_order(Point.parse(record["point"])))


def table(points: dict[str, dict]) -> str:
    """The finished points as a markdown table, one row per point and stage, and the baselines."""
    lines = ["| point | parameters (M) | stage | PSNR (dB) | SSIM | objects found again | detector AP |",
             "|---|---|---|---|---|---|---|"]
    for record in in_study_order(points):
        name = record["point"]
        millions = sum(record["parameters"].values()) / 1e6
        for stage in STAGES:
            scores = record["stages"][stage]
            found = "-" if scores["objects_found"] is None else f"{scores['objects_found']:.3f}"
            lines.append(f"| {name} | {millions:.2f} | {stage} | {scores['psnr']:.2f} | {scores['ssim']:.3f} | {found} "
                         f"| {scores['ap']:.3f} |")
    for label, values in (next(iter(points.values()))["baselines"] if points else {}).items():
        lines.append(f"| baseline: {label.replace('_', ' ')} | 0 | every stage | {values['psnr']:.2f} | {values['ssim']:.3f} | | |")
    return "\n".join(lines) + "\n"


def judged_table(points: dict[str, dict]) -> str:
    """Each judge's objects found again and AP on the reconstructions of the points it scored, as a markdown table."""
    judged = [record for record in in_study_order(points) if record.get("judged")]
    if not judged:
        return ""
    judges = list(judged[0]["judged"])
    lines = ["Judged by detectors the inverters never met (objects found again / AP on the reconstructions):", "",
             "| point | stage | " + " | ".join(judges) + " |", "|---|---|" + "---|" * len(judges)]
    for record in judged:
        for stage in STAGES:
            cells = [f"{record['judged'][judge][stage]['objects_found']:.3f} / {record['judged'][judge][stage]['ap']:.3f}"
                     for judge in judges]
            lines.append(f"| {record['point']} | {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fit_table(points: dict[str, dict]) -> str:
    """For the points that reconstructed their own training images too: PSNR and objects found again there against
    held out, per stage (a wide gap: the point overfits its training set)."""
    fitted = [record for record in in_study_order(points) if record.get("training_images")]
    if not fitted:
        return ""
    lines = ["On the point's own training images against held-out ones (PSNR in dB; objects found again):", "",
             "| point | stage | PSNR training / held-out | objects found again training / held-out |", "|---|---|---|---|"]
    for record in fitted:
        for stage in STAGES:
            mine, heldout = record["training_images"]["stages"][stage], record["stages"][stage]
            lines.append(f"| {record['point']} | {stage} | {mine['psnr']:.2f} / {heldout['psnr']:.2f} | "
                         f"{mine['objects_found']:.3f} / {heldout['objects_found']:.3f} |")
    return "\n".join(lines) + "\n"


def write_report(out: str | Path) -> dict:
    """Write OUT/results.json (the analysis), OUT/table.md and one plot per stage, OUT/<stage>.png, from OUT/points."""
    folder = Path(out)
    points = load_points(folder)
    if not points:
        raise UserFacingError(f"{folder / 'points'} holds no finished point: run `python -m inversion.shapes headroom run` first.")
    analysis = study(points, shipped_point())
    analysis["gflops_per_training_step"] = {f"{size}-{objective}": training_step_gflops(size, objective)
                                            for size in SIZES for objective in OBJECTIVES}
    write_atomically(folder / "results.json", json.dumps(analysis, indent=1, allow_nan=False) + "\n")
    label = f"Shipped inverters ({analysis['shipped']['backbone']['point']})" if analysis["shipped"]["backbone"] else None
    write_atomically(folder / "table.md", "\n".join(filter(None, (certificate_table(analysis["shipped"], label),
                                                                  table(points), judged_table(points), fit_table(points)))))
    for stage in STAGES:
        headroom_plot(points, stage, list(SIZES), measured_lengths(points)).savefig(folder / f"{stage}.png", dpi=110)
    return analysis


def ship(point: Point, out: str | Path, work: str | Path) -> Path:
    """Make a finished point's stack the bundled Shapes DETR's inverters: its weights, with `notes.headroom_point`
    naming the point, its training log and config. The stack it replaces is kept in WORK/<its point> (unless a run of
    that point lies there already), where its record now points, so that it can be shipped again."""
    records = load_points(out)
    if point.name not in records:
        raise UserFacingError(f"{point.name} is not a finished point of {out}: run it first "
                              f"(`python -m inversion.shapes headroom run --points {point.name}`).")
    before, folder = shipped_point(), shipped_folder()
    source = Path(records[point.name]["checkpoint"])
    if source.resolve() == folder.resolve():
        return folder
    kept = Path(work) / before.name
    if not (kept / WEIGHTS_FILE).is_file():
        shutil.copytree(folder, kept, dirs_exist_ok=True)
    bundle(SHIPPED_MODEL, source, folder, {"headroom_point": point.name})
    if before.name in records:
        record = {**records[before.name], "checkpoint": str(kept)}
        write_atomically(Path(out) / "points" / f"{before.name}.json", json.dumps(record, indent=1, allow_nan=False) + "\n")
    return folder


def status(out: str | Path, work: str | Path) -> list[str]:
    """One line per point, the grid's, the shipped one and any other with a result or a run folder (M-40000-mse):
    finished, in progress (the step saved), started (none saved yet), or not started."""
    shipped, lines = shipped_point(), []
    others = ({path.stem for path in Path(out).glob("points/*.json")} | {path.name for path in Path(work).glob("*-*-*")}
              | {shipped.name})
    for point in [*GRID, *sorted({Point.parse(name) for name in others if is_point(name)} - set(GRID), key=study_order)]:
        if (Path(out) / "points" / f"{point.name}.json").is_file():
            state = "finished"
        elif point == shipped:
            state = f"the shipped checkpoint ({shipped_folder()}): to evaluate"
        else:
            folder = Path(work) / point.name
            step = saved_step(folder)
            state = (f"saved at step {step} of {point.refine or point.steps}" if step else
                     "started, nothing saved yet" if folder.exists() else "not started")
        lines.append(f"{point.name}: {state}")
    return lines
