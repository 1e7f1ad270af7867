"""The headroom study: the convergence rule and the plateau on synthetic numbers, a point that resumes after it is
killed, and the report written from finished points."""

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from inversion.core.checkpoints import read_config, recorded_detector_folder
from inversion.core.errors import UserFacingError
from inversion.core.registry import find_spec, load_model
from inversion.experiments.certificate import certificate_table, stage_scores
from inversion.shapes import headroom
from inversion.shapes.headroom import LENGTHS, SIZES, Point
from inversion.shapes.world import export_coco
from inversion.training import trainer

STAGES = ("backbone", "encoder", "decoder", "prediction")
SHIPPED = Point("M", 10_000)  # the shipped point of the synthetic grids


def record(size: str, steps: int, psnr: float, found: float, objective: str = "mse") -> dict:
    """A finished point's record with the same numbers at every stage."""
    scores = {"psnr": psnr, "ssim": 0.5, "objects_found": found, "ap": 0.3}
    return {"point": Point(size, steps, objective).name, "size": size, "steps": steps, "objective": objective,
            "parameters": {stage: 1000 for stage in STAGES}, "stages": {stage: dict(scores) for stage in STAGES},
            "baselines": {"mean_colour": {"psnr": 19.0, "ssim": 0.6}, "grid_average": {"psnr": 24.0, "ssim": 0.7}},
            "cpu_seconds": {"training": 1800.0, "evaluation": 0.0}}


def grid(psnr, found) -> dict:
    """Records for the whole size x length grid from functions of (size index, length index)."""
    return {Point(size, steps).name: record(size, steps, psnr(i, j), found(i, j))
            for i, size in enumerate(SIZES) for j, steps in enumerate(LENGTHS)}


def test_sizes_and_lengths_are_at_least_4x_apart():
    assert all(later >= 4 * earlier for earlier, later in zip(LENGTHS, LENGTHS[1:]))
    counts = [headroom.parameters(size) for size in SIZES]
    for smaller, larger in zip(counts, counts[1:]):
        assert all(larger[stage] >= 4 * smaller[stage] for stage in STAGES), (smaller, larger)
    shipped = load_model("shapes").inverters
    assert counts[1] == {stage: sum(p.numel() for p in shipped.module(stage).parameters()) for stage in STAGES}


def test_a_point_converges_where_4x_capacity_and_4x_steps_stop_paying():
    # PSNR gains 2 dB then 0.2 dB per 4x in both directions; objects found gains .1 then .01.
    psnr_steps = (20.0, 22.0, 22.2)
    found_steps = (0.5, 0.6, 0.61)
    points = grid(lambda i, j: psnr_steps[i] + psnr_steps[j], lambda i, j: found_steps[i] + found_steps[j])
    result = headroom.study(points, SHIPPED)["objectives"]["mse"]["backbone"]
    assert result["converged_at"] == ["M-2500-mse"]  # the one point with both 4x neighbours measured and small gains
    verdicts = result["points"]
    assert verdicts["S-625-mse"]["converged"] is False and verdicts["L-10000-mse"]["converged"] is None
    assert verdicts["M-2500-mse"]["gains"]["capacity"]["psnr"] == pytest.approx(0.2)
    assert result["best"] == "L-10000-mse"
    assert result["margin_over_baselines_db"]["grid_average"] == pytest.approx(44.4 - 24.0)
    plateau = result["plateau"]["psnr"]
    # Each direction's gains shrink 10x per 4x step: the rest is 0.2 x 0.1 / 0.9 per direction.
    assert plateau["capacity"]["last_gain"] == pytest.approx(0.2) and plateau["capacity"]["rest"] == pytest.approx(0.2 / 9)
    assert plateau["estimate"] == pytest.approx(44.4 + 2 * 0.2 / 9)
    assert headroom.study(points, SHIPPED)["cpu_hours"] == pytest.approx(len(points) * 0.5)


def test_a_curve_that_does_not_bend_has_no_plateau_estimate():
    points = grid(lambda i, j: 20.0 + i + j, lambda i, j: 0.5)  # 1 dB per 4x, every time
    plateau = headroom.study(points, SHIPPED)["objectives"]["mse"]["encoder"]["plateau"]["psnr"]
    assert plateau["capacity"]["last_gain"] == pytest.approx(1.0) and plateau["capacity"]["rest"] is None
    assert plateau["estimate"] is None and plateau["best"] == pytest.approx(24.0)
    del points["L-10000-mse"], points["L-2500-mse"], points["L-625-mse"]
    partial = headroom.study(points, SHIPPED)["objectives"]["mse"]["encoder"]["plateau"]["psnr"]
    assert partial["steps"]["at_size"] == "M" and partial["capacity"]["at_steps"] == 10_000


