"""chain-swap: a module taken from another stack changes a stage's reconstruction only where it is on that stage's
chain, and a broken module shows as the culprit."""

import copy

import pytest
import torch

from inversion.core.checkpoints import load_inverters, save_inverters
from inversion.core.inverters import InverseDecoder
from inversion.core.registry import find_spec, load_detector
from inversion.shapes.chain_swap import chain, chain_swap

pytestmark = pytest.mark.shapes


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """The bundled stack's folder, and a copy of it whose inverse decoder is untrained."""
    spec = find_spec("shapes")
    detector = load_detector(spec)
    bundled = spec.locate(spec.inverters)
    stack, config = load_inverters(bundled, detector)
    broken = copy.deepcopy(stack)
    torch.manual_seed(0)
    broken.decoder = InverseDecoder(stack.config)
    folder = tmp_path_factory.mktemp("broken")
    save_inverters(broken, folder, detector, config["notes"], spec.detector_location())
    return bundled, folder


def test_the_module_to_blame_is_the_one_whose_swap_moves_the_reconstruction(stacks):
    scores = chain_swap(*stacks, "prediction", images=8, batch_size=4)
    assert list(scores) == ["base", "other"] + [f"base, the other's inverse {module}"
                                                for module in ("prediction", "decoder", "encoder", "backbone")]
    for same in ("prediction", "encoder", "backbone"):  # the same weights in both stacks
        assert scores[f"base, the other's inverse {same}"] == pytest.approx(scores["base"], abs=1e-4), same
    assert scores["base, the other's inverse decoder"] == pytest.approx(scores["other"], abs=1e-4)
    assert scores["other"] < scores["base"] - 2  # the untrained inverse decoder is what loses


def test_a_stage_below_the_swapped_module_is_untouched(stacks):
    assert chain("encoder") == ("encoder", "backbone") and chain("prediction")[-1] == "backbone"
    scores = chain_swap(*stacks, "encoder", images=4, batch_size=4)
    assert set(scores) == {"base", "other", "base, the other's inverse encoder", "base, the other's inverse backbone"}
    assert scores["other"] == pytest.approx(scores["base"], abs=1e-4)  # the decoder is not on the encoder's chain
