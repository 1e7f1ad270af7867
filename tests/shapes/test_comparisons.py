"""The comparisons' equal-time budget: the step counts follow the paired ratio of step times."""

from pathlib import Path

import pytest

from inversion.shapes.comparisons import equal_time_run, finished_steps, run_config, trained

WORK = Path("/nonexistent/comparisons")  # configs only: nothing is trained here


def variants() -> dict:
    return {"modular": run_config(WORK, "modular", "data", 2000, 16),
            "end_to_end": run_config(WORK, "end_to_end", "data", 2000, 16, objective="end_to_end")}


TIMING = {"fastest": "modular", "ratio_to_fastest": {"modular": 1.0, "end_to_end": 2.5},
          "seconds_per_step": {"modular": 0.2, "end_to_end": 0.5}}


def test_the_slower_variant_gets_the_wall_time_of_the_faster_ones_steps():
    run = equal_time_run(variants(), TIMING)
    assert (run.objective, run.steps, run.out) == ("end_to_end", 800, str(WORK / "end_to_end_equal_time"))
    assert (run.warmup_steps, run.val_every, run.save_every) == (40, 800, 800)


def test_or_the_faster_variant_the_wall_time_of_the_slower_ones_steps():
    run = equal_time_run(variants(), TIMING, budget="slowest")
    assert (run.objective, run.steps, run.out) == ("modular", 5000, str(WORK / "modular_equal_time"))
    with pytest.raises(ValueError, match="fastest"):
        equal_time_run(variants(), TIMING, budget="equal")


def test_a_finished_run_is_reused_and_an_unfinished_one_is_not(tmp_path, monkeypatch):
    config = run_config(tmp_path, "modular", "data", 30, 4)
    (tmp_path / "modular").mkdir()
    (tmp_path / "modular" / "training_state.json").write_text('{"step": 30}')
    assert finished_steps(config.out) == 30 and trained(config) == {"reused": True}
    monkeypatch.setattr("inversion.shapes.comparisons.measured_training", lambda config: {"trained": config.steps})
    assert trained(run_config(tmp_path, "modular", "data", 60, 4)) == {"trained": 60}