def test_a_point_4x_beyond_the_grid_continues_its_curve():
    points = grid(lambda i, j: 20.0 + 2.0 * j, lambda i, j: 0.5)  # 2 dB per 4x steps at every size
    points["M-40000-mse"] = record("M", 40_000, 25.0, 0.5)  # then 1 dB: the curve bends
    points["M-5000-mse"] = record("M", 5_000, 30.0, 0.5)  # not a 4x step of the grid: read by no curve
    assert headroom.measured_lengths(points) == (*LENGTHS, 40_000)
    steps = headroom.study(points, SHIPPED)["objectives"]["mse"]["backbone"]["plateau"]["psnr"]["steps"]
    assert steps["at_size"] == "M" and steps["last_gain"] == pytest.approx(1.0) and steps["rest"] == pytest.approx(1.0)


def test_the_judges_scores_reach_the_record_and_their_own_columns():
    def section(found: float, ap: float) -> dict:
        return {"shape_preservation": {stage: {"found": found + i / 100} for i, stage in enumerate(STAGES)},
                "ap": {stage: {"AP": ap + i / 100} for i, stage in enumerate(STAGES)}}

    evaluation = {"stages": {"quality": {stage: {"psnr": 20.0, "ssim": 0.5} for stage in STAGES}, **section(0.9, 0.6),
                             "judged": {"shapes-conditional": section(0.5, 0.3), "shapes-deformable": section(0.2, 0.1)}}}
    scores = stage_scores(evaluation)
    assert scores["judged"]["shapes-deformable"]["decoder"] == {"objects_found": pytest.approx(0.22), "ap": pytest.approx(0.12)}
    assert scores["stages"]["decoder"]["objects_found"] == pytest.approx(0.92)
    point = {**record("M", 2500, 22.0, 0.9), **{"judged": scores["judged"]}}
    assert "| M-2500-mse | decoder | 0.520 / 0.320 | 0.220 / 0.120 |" in headroom.judged_table({"M-2500-mse": point})
    assert headroom.judged_table({"M-2500-mse": record("M", 2500, 22.0, 0.9)}) == ""  # not judged: no table


def test_the_fit_on_training_images_sits_beside_the_held_out_numbers():
    point = record("M", 2500, 22.0, 0.9)
    point["training_images"] = {"images": 500, "stages": copy.deepcopy(point["stages"])}
    point["training_images"]["stages"]["decoder"].update(psnr=25.0, objects_found=0.95)
    assert "| M-2500-mse | decoder | 25.00 / 22.00 | 0.950 / 0.900 |" in headroom.fit_table({"M-2500-mse": point})
    assert headroom.fit_table({"M-2500-mse": record("M", 2500, 22.0, 0.9)}) == ""


def test_point_names_parse_and_bad_ones_say_how_to_write_them():
    assert Point.parse("L-2500-feature") == Point("L", 2500, "feature")
    adversarial = headroom.point_config(Point.parse("M-2500-adversarial"), "work")
    assert (adversarial.feature_weight, adversarial.adversarial_weight) == (headroom.FEATURE_WEIGHT, headroom.ADVERSARIAL_WEIGHT)
    assert headroom.point_config(Point.parse("M-2500-mse"), "work").feature_weight == 0
    with pytest.raises(UserFacingError, match="SIZE-STEPS-OBJECTIVE"):
        Point.parse("XXL-2500-mse")


def test_a_refined_point_trains_its_inverse_backbone_alone_from_its_base_on_the_80000_images():
    refined = Point.parse("M-40000-feature+b16000")
    assert refined == Point("M", 40_000, "feature", 16_000) and refined.name == "M-40000-feature+b16000"
    assert refined.base == Point("M", 40_000, "feature")
    config = headroom.point_config(refined, "work", start="runs/headroom/M-40000-feature")
    assert (config.init, config.stages, config.steps, config.data) == (
        "runs/headroom/M-40000-feature", ("backbone",), 16_000, headroom.REFINE_TRAIN)
    assert (config.warmup_steps, config.learning_rates, config.out) == (480, {"backbone": 5e-4}, "work/M-40000-feature+b16000")
    assert config.feature_weight == headroom.FEATURE_WEIGHT and config.val_data == headroom.VAL
    for bad in ("M-40000-feature+b0", "M-40000-feature+bx", "M-40000-feature+16000"):
        with pytest.raises(UserFacingError, match=r"\+bSTEPS"):
            Point.parse(bad)


