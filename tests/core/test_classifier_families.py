"""ViT, DeiT and Swin: capture equals transformers' own forward, block by block; other models are refused in one line."""

from __future__ import annotations

import pytest
import torch
from huggingface_hub import constants
from transformers import DeiTForImageClassification, DeiTForImageClassificationWithTeacher, OwlViTConfig

from inversion.core.classifier import Classifier
from inversion.core.families.classifier_base import ClassifierChanges
from inversion.core.families.classifiers import CLASSIFIER_FAMILIES, UnsupportedClassifier, classifier_family_for
from inversion.core.hub import WeightsNotFound
from inversion.testing import random_image, tiny_classifier_config, tiny_config
from support.hub_cache import fake_hub_cache

MODEL_TYPES = [model_type for family in CLASSIFIER_FAMILIES for model_type in family.model_types]


def save(config, folder, model_class=None):
    """A random model of `config`, its layer norms far from the identity (as after training), saved by save_pretrained."""
    torch.manual_seed(0)
    model = (model_class or classifier_family_for(config).model_class(config))(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-1.0, 1.0)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=MODEL_TYPES)
def saved(request, tmp_path_factory):
    """A tiny random classifier of each family, saved and loaded through Classifier.from_pretrained."""
    folder = save(tiny_classifier_config(request.param), tmp_path_factory.mktemp(request.param))
    return Classifier.from_pretrained(str(folder))


def pixels_of(classifier):
    return classifier.preprocess([random_image(40, 56), random_image(32, 32, seed=3)])


def own_forward(classifier, pixels, **options):
    with torch.no_grad():
        return classifier.model(pixel_values=classifier.family.normalise(pixels), output_hidden_states=True, **options)


def test_logits_equal_the_models_own_forward(saved):
    pixels = pixels_of(saved)
    reps = saved.capture(pixels)
    assert (reps.logits - own_forward(saved, pixels).logits).abs().max() <= 1e-5  # measured: 0 for all three


def test_every_entry_and_the_pooled_tokens_equal_what_transformers_returns(saved):
    pixels = pixels_of(saved)
    reps = saved.capture(pixels)
    own = own_forward(saved, pixels)
    inputs = saved.family.normalise(pixels)
    with torch.no_grad():
        base = saved.model.base_model(pixel_values=inputs)
    config = saved.config
    if config.model_type == "swin":
        before = own_forward(saved, pixels, output_hidden_states_before_downsampling=True).reshaped_hidden_states
        levels = reps.levels
        assert len(reps.encoder) == 1 + sum(config.depths) + len(config.depths) - 1
        torch.testing.assert_close(reps.encoder[0], own.hidden_states[0], rtol=0, atol=1e-5)
        for stage, level in enumerate(levels):
            last_block = reps.encoder[level.blocks[-1]]
            torch.testing.assert_close(last_block, before[stage + 1].flatten(2).transpose(1, 2), rtol=0, atol=1e-5)
            torch.testing.assert_close(reps.encoder[level.end], own.hidden_states[stage + 1], rtol=0, atol=1e-5)
            assert reps.encoder[level.start].shape[1] == level.grid[0] * level.grid[1]
        torch.testing.assert_close(reps.pooled[:, 0], base.pooler_output, rtol=0, atol=1e-5)
    else:
        assert len(reps.encoder) == len(own.hidden_states) == config.num_hidden_layers + 1
        for entry, state in zip(reps.encoder, own.hidden_states):
            torch.testing.assert_close(entry, state, rtol=0, atol=1e-5)
        pooled = saved.family.pooled_tokens(config)
        torch.testing.assert_close(reps.pooled, base.last_hidden_state[:, :pooled], rtol=0, atol=1e-5)


def test_the_embedding_stage_is_the_patch_embedding_with_position(saved):
    pixels = pixels_of(saved)
    reps = saved.capture(pixels)
    config = saved.config
    height, width = saved.family.grid(config)
    assert reps.embedding.shape == (2, reps.encoder[0].shape[-1], height, width)
    special = saved.family.special_tokens(config)
    torch.testing.assert_close(reps.embedding.flatten(2).transpose(1, 2), reps.encoder[0][:, special:], rtol=0, atol=0)
    if config.model_type != "swin":  # by hand: the patch convolution plus the position embedding
        with torch.no_grad():
            patches = saved.family.patch_projection(saved.model)(saved.family.normalise(pixels)).flatten(2).transpose(1, 2)
        position = saved.model.base_model.embeddings.position_embeddings[:, special:]
        torch.testing.assert_close(reps.embedding.flatten(2).transpose(1, 2), patches + position, rtol=0, atol=1e-6)


