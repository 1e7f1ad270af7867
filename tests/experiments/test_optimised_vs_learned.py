"""The optimised-vs-learned comparison: a rerun can keep the rows of methods it does not run from an earlier one."""

import json

import pytest

from inversion.__main__ import main


@pytest.mark.shapes
def test_a_rerun_keeps_the_earlier_rows_of_the_methods_it_did_not_run(tmp_path, capsys):
    out = tmp_path / "comparison"
    command = ["optimise", "--model", "shapes", "--shapes", "1", "--steps", "1", "--out", str(out)]
    assert main([*command, "--keep-earlier-rows"]) == 2  # nothing earlier to keep
    assert "--keep-earlier-rows keeps the rows of an earlier run's results.json" in capsys.readouterr().err
    assert main(command) == 0
    earlier = json.loads((out / "results.json").read_text())
    slow = "previous optimiser (200 steps per stage, one stage after another)"  # as an earlier --legacy run wrote it
    learned = earlier["methods"]["learned"]
    stale = {**learned, "stages": {stage: {**values, "psnr": 1.0} for stage, values in learned["stages"].items()}}
    earlier["methods"] = {"learned": stale, slow: stale, **{k: v for k, v in earlier["methods"].items() if k != "learned"}}
    (out / "results.json").write_text(json.dumps(earlier))

    assert main([*command, "--keep-earlier-rows"]) == 0
    rerun = json.loads((out / "results.json").read_text())
    assert list(rerun["methods"]) == list(earlier["methods"])  # the earlier order, the slow row in it
    assert rerun["kept_from_earlier_run"] == [slow] and rerun["methods"][slow] == stale
    assert rerun["methods"]["learned"]["stages"]["backbone"]["psnr"] > 15  # measured again, not the stale row
    table = (out / "table.md").read_text()
    assert f"| {slow}, an earlier run's row | backbone | 1.00 |" in table and "| learned | backbone |" in table

    assert main([*command[:4], "2", *command[5:], "--keep-earlier-rows"]) == 2  # other images: the rows do not compare
    assert "compare 1 images and this run 2" in capsys.readouterr().err