def test_a_refined_point_is_certified_by_what_its_refinement_gained_over_its_base():
    points = {name: record(size, steps, psnr, found, "feature") for name, size, steps, psnr, found in (
        ("M-10000-feature", "M", 10_000, 23.75, 0.905), ("M-40000-feature", "M", 40_000, 24.95, 0.916))}
    refined = Point("M", 40_000, "feature", 16_000)
    points[refined.name] = {**record("M", 40_000, 25.40, 0.92, "feature"), "point": refined.name, "refine": 16_000}
    certificate = headroom.study(points, refined)["shipped"]["backbone"]
    assert certificate["point"] == refined.name and certificate["psnr"] == pytest.approx(25.40)
    assert certificate["verdict"] == "still improving"
    assert (certificate["evidence"]["from"], certificate["evidence"]["psnr"]) == ("M-40000-feature", pytest.approx(0.45))
    assert "| M-40000-feature+b16000 | 0.00 | backbone | 25.40 |" in headroom.table(points)
    rows = [line.split(" | ")[0] for line in headroom.table(points).splitlines() if "| backbone |" in line]
    assert rows == ["| M-10000-feature", "| M-40000-feature", "| M-40000-feature+b16000"]
    longer = Point("M", 40_000, "feature", 64_000)  # 4x the refinement: the refined point's step beyond in length
    points[longer.name] = {**record("M", 40_000, 25.50, 0.92, "feature"), "point": longer.name, "refine": 64_000}
    beyond, _ = headroom.neighbours(points, refined)
    assert beyond["steps"][0] == longer.name and beyond["capacity"] is None
    assert headroom.gains(points, refined, "backbone")["steps"]["psnr"] == pytest.approx(0.10)
    _, below = headroom.neighbours(points, longer)
    assert [name for name, _ in below] == [refined.name, "M-40000-feature"]  # 4x below it, and its base


def test_the_refinement_images_are_the_training_set_and_the_fresh_streams_linked_together(tmp_path, monkeypatch):
    train = tmp_path / "shapes-train"
    monkeypatch.setattr(headroom, "TRAIN", str(train))
    monkeypatch.setattr(headroom, "DATA", {str(train): (3, 10)})
    monkeypatch.setattr(headroom, "FRESH_STREAMS", (12,))
    headroom.ensure_refine_data(tmp_path / "refine")
    assert sorted(path.relative_to(tmp_path / "refine").as_posix() for path in (tmp_path / "refine").rglob("*.png")) == [
        f"stream{seed}/00000{index}.png" for seed in (10, 12) for index in range(3)]
    assert (tmp_path / "refine" / "stream12" / "000001.png").read_bytes() == (
        tmp_path / "shapes-stream12" / "images" / "000001.png").read_bytes()
    assert (tmp_path / "refine" / "stream10" / "000002.png").stat().st_ino == (train / "images" / "000002.png").stat().st_ino
    assert (tmp_path / "refine" / "stream10" / "000000.png").read_bytes() != (
        tmp_path / "refine" / "stream12" / "000000.png").read_bytes()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("headroom-data")
    for name, (count, seed) in {"train": (16, 10), "val": (4, 11), "heldout": (6, 1)}.items():
        export_coco(folder / name, count, seed)
    return {name: str(folder / name) for name in ("train", "val", "heldout")}


class Killed(Exception):
    """Stands for the process being killed in the middle of a run."""


