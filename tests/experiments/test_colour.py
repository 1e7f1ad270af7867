"""Colour perturbations change the masked region as named and nothing else."""

import numpy as np
import pytest
from PIL import Image

from inversion.experiments.colour import PERTURBATIONS, box_mask, grabcut_mask, hue_distance, mean_hue, perturb


@pytest.fixture()
def scene() -> np.ndarray:
    """A grey-blue textured background with a saturated orange disc in the middle."""
    rng = np.random.default_rng(0)
    image = np.full((60, 80, 3), (90, 100, 120), dtype=np.uint8) + rng.integers(0, 12, (60, 80, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:60, :80]
    image[(yy - 30) ** 2 + (xx - 40) ** 2 < 15**2] = (240, 120, 20)
    return image


def disc(shape=(60, 80)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - 30) ** 2 + (xx - 40) ** 2 < 15**2


@pytest.mark.parametrize("kind, target", [("red", 0), ("green", 60), ("blue", 120)])
def test_setting_the_hue_changes_only_the_mask(scene, kind, target):
    result = perturb(scene, disc(), kind)
    assert hue_distance(mean_hue(result, disc()), target) < 3
    assert np.array_equal(result[~disc()], scene[~disc()])


def test_rotation_by_120_degrees_moves_the_hue_by_60_units(scene):
    before = mean_hue(scene, disc())
    after = mean_hue(perturb(scene, disc(), "rotate120"), disc())
    assert abs(hue_distance(before, after) - 60) < 3


def test_grey_removes_colour_and_a_free_hue_is_checked(scene):
    assert np.isnan(mean_hue(perturb(scene, disc(), "grey"), disc()))
    assert hue_distance(mean_hue(perturb(scene, disc(), "hue", hue=150), disc()), 150) < 3
    with pytest.raises(ValueError, match="0..179"):
        perturb(scene, disc(), "hue", hue=200)
    with pytest.raises(ValueError, match="Unknown perturbation 'purple'"):
        perturb(scene, disc(), "purple")
    assert set(PERTURBATIONS) == {"red", "green", "blue", "rotate120", "rotate240", "grey"}


def test_grabcut_finds_the_object_inside_its_box(scene):
    mask = grabcut_mask(Image.fromarray(scene), (22, 12, 58, 48))
    overlap = (mask & disc()).sum() / (mask | disc()).sum()
    assert overlap > 0.8
    assert box_mask((60, 80), (-5, -5, 10, 200)).sum() == 60 * 10