def test_distilled_deit_reads_both_tokens_and_the_plain_one_the_cls_token(tmp_path):
    config = tiny_classifier_config("deit")
    distilled = Classifier.from_pretrained(str(save(config, tmp_path / "distilled", DeiTForImageClassificationWithTeacher)))
    plain = Classifier.from_pretrained(str(save(config, tmp_path / "plain", DeiTForImageClassification)))
    assert isinstance(distilled.model, DeiTForImageClassificationWithTeacher) and isinstance(plain.model, DeiTForImageClassification)
    pixels = pixels_of(distilled)
    reps = distilled.capture(pixels)
    assert reps.pooled.shape[1] == 2 and reps.encoder[0].shape[1] == 2 + 64
    own = own_forward(distilled, pixels)
    model = distilled.model
    with torch.no_grad():
        torch.testing.assert_close(own.cls_logits, model.cls_classifier(reps.pooled[:, 0]), rtol=0, atol=1e-6)
        torch.testing.assert_close(own.distillation_logits, model.distillation_classifier(reps.pooled[:, 1]), rtol=0, atol=1e-6)
    torch.testing.assert_close(reps.logits, (own.cls_logits + own.distillation_logits) / 2, rtol=0, atol=1e-6)
    plain_reps = plain.capture(pixels)
    assert plain_reps.pooled.shape[1] == 1 and plain_reps.encoder[0].shape[1] == 2 + 64
    with torch.no_grad():
        torch.testing.assert_close(plain_reps.logits, plain.model.classifier(plain_reps.pooled[:, 0]), rtol=0, atol=1e-6)


def test_a_replaced_embedding_and_a_skipped_block_change_what_follows(saved):
    pixels = pixels_of(saved)
    reps = saved.capture(pixels)
    with torch.no_grad():
        again = saved.forward_stages(pixels)
        zeroed = saved.forward_stages(pixels, ClassifierChanges(embedding=torch.zeros_like(reps.embedding)))
        skipped = saved.forward_stages(pixels, ClassifierChanges(skip_blocks=[1]))
    torch.testing.assert_close(again.logits, reps.logits, rtol=0, atol=0)
    assert torch.equal(zeroed.embedding, torch.zeros_like(reps.embedding))
    assert (zeroed.encoder[1] - reps.encoder[1]).abs().max() > 1e-3
    first_block = reps.levels[0].blocks[0]
    torch.testing.assert_close(skipped.encoder[first_block], reps.encoder[first_block - 1], rtol=0, atol=0)
    assert (skipped.logits - reps.logits).abs().max() > 1e-4


def test_attention_of_every_block_is_recorded(saved):
    reps = saved.capture(pixels_of(saved), attention=True)
    if saved.config.model_type == "swin":
        windowed_attention_is_transformers_own_on_the_grid(saved, reps)
        return
    tokens = reps.encoder[0].shape[1]
    assert sorted(reps.attention) == [1, 2]
    for weights in reps.attention.values():
        assert weights.shape == (2, 2, tokens, tokens)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, tokens), rtol=0, atol=1e-5)
    torch.testing.assert_close(saved.capture(pixels_of(saved)).logits, reps.logits, rtol=0, atol=1e-5)