@pytest.mark.shapes
def test_a_killed_point_resumes_from_its_saved_step_and_a_finished_one_is_not_retrained(tmp_path, tiny_data, monkeypatch):
    point = Point("S", 6, "feature")
    config = headroom.point_config(point, tmp_path / "work", tiny_data)
    config.save_every, config.batch_size, config.val_images = 2, 4, 4
    step = trainer.training_step
    calls = []
    kill_after = [3]  # steps this session survives

    def counted(*args, **kwargs):
        calls.append(torch.get_num_threads())
        if kill_after and len(calls) > kill_after[0]:
            raise Killed
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer, "training_step", counted)
    with pytest.raises(Killed):
        headroom.train_point(config)
    assert headroom.saved_step(config.out) == 2
    calls.clear(), kill_after.clear()
    threads = torch.get_num_threads()
    try:
        headroom.train_point(config, threads=2)  # the session after, on two threads
    finally:
        torch.set_num_threads(threads)
    assert headroom.saved_step(config.out) == 6 and calls == [2] * 4  # steps 3 to 6, not 1 to 6
    steps = [json.loads(line)["step"] for line in (tmp_path / "work" / point.name / "metrics.jsonl").read_text().splitlines()]
    assert steps == [6, 6]  # one train log and one validation, both from the resumed session (log every 50)
    ledger = json.loads((tmp_path / "work" / point.name / headroom.LEDGER_FILE).read_text())
    assert [entry["from_step"] for entry in ledger] == [0, 2] and all(entry["cpu_seconds"] > 0 for entry in ledger)
    assert [entry["threads"] for entry in ledger] == [1, 2]
    notes = json.loads((tmp_path / "work" / point.name / "inverters.json").read_text())["notes"]
    assert notes["backbone_loss"] == {"pixel_mse": 1.0, "backbone_feature_relative_mse": headroom.FEATURE_WEIGHT,
                                      "patch_adversarial": 0.0}
    weights = tmp_path / "work" / point.name / "inverters.safetensors"
    before = weights.stat().st_mtime_ns
    calls.clear()
    headroom.train_point(config)
    assert weights.stat().st_mtime_ns == before and not calls


@pytest.mark.shapes
@pytest.mark.slow
def test_run_writes_a_point_and_the_report_reads_it(tmp_path, tiny_data):
    out = tmp_path / "out"
    written = list(headroom.run_points([Point("S", 2)], out, tmp_path / "work", tiny_data, max_images=6))
    assert [path.name for path in written] == ["S-2-mse.json"]
    point = json.loads(written[0].read_text())
    assert point["heldout"]["images"] == 6 and set(point["stages"]) == set(STAGES)
    assert point["heldout"]["threshold"] == 0.7  # a run folder's detector counts detections above DETR's default
    assert point["training_images"]["images"] == 6 and set(point["training_images"]["stages"]) == set(STAGES)
    assert set(point["baselines"]) == {"mean_colour", "grid_average"} and point["train_config"]["feature_weight"] == 0.0
    assert point["cpu_seconds"]["training"] > 0
    assert set(point["judged"]) == set(headroom.JUDGES) and all(set(scores) == set(STAGES) for scores in point["judged"].values())
    evaluation = json.loads((tmp_path / "work" / "evaluations" / "S-2-mse" / "results.json").read_text())
    assert set(evaluation["stages"]["quality"]) == {*STAGES, "baseline: mean_colour", "baseline: grid_average"}  # no layers
    assert list(headroom.run_points([Point("S", 2)], out, tmp_path / "work", tiny_data)) == []  # finished: skipped
    refined = Point("S", 2, "mse", 2)
    with pytest.raises(UserFacingError, match=r"S-3-mse\+b2 refines S-3-mse, which is not finished"):
        list(headroom.run_points([Point("S", 3, "mse", 2)], out, tmp_path / "work", tiny_data))
    written = list(headroom.run_points([refined], out, tmp_path / "work", {**tiny_data, "refine": tiny_data["val"]}, max_images=6))
    assert [path.name for path in written] == ["S-2-mse+b2.json"]
    base, grown = (load_file(tmp_path / "work" / name / "inverters.safetensors") for name in ("S-2-mse", refined.name))
    assert {name.split(".")[0] for name in base if not torch.equal(base[name], grown[name])} == {"backbone"}
    assert json.loads(written[0].read_text())["train_config"]["data"] == tiny_data["val"]
    cost = headroom.write_report(out)["gflops_per_training_step"]
    assert cost["M-feature"]["inverse_modules"] > cost["M-mse"]["inverse_modules"] > cost["S-mse"]["inverse_modules"]
    assert cost["S-mse"]["detector_capture"] == pytest.approx(cost["L-feature"]["detector_capture"])
    assert "| S-2-mse |" in (out / "table.md").read_text()
    judged = point["judged"]["shapes-deformable"]["decoder"]
    assert f"| S-2-mse | decoder | {point['judged']['shapes-conditional']['decoder']['objects_found']:.3f} / " \
           f"{point['judged']['shapes-conditional']['decoder']['ap']:.3f} | {judged['objects_found']:.3f} / {judged['ap']:.3f} |" \
           in (out / "table.md").read_text()
    assert all((out / f"{stage}.png").is_file() for stage in STAGES)


