"""The inverse modules of ViT, DeiT and Swin: the analytic patch inverse is exact, the chain reaches pixels from every stage."""

from __future__ import annotations

import pytest
import torch
from transformers.models.swin.modeling_swin import SwinPatchMerging

from inversion.core.classifier import Classifier
from inversion.core.classifier_inverters import (
    AnalyticPatchInverse,
    ClassifierInverterConfig,
    ClassifierInverterStack,
    PatchSplit,
)
from inversion.core.classifier_stages import ClassifierSource
from inversion.core.families.classifiers import classifier_family_for
from inversion.testing import random_image, tiny_classifier_config


def tiny_classifier(model_type: str, patch_bias: bool = True, **sizes) -> Classifier:
    """A tiny random classifier; its patch projection given a bias (trained ones have one; transformers starts at 0)."""
    config = tiny_classifier_config(model_type)
    for name, value in sizes.items():
        setattr(config, name, value)
    torch.manual_seed(0)
    model = classifier_family_for(config).model_class(config)(config)
    if patch_bias:
        torch.nn.init.uniform_(model.base_model.embeddings.patch_embeddings.projection.bias, -0.5, 0.5)
    return Classifier(model)


def capture(classifier: Classifier):
    return classifier.capture([random_image(32, 32, seed=seed) for seed in range(3)])


def float_precision(inverse: AnalyticPatchInverse, embedding: torch.Tensor) -> torch.Tensor:
    """The float32 rounding of the embedding, as the pseudo-inverse amplifies it (1 / the patch projection's least
    singular value): how close to the input an exact inverse of float32 embeddings can come."""
    return torch.finfo(torch.float32).eps * embedding.abs().max() / torch.linalg.svdvals(inverse.weight)[-1]


@pytest.mark.parametrize("model_type", ["vit", "deit", "swin"])
def test_the_analytic_patch_inverse_gives_the_input_back_to_float_precision(model_type):
    classifier = tiny_classifier(model_type)
    reps = capture(classifier)
    inverse = AnalyticPatchInverse(classifier)
    assert inverse.invertible
    error = (inverse(reps.embedding) - reps.pixels).abs().max()
    # measured: ViT 1.7e-6, DeiT 7.8e-7, Swin 1.5e-6 on an AMD EPYC (0.56, 0.19, 0.06 of the bound), 3.6e-7, 3.1e-7,
    # 7.3e-7 on another CPU: the embedding's rounding differs by CPU, the bound follows it
    assert error <= float_precision(inverse, reps.embedding), error


def test_where_the_patch_embedding_is_not_injective_the_inverse_is_the_least_squares_patch():
    classifier = tiny_classifier("vit", hidden_size=32)  # 32 channels for 48 pixel values a patch
    reps = capture(classifier)
    inverse = AnalyticPatchInverse(classifier)
    assert not inverse.invertible
    reconstruction = inverse(reps.embedding)
    assert (reconstruction - reps.pixels).abs().max() > 0.05  # detail outside the embedding's span is lost
    again = classifier.capture(reconstruction).embedding  # ... but its embedding is the original's
    assert (again - reps.embedding).abs().max() <= 1e-5


def test_a_swin_embedding_without_a_patch_bias_loses_each_patchs_contrast():
    assert not AnalyticPatchInverse(tiny_classifier("swin", patch_bias=False)).invertible


def test_patch_splitting_puts_each_token_where_swins_merging_took_it():
    merging = SwinPatchMerging(dim=4)
    merging.norm, merging.reduction = torch.nn.Identity(), torch.nn.Identity()  # the bare 2 x 2 concatenation
    tokens = torch.randn(2, 6 * 4, 4)
    split = PatchSplit(4, (6, 4))
    torch.testing.assert_close(split.place(merging(tokens, (6, 4))), tokens, rtol=0, atol=0)


@pytest.mark.parametrize("model_type", ["vit", "deit", "swin"])
def test_the_stack_inverts_every_stage_and_entry_to_an_image(model_type):
    classifier = tiny_classifier(model_type)
    reps = capture(classifier)
    stack = ClassifierInverterStack(ClassifierInverterConfig.for_classifier(classifier))
    sources = [ClassifierSource(stage) for stage in ("embedding", "encoder", "pooled", "logits")]
    sources += [ClassifierSource("encoder", entry) for entry in range(len(reps.encoder))]
    with torch.no_grad():
        for source in sources:
            images = stack.invert(reps, source)
            assert images.shape == reps.pixels.shape and 0 <= images.min() and images.max() <= 1, source
        analytic = AnalyticPatchInverse(classifier)
        exact = stack.invert(reps, ClassifierSource("embedding"), analytic)
    assert (exact - reps.pixels).abs().max() <= float_precision(analytic, reps.embedding)
    assert len(stack.encoder) == (len(classifier.config.depths) if model_type == "swin" else 1)