def windowed_attention_is_transformers_own_on_the_grid(saved, reps):
    """Every block's windowed attention on its grid: each stage's last block's equals transformers' own
    `output_attentions` put back in place here by an explicit loop (window w's position (i, j) holds the token
    at (i + shift, j + shift) of the grid, modulo its size), zero outside the windows; rows sum to 1."""
    config = saved.config
    own = own_forward(saved, pixels_of(saved), output_attentions=True).attentions
    assert sorted(reps.attention) == list(range(1, sum(config.depths) + 1))
    for stage, level in enumerate(reps.levels):
        (height, width), window = level.grid, min(config.window_size, *level.grid)
        shift = window // 2 if len(level.blocks) % 2 == 0 and min(level.grid) > config.window_size else 0
        last = reps.attention[level.blocks[-1] - stage]  # block numbers count blocks, entries mergings too
        assert last.shape == (2, config.num_heads[stage], height * width, height * width)
        torch.testing.assert_close(last.sum(-1), torch.ones(last.shape[:3]), rtol=0, atol=1e-5)
        expected = torch.zeros_like(last)
        per_image = own[stage].view(2, -1, *own[stage].shape[1:])
        across = width // window
        for index in range(per_image.shape[1]):
            cells = [((index // across * window + i + shift) % height) * width + (index % across * window + j + shift) % width
                     for i in range(window) for j in range(window)]
            for query, at in enumerate(cells):
                expected[:, :, at, cells] = per_image[:, index, :, query]
        torch.testing.assert_close(last, expected, rtol=0, atol=1e-6)
    assert any(min(level.grid) > config.window_size for level in reps.levels)  # a shifted block was checked


def test_the_final_norm_s_tokens_are_transformers_last_hidden_state(saved):
    pixels = pixels_of(saved)
    with torch.no_grad():
        base = saved.model.base_model(pixel_values=saved.family.normalise(pixels))
    torch.testing.assert_close(saved.capture(pixels).final, base.last_hidden_state, rtol=0, atol=1e-5)


def test_predictions_are_the_top_classes_softmax_or_sigmoid(tmp_path):
    single = Classifier.from_pretrained(str(save(tiny_classifier_config("vit"), tmp_path / "single")))
    multi = Classifier.from_pretrained(str(save(tiny_classifier_config("vit", multi_label=True), tmp_path / "multi")))
    pixels = pixels_of(single)
    for classifier, probabilities in ((single, lambda logits: logits.softmax(-1)), (multi, lambda logits: logits.sigmoid())):
        reps = classifier.capture(pixels)
        expected = probabilities(reps.logits[0])
        assert [found.label_id for found in reps.predictions[0]] == expected.argsort(descending=True).tolist()
        assert reps.predictions[0][0].score == pytest.approx(float(expected.max()))
        assert reps.predictions[0][0].label in ("circle", "square", "triangle")


@pytest.mark.parametrize("config", [OwlViTConfig(), tiny_config("detr")], ids=["owlvit", "detr"])
def test_a_model_of_another_kind_is_refused_before_its_weights_are_read(config, tmp_path):
    config.save_pretrained(tmp_path)  # a config alone: loading weights would fail differently
    with pytest.raises(UnsupportedClassifier) as refused:
        Classifier.from_pretrained(str(tmp_path))
    message = str(refused.value)
    assert config.model_type in message and all(family.name in message for family in CLASSIFIER_FAMILIES)
    assert "\n" not in message


def test_pickled_weights_are_refused(tmp_path):
    tiny_classifier_config("swin").save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    with pytest.raises(WeightsNotFound, match="pickled pytorch_model.bin"):
        Classifier.from_pretrained(str(tmp_path))


HUB_IDS = {"vit": "google/vit-base-patch16-224", "deit": "facebook/deit-base-distilled-patch16-224",
           "swin": "microsoft/swin-tiny-patch4-window7-224"}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_family_loads_from_a_hub_layout_cache_offline(model_type, tmp_path, monkeypatch):
    save(tiny_classifier_config(model_type), tmp_path / "saved")
    fake_hub_cache(tmp_path / "hub", HUB_IDS[model_type], "main", tmp_path / "saved")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    classifier = Classifier.from_pretrained(HUB_IDS[model_type], "main")
    assert classifier.family is classifier_family_for(model_type) and classifier.name == HUB_IDS[model_type]
    assert classifier.capture([random_image(32, 32)]).logits.shape == (1, 3)


def test_a_checkpoints_image_processor_normalisation_is_the_one_used(tmp_path):
    """A ViT whose preprocessor_config.json says ImageNet's mean and std (as facebook/deit-* ViTs do) is fed
    pixels normalised so, not with ViT's default 0.5 / 0.5; a ViT without the file keeps the default, and the
    analytic patch inverse undoes the checkpoint's normalisation."""
    import json

    from inversion.core.classifier_inverters import AnalyticPatchInverse
    from inversion.core.images import IMAGENET_MEAN, IMAGENET_STD, normalise

    folder = save(tiny_classifier_config("vit"), tmp_path / "vit")
    plain = Classifier.from_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"do_normalize": True, "image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD)}))
    imagenet = Classifier.from_pretrained(str(folder))
    assert imagenet.family.pixel_mean == IMAGENET_MEAN and plain.family.pixel_mean == (0.5, 0.5, 0.5)
    assert classifier_family_for("vit").pixel_mean == (0.5, 0.5, 0.5)  # the shared family is left as it is
    pixels = pixels_of(imagenet)
    with torch.no_grad():
        expected = imagenet.model(pixel_values=normalise(pixels, IMAGENET_MEAN, IMAGENET_STD)).logits
    reps = imagenet.capture(pixels)
    assert (reps.logits - expected).abs().max() == 0
    assert (plain.capture(pixels).logits - expected).abs().max() > 1e-3
    assert (AnalyticPatchInverse(imagenet)(reps.embedding) - pixels).abs().max() < 1e-4


def test_an_unusable_image_processor_config_is_one_line(tmp_path):
    folder = save(tiny_classifier_config("vit"), tmp_path / "vit")
    (folder / "preprocessor_config.json").write_text('{"image_mean": [0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')
    with pytest.raises(WeightsNotFound, match="preprocessor_config.json needs three image_mean values"):
        Classifier.from_pretrained(str(folder))