@pytest.mark.shapes
@pytest.mark.slow
def test_shipping_a_finished_point_makes_it_the_bundled_stack_and_the_certificate_follows(tmp_path, tiny_data, monkeypatch):
    bundled = tmp_path / "bundled"  # a copy of the bundled stack: the test never writes tracked files
    shutil.copytree(headroom.shipped_folder(), bundled)
    monkeypatch.setattr(headroom, "shipped_folder", lambda: bundled)
    out = tmp_path / "out"
    work = tmp_path / "work"
    with pytest.raises(UserFacingError, match=r"S-2-mse is not a finished point .* headroom run --points S-2-mse"):
        headroom.ship(Point("S", 2), out, work)
    list(headroom.run_points([Point("S", 2)], out, work, tiny_data, max_images=4))
    first = headroom.shipped_point()  # whichever point the bundled stack is
    previous = record(first.size, first.steps, 24.0, 0.66, first.objective)
    (out / "points" / f"{first.name}.json").write_text(json.dumps({**previous, "checkpoint": str(bundled)}))
    original = weights(bundled)
    headroom.ship(Point("S", 2), out, work)
    assert headroom.shipped_point() == Point("S", 2)
    run = work / "S-2-mse"
    assert same(weights(bundled), weights(run)) and (bundled / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    detector = Path(find_spec("shapes").detector_location()).resolve()
    assert recorded_detector_folder(read_config(bundled), bundled) == detector  # recorded from the new place
    before = json.loads((out / "points" / f"{first.name}.json").read_text())
    assert before["checkpoint"] == str(work / first.name)  # the replaced stack is kept, not lost
    assert headroom.write_report(out)["shipped"]["backbone"]["point"] == "S-2-mse"
    assert "Shipped inverters (S-2-mse)" in (out / "table.md").read_text()
    shutil.rmtree(run)  # the shipped point's run folder gone with another machine: a refinement starts from the bundled stack
    refined = Point("S", 2, "mse", 2)
    list(headroom.run_points([refined], out, work, {**tiny_data, "refine": tiny_data["val"]}, max_images=4))
    grown, shipped = weights(work / refined.name), weights(bundled)
    assert {name.split(".")[0] for name in grown if not torch.equal(grown[name], shipped[name])} == {"backbone"}
    headroom.ship(first, out, work)  # and it ships back
    assert headroom.shipped_point() == first
    assert same(weights(bundled), original)
    assert json.loads((out / "points" / "S-2-mse.json").read_text())["checkpoint"] == str(run)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    """A checkpoint folder's inverter weights."""
    return load_file(folder / "inverters.safetensors")


def same(mine: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> bool:
    """Whether two sets of weights are equal."""
    return mine.keys() == theirs.keys() and all(torch.equal(mine[key], theirs[key]) for key in mine)


def test_status_says_where_each_point_stands(tmp_path, monkeypatch):
    monkeypatch.setattr(headroom, "shipped_point", lambda: Point("M", 40_000, "feature"))  # beyond the grid, listed too
    (tmp_path / "out" / "points").mkdir(parents=True)
    (tmp_path / "out" / "points" / "S-625-mse.json").write_text("{}")
    (tmp_path / "work" / "M-625-mse").mkdir(parents=True)
    (tmp_path / "work" / "S-2500-mse").mkdir()
    (tmp_path / "work" / "S-2500-mse" / "training_state.json").write_text('{"step": 1000}')
    (tmp_path / "work" / "M-40000-mse").mkdir()  # beyond the grid
    (tmp_path / "work" / "M-40000-mse" / "training_state.json").write_text('{"step": 500}')
    (tmp_path / "work" / "evaluations").mkdir()
    (tmp_path / "work" / "my-own-run").mkdir()
    lines = dict(line.split(": ", 1) for line in headroom.status(tmp_path / "out", tmp_path / "work"))
    assert lines["M-40000-mse"] == "saved at step 500 of 40000" and list(lines)[-2:] == ["M-40000-mse", "M-40000-feature"]
    assert len(lines) == len(headroom.GRID) + 2
    assert lines["S-625-mse"] == "finished" and lines["M-625-mse"] == "started, nothing saved yet"
    assert lines["S-2500-mse"] == "saved at step 1000 of 2500" and lines["L-625-mse"] == "not started"
    assert lines["M-40000-feature"].startswith("the shipped checkpoint") and lines["M-10000-mse"] == "not started"


def test_a_gap_in_a_curve_is_not_taken_for_one_4x_step():
    assert headroom.direction_headroom([20.0, None, 24.0]) == {"last_gain": None, "rest": None}
    assert headroom.direction_headroom([20.0, 22.0, None])["last_gain"] == pytest.approx(2.0)


def test_the_shipped_certificate_says_converged_only_when_the_rule_holds_at_the_shipped_point():
    # M-10000 is the shipped point; beyond it (L-10000, and M-40000 past the grid) PSNR gains 0.2 dB and objects
    # found .01: converged. Without M-40000 the rule cannot be applied.
    flat = grid(lambda i, j: 20.0 + 2.0 * j + 0.2 * i, lambda i, j: 0.6 + 0.01 * i)
    certificate = headroom.study(flat, SHIPPED)["shipped"]["backbone"]
    assert certificate["verdict"] == "still improving"  # M-2500 to M-10000 gained 2 dB, and M-40000 is not measured
    flat["M-40000-mse"] = record("M", 40_000, 24.4, 0.61)
    certificate = headroom.study(flat, SHIPPED)["shipped"]["backbone"]
    assert certificate["verdict"] == "converged" and certificate["evidence"] is None
    assert certificate["margin_over_baselines_db"] == pytest.approx({"mean_colour": 24.2 - 19.0, "grid_average": 0.2})
    flat["M-40000-mse"] = record("M", 40_000, 24.5, 0.61)  # 0.3 dB more: not converged, by that step
    certificate = headroom.study(flat, SHIPPED)["shipped"]["backbone"]
    assert certificate["verdict"] == "not converged" and certificate["evidence"]["to"] == "M-40000-mse"


def test_the_shipped_certificate_names_the_4x_step_that_decides_it():
    steep = grid(lambda i, j: 20.0 + i + 2 * j, lambda i, j: 0.5)  # 1 dB per 4x capacity, 2 dB per 4x steps
    certificate = headroom.study(steep, SHIPPED)["shipped"]["encoder"]
    assert certificate["verdict"] == "not converged"
    assert certificate["evidence"]["from"] == "M-10000-mse" and certificate["evidence"]["to"] == "L-10000-mse"
    assert certificate["evidence"]["psnr"] == pytest.approx(1.0)
    del steep["L-10000-mse"]  # nothing beyond the shipped point measured: the last 4x step up to it decides
    certificate = headroom.study(steep, SHIPPED)["shipped"]["encoder"]
    assert certificate["verdict"] == "still improving"
    assert (certificate["evidence"]["from"], certificate["evidence"]["psnr"]) == ("S-10000-mse", pytest.approx(1.0))
    table = certificate_table(headroom.study(steep, SHIPPED)["shipped"])
    assert "| encoder | 25.00 | 0.500 | +6.00 | +1.00 | still improving | S-10000-mse to M-10000-mse: +1.00 dB" in table
    objects_only = copy.deepcopy({name: steep[name] for name in ("M-2500-mse", "M-10000-mse")})
    objects_only["M-2500-mse"]["stages"]["encoder"].update(psnr=25.0 - 0.1, objects_found=0.45)  # 0.1 dB, .05 found
    certificate = headroom.study(objects_only, SHIPPED)["shipped"]["encoder"]
    assert certificate["verdict"] == "still improving" and certificate["evidence"]["objects_found"] == pytest.approx(0.05)
    del objects_only["M-2500-mse"]
    assert headroom.study(objects_only, SHIPPED)["shipped"]["encoder"]["verdict"] == "undecided"
    assert "shipped" in headroom.study({"S-625-mse": steep["S-625-mse"]}, SHIPPED) and \
        headroom.study({"S-625-mse": steep["S-625-mse"]}, SHIPPED)["shipped"]["encoder"] is None