def test_an_unknown_stage_or_an_entry_outside_the_encoder_is_refused():
    with pytest.raises(ValueError, match="Unknown classifier stage"):
        ClassifierSource("decoder")
    with pytest.raises(ValueError, match="Only the encoder has entries"):
        ClassifierSource("pooled", 2)
    reps = capture(tiny_classifier("vit"))
    with pytest.raises(ValueError, match="entries 0 to 2"):
        reps.tensor(ClassifierSource("encoder", 5))


@pytest.mark.parametrize("model_type", ["vit", "swin"])
def test_an_entry_enters_the_inverse_chain_of_another_of_its_shape_and_no_other(model_type):
    """The layer swap: entry i fed to entry j's inverse chain is that chain run on entry i's tokens (j = 0: the
    patch inverse alone), not on entry j's own; a shape that does not fit is refused in one line."""
    classifier = tiny_classifier(model_type)
    reps = capture(classifier)
    stack = ClassifierInverterStack(ClassifierInverterConfig.for_classifier(classifier)).eval()
    last = len(reps.encoder) - 1
    first_block, other = (1, 1) if model_type == "vit" else (reps.levels[-1].blocks[0], reps.levels[-1].blocks[0] - 1)
    with torch.no_grad():
        as_embedding = stack.invert(reps, ClassifierSource("encoder", 1, enters=0))
        assert torch.equal(as_embedding, stack.embedding(stack.embedding_map(reps.encoder[1])))
        swapped = stack.invert(reps, ClassifierSource("encoder", other, enters=last))
        assert torch.equal(swapped, stack.embedding(stack.embedding_map(stack.to_embedding(reps.encoder[other], last))))
        assert not torch.equal(swapped, stack.invert(reps, ClassifierSource("encoder", last)))  # its own tokens, not the last's
        assert torch.equal(stack.invert(reps, ClassifierSource("encoder", first_block, enters=first_block)),
                           stack.invert(reps, ClassifierSource("encoder", first_block)))
    if model_type == "swin":
        with pytest.raises(ValueError, match=f"Encoder entry 0 .* cannot enter the inverse of entry {last}"):
            stack.invert(reps, ClassifierSource("encoder", 0, enters=last))
    with pytest.raises(ValueError, match="Only encoder entries enter"):
        ClassifierSource("pooled", enters=0)
    assert ClassifierSource("encoder", 2, enters=0).label == "encoder 2 as 0"


def test_a_saved_stack_loads_back_for_its_classifier_and_is_refused_by_another(tmp_path):
    from inversion.core.checkpoints import load_inverters
    from inversion.core.classifier_checkpoints import load_classifier_inverters, save_classifier_inverters
    from inversion.core.errors import CheckpointError

    classifier = tiny_classifier("swin")
    stack = ClassifierInverterStack(ClassifierInverterConfig.for_classifier(classifier))
    save_classifier_inverters(stack, tmp_path / "inverters", classifier, notes={"steps": 0})
    loaded, config = load_classifier_inverters(tmp_path / "inverters", classifier)
    assert config["notes"] == {"steps": 0} and config["classifier"]["family"] == "Swin"
    assert all(torch.equal(loaded.state_dict()[name], tensor) for name, tensor in stack.state_dict().items())
    with pytest.raises(CheckpointError, match="trained for a Swin, not a ViT") as refused:
        load_classifier_inverters(tmp_path / "inverters", tiny_classifier("vit"))
    assert "levels differs" in str(refused.value) and "\n" not in str(refused.value)
    fine_tuned = Classifier(classifier.model, name="someone/fine-tuned")  # the same sizes and family, another id
    with pytest.raises(CheckpointError, match="trained for classifier 'classifier'"):
        load_classifier_inverters(tmp_path / "inverters", fine_tuned)
    warm, _ = load_classifier_inverters(tmp_path / "inverters", fine_tuned, warm_start=True)
    assert all(torch.equal(warm.state_dict()[name], tensor) for name, tensor in stack.state_dict().items())
    with pytest.raises(CheckpointError, match="trained for a Swin, not a ViT"):
        load_classifier_inverters(tmp_path / "inverters", tiny_classifier("vit"), warm_start=True)
    with pytest.raises(CheckpointError):  # a detector's loader does not take it either
        load_inverters(tmp_path / "inverters")
