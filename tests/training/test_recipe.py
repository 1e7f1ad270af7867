"""The GPU recipe has one home (inversion/training/recipe.py): docs/training.md's commands and cost table are
its values, and the job's training command is built from it (tests/release/test_jobs.py)."""

import re
import shlex

import pytest

from inversion.release.jobs import FLAVORS, estimate
from inversion.training import recipe
from inversion.training.objectives import DEFAULT_FEATURE_WEIGHT
from support.paths import REPO

GUIDE = (REPO / "docs" / "training.md").read_text()


def without_length(arguments: list[str]) -> list[str]:
    """The recipe's flags less --steps and --warmup-steps (which depend on the GPUs)."""
    kept, skip = [], 0
    for word in arguments:
        if word in ("--steps", "--warmup-steps"):
            skip = 2
        if skip:
            skip -= 1
            continue
        kept.append(word)
    return kept


def test_the_guides_recipe_is_the_recipe():
    shown = shlex.split(re.search(r'^RECIPE="(.*)"$', GUIDE, flags=re.MULTILINE).group(1))
    assert shown == without_length(recipe.train_arguments(recipe.steps(1)))
    for gpus in (1, 8):
        steps = recipe.steps(gpus)
        assert f"--steps {steps} --warmup-steps {recipe.warmup_steps(steps)}" in GUIDE
    assert recipe.steps(1) == 200_000 and recipe.warmup_steps(200_000) == 6000  # the shipped Shapes recipe's 3%
    assert recipe.BACKBONE_WIDTHS == (256, 128, 64, 32, 16) and recipe.FEATURE_WEIGHT == DEFAULT_FEATURE_WEIGHT > 0


@pytest.mark.slow
def test_the_cost_models_training_flops_are_the_recipes_counted_on_detr_r50():
    from benchmarks.core import recipe_training_gflops

    assert recipe_training_gflops()["total"] == pytest.approx(recipe.TRAINING_GFLOPS_PER_IMAGE, abs=0.05)


@pytest.mark.parametrize("flavor", ["a10g-large", "a100-large", "l40sx4", "h200x8"])
def test_the_guides_cost_table_is_the_cost_model(flavor):
    row = re.search(rf"^\| {flavor} \| (\d) x [^|]+ \| ([\d,]+) \| ([\d.]+) \| (\d+) \| ([A-Za-z ]+) \|$", GUIDE,
                    flags=re.MULTILINE)
    gpus, steps, hours, dollars, bound = row.groups()
    assert int(gpus) == FLAVORS[flavor].gpus and int(steps.replace(",", "")) == recipe.steps(int(gpus))
    cost = estimate(flavor, recipe.steps(int(gpus)))
    assert (hours, dollars, bound) == (f"{cost.hours:.1f}", f"{cost.dollars:.0f}", cost.bound)
