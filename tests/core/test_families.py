"""Every family: capture equals transformers' own forward, re-runs reproduce it, bad models are refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
from huggingface_hub import constants
from PIL import Image
from transformers import OwlViTConfig

from inversion.core.detector import Detector
from inversion.core.errors import UserFacingError
from inversion.core.families import FAMILIES, UnsupportedModel, family_for
from inversion.core.families.deformable_detr import spread
from inversion.core.hub import WeightsNotFound
from inversion.core.rerun import run_from
from inversion.testing import random_image, tiny_config
from support.hub_cache import fake_hub_cache

MODEL_TYPES = [model_type for family in FAMILIES for model_type in family.model_types]
WORKING_SIZE = (64, 96)


@pytest.fixture(scope="module", params=MODEL_TYPES)
def saved(request, tmp_path_factory):
    """A tiny random model of each family, saved by save_pretrained and loaded through Detector.from_pretrained."""
    model = trained_looking(tiny_config(request.param))
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return Detector.from_pretrained(str(folder), working_size=WORKING_SIZE, threshold=0.0)


def trained_looking(config):
    """A random model of a config's family whose norms are far from the identity (and from transformers' near-zero
    BatchNorm initialisation), as after training."""
    torch.manual_seed(0)
    model = family_for(config).model_class(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-1.0, 1.0)
    return model


def own_forward(detector: Detector, canvas):
    """transformers' own outputs on the same pixels."""
    with torch.no_grad():
        return detector.model(pixel_values=detector.normalise(canvas.pixels), pixel_mask=canvas.pixel_mask,
                              output_hidden_states=True, output_attentions=False)


def images():
    return [random_image(64, 96), random_image(90, 40, seed=3)]  # the second one padded on the right


def test_predictions_equal_the_models_own_forward(saved):
    canvas = saved.preprocess(images())
    reps = saved.capture(canvas)
    own = own_forward(saved, canvas)
    assert (reps.logits - own.logits).abs().max() <= 1e-5
    assert (reps.boxes - own.pred_boxes).abs().max() <= 1e-5


def own_layers(detector: Detector, own, canvas) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The encoder and decoder entries the docs' table names, read from transformers' own outputs."""
    if detector.family.name == "RT-DETR":  # every level after each attention module, then the memory the decoder reads
        model, flat = detector.model.model, lambda maps: torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)
        with torch.no_grad():
            features = model.backbone(detector.normalise(canvas.pixels), canvas.pixel_mask)
            levels = [projection(feature) for projection, (feature, _) in zip(model.encoder_input_proj, features)]
            memory = [projection(level) for projection, level in zip(model.decoder_input_proj, own.encoder_last_hidden_state)]
        attended = detector.config.encode_proj_layers[-1]
        torch.testing.assert_close(levels[attended], own.encoder_hidden_states[0], rtol=0, atol=0)
        after = [*levels[:attended], own.encoder_hidden_states[1], *levels[attended + 1:]]
        return [flat(levels), flat(after), flat(memory)], list(own.decoder_hidden_states)
    if detector.family.name == "YOLOS":  # one ViT: [CLS], the patches, the detection tokens; heads after its final norm
        queries = detector.config.num_detection_tokens
        patches = own.hidden_states[0].shape[1] - 1 - queries
        return ([state[:, 1:1 + patches] for state in own.hidden_states],
                [state[:, -queries:] for state in own.hidden_states[:-1]] + [own.last_hidden_state[:, -queries:]])
    # what the decoder reads: after the encoder's final norm where there is one (Table Transformer)
    encoder = [*own.encoder_hidden_states[:-1], own.encoder_last_hidden_state]
    # the families with a norm shared by their decoder layers keep the normed states (what the heads read)
    norm = getattr(detector.model.model.decoder, "layernorm", torch.nn.Identity())
    with torch.no_grad():
        middle = [norm(state) for state in own.decoder_hidden_states[1:-1]]
    return encoder, [own.decoder_hidden_states[0], *middle, own.last_hidden_state]


def test_every_layer_equals_what_transformers_returns(saved):
    canvas = saved.preprocess(images())
    reps = saved.capture(canvas)
    encoder, decoder = own_layers(saved, own_forward(saved, canvas), canvas)
    assert len(reps.encoder) == len(encoder) and len(reps.decoder) == len(decoder)
    for captured, expected in zip([*reps.encoder, *reps.decoder], [*encoder, *decoder]):
        torch.testing.assert_close(captured, expected, rtol=0, atol=1e-5)
    if saved.family.name != "YOLOS":  # its encoder's entry 0 has the positions added to the patch embedding
        every_level = torch.cat([level.flatten(2).transpose(1, 2) for level in reps.levels], 1)
        torch.testing.assert_close(reps.encoder[0], every_level, rtol=0, atol=0)


def test_the_backbone_stage_is_the_map_the_encoder_reads(saved):
    canvas = saved.preprocess(images())
    reps = saved.capture(canvas)
    with torch.no_grad():
        alone = saved.backbone_levels(canvas.pixels, canvas.pixel_mask)
    assert len(alone) == len(reps.levels) == saved.family.sizes(saved.config).levels
    for level, captured in zip(alone, reps.levels):
        torch.testing.assert_close(level, captured, rtol=0, atol=1e-6)
    assert reps.grid_size == (WORKING_SIZE[0] // saved.stride, WORKING_SIZE[1] // saved.stride)


def test_the_backbone_capture_alone_holds_what_the_whole_capture_does_for_an_inverse_backbone(saved):
    canvas = saved.preprocess(images())
    whole, alone = saved.capture(canvas), saved.capture_backbone(canvas)
    assert len(alone.levels) == len(whole.levels) and not alone.encoder and not alone.decoder and not alone.detections
    for level, captured in zip(alone.levels, whole.levels):
        torch.testing.assert_close(level, captured, rtol=0, atol=1e-6)
    for mask, captured in zip(alone.level_masks, whole.level_masks):
        assert torch.equal(mask, captured)
    assert torch.equal(alone.pixels, whole.pixels) and alone.content_sizes == whole.content_sizes == canvas.content_sizes
    assert alone.original_sizes == whole.original_sizes


def test_a_rerun_with_nothing_changed_reproduces_the_capture(saved):
    reps = saved.capture(images())
    again = run_from(saved, reps)
    torch.testing.assert_close(again.logits, reps.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(again.boxes, reps.boxes, rtol=0, atol=1e-5)


def test_changed_stages_and_skipped_layers_change_what_follows(saved):
    reps = saved.capture(images())
    zeroed = run_from(saved, reps, backbone=torch.zeros_like(reps.backbone))
    assert torch.equal(zeroed.backbone, torch.zeros_like(reps.backbone))
    assert (zeroed.encoder[1] - reps.encoder[1]).abs().max() > 1e-3
    skipped = run_from(saved, reps, skip_encoder=[1])
    torch.testing.assert_close(skipped.encoder[1], reps.encoder[0], rtol=0, atol=1e-5)  # layer 1 is the identity
    if saved.family.name == "YOLOS":  # no decoder of its own: nothing reads an encoder output, no layer to skip alone
        with pytest.raises(UserFacingError, match="no decoder reading an encoder output"):
            run_from(saved, reps, memory=torch.zeros_like(reps.encoder[-1]))
        with pytest.raises(UserFacingError, match="skip an encoder layer instead"):
            run_from(saved, reps, skip_decoder=[1])
        assert (skipped.logits - reps.logits).abs().max() > 1e-4
        return
    memory = run_from(saved, reps, memory=torch.zeros_like(reps.encoder[-1]))
    assert torch.equal(memory.encoder[-1], torch.zeros_like(reps.encoder[-1]))
    assert (memory.logits - reps.logits).abs().max() > 1e-4
    no_decoder_layer = run_from(saved, reps, skip_decoder=[1])
    assert (no_decoder_layer.logits - reps.logits).abs().max() > 1e-4


def test_attention_is_recorded_from_the_same_forward(saved):
    reps = saved.capture(images(), attention=True)
    (rows, columns), queries = reps.attention_grid, reps.decoder[0].shape[1]
    cells = rows * columns
    if reps.extra_levels:  # a multi-scale family draws attention on its level of 32 pixels a cell, as DETR's grid
        assert reps.attention_grid == (WORKING_SIZE[0] // 32, WORKING_SIZE[1] // 32)
    # RT-DETR's encoder layer 2 is its convolutional fusion: only its attention module (layer 1) attends
    assert sorted(reps.encoder_attention) == ([1] if saved.family.name == "RT-DETR" else [1, 2])
    assert sorted(reps.cross_attention) == [1, 2]
    for weights in [*reps.encoder_attention.values(), *reps.cross_attention.values()]:
        assert weights.shape[:2] == (2, 2) and weights.shape[-1] == cells  # over the attention grid
        total = weights.sum(-1)
        if reps.extra_levels:  # deformable sampling points: the share that falls inside the grid
            assert total.max() <= 1 + 1e-5 and total.mean() > 0.3
        elif saved.family.name == "YOLOS":  # the share on the patches ([CLS] and the detection tokens hold the rest)
            assert total.max() <= 1 + 1e-5 and total.min() > 0.5
        else:
            torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-4)
    for weights in reps.encoder_attention.values():
        assert weights.shape[2] == cells
    for weights in reps.cross_attention.values():
        assert weights.shape[2] == queries
        if not reps.extra_levels and saved.family.name != "YOLOS":  # masked dense attention; deformable points and
            # YOLOS (which takes no pixel mask) may read the padding
            assert weights[1][..., ~reps.level_masks[reps.attention_level][1].flatten()].abs().max() < 1e-6
    plain = saved.capture(images())
    torch.testing.assert_close(plain.logits, reps.logits, rtol=0, atol=1e-5)


def test_deformable_sampling_points_spread_onto_the_grid_with_their_bilinear_weights():
    locations = torch.tensor([[0.125, 0.25], [0.25, 0.5], [2.0, 0.5]]).view(1, 1, 1, 1, 3, 2)  # x, y
    weights = torch.tensor([0.5, 0.3, 0.2]).view(1, 1, 1, 1, 3)
    dense = spread(locations, weights, (2, 4)).view(2, 4)  # B=1, heads=1, Q=1
    # a point at a cell's centre (x 0.125 of 4 columns, y 0.25 of 2 rows) gives it all its weight; one on the
    # corner of four cells splits it in four; one outside the image drops
    expected = torch.tensor([[0.5 + 0.075, 0.075, 0, 0], [0.075, 0.075, 0, 0]])
    torch.testing.assert_close(dense, expected, rtol=0, atol=1e-6)


def test_detections_keep_every_class_of_a_sigmoid_family(saved):
    reps = saved.capture(images())
    probabilities = saved.class_probabilities(reps.logits)
    assert probabilities.shape[-1] == saved.config.num_labels  # no class dropped as "no object"
    best = probabilities[0].max(-1)
    assert len(reps.detections[0]) == int((best.values > 0).sum())  # threshold 0: every query
    assert {found.label_id for found in reps.detections[0]} == set(best.indices.tolist())


def test_a_detector_of_another_kind_is_refused_before_its_weights_are_read(tmp_path, capsys):
    OwlViTConfig().save_pretrained(tmp_path)  # a config alone: loading weights would fail differently
    with pytest.raises(UnsupportedModel) as refused:
        Detector.from_pretrained(str(tmp_path))
    message = str(refused.value)
    assert "owlvit" in message and all(family.name in message for family in FAMILIES)
    assert "\n" not in message


def test_pickled_weights_are_refused(tmp_path):
    config = tiny_config("detr")
    config.save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    with pytest.raises(WeightsNotFound, match="pickled pytorch_model.bin"):
        Detector.from_pretrained(str(tmp_path))


def test_a_config_contradicting_its_weights_is_one_line_and_the_load_report_stays_quiet(tmp_path, capsys):
    config = tiny_config("conditional_detr")
    family_for(config).model_class(config).save_pretrained(tmp_path)
    edited = json.loads((tmp_path / "config.json").read_text())
    edited["d_model"] = 48
    (tmp_path / "config.json").write_text(json.dumps(edited))
    capsys.readouterr()
    with pytest.raises(WeightsNotFound) as refused:
        Detector.from_pretrained(str(tmp_path))
    assert "\n" not in str(refused.value) and "config" in str(refused.value)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_working_size_below_the_stride_is_refused(tmp_path):
    config = tiny_config("dab-detr")
    family_for(config).model_class(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="below this detector's stride"):
        Detector.from_pretrained(str(tmp_path), working_size=(20, 64))


HUB_IDS = {"detr": "facebook/detr-resnet-50", "table-transformer": "microsoft/table-transformer-detection",
           "conditional_detr": "microsoft/conditional-detr-resnet-50", "dab-detr": "IDEA-Research/dab-detr-resnet-50",
           "deformable_detr": "SenseTime/deformable-detr", "yolos": "hustvl/yolos-small",
           "rt_detr": "PekingU/rtdetr_r50vd"}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_family_loads_from_a_hub_layout_cache_offline(model_type, tmp_path, monkeypatch):
    config = tiny_config(model_type)
    torch.manual_seed(0)
    family_for(config).model_class(config).save_pretrained(tmp_path / "saved")
    fake_hub_cache(tmp_path / "hub", HUB_IDS[model_type], "main", tmp_path / "saved")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    detector = Detector.from_pretrained(HUB_IDS[model_type], "main", WORKING_SIZE)
    assert detector.family is family_for(model_type) and detector.name == HUB_IDS[model_type]
    assert len(detector.capture([random_image(64, 96)]).encoder) == 3


def test_a_hub_repo_of_another_kind_is_refused_from_its_config_alone(tmp_path, monkeypatch):
    OwlViTConfig().save_pretrained(tmp_path / "saved")  # the cache holds no weights: reading them would fail otherwise
    fake_hub_cache(tmp_path / "hub", "google/owlvit-base-patch32", "main", tmp_path / "saved")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UnsupportedModel, match="'owlvit' model is not a detection transformer"):
        Detector.from_pretrained("google/owlvit-base-patch32", "main")


def test_a_changed_rerun_in_one_thread_never_reaches_anothers_forward(saved):
    """The app serves visitors in threads through one model: one visitor's replaced stages and skipped layers stay
    in that visitor's forward."""
    from concurrent.futures import ThreadPoolExecutor

    base = saved.capture(images())
    plain = run_from(saved, base)
    skipped = {"skip_encoder": [1]} if saved.family.name == "YOLOS" else {"skip_decoder": [1]}
    changed = run_from(saved, base, backbone=torch.zeros_like(base.backbone), **skipped)

    def work(changing: bool):
        if changing:
            return run_from(saved, base, backbone=torch.zeros_like(base.backbone), **skipped).logits
        return run_from(saved, base).logits

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, [True, False] * 8))
    for changing, logits in zip([True, False] * 8, results):
        torch.testing.assert_close(logits, (changed if changing else plain).logits, rtol=0, atol=1e-5)


def test_the_cost_model_counts_every_family(saved):
    from inversion.optimisation.cost import count_flops, measure_cost

    cost = measure_cost(saved)
    canvas = saved.preprocess([random_image(64, 96)])
    with torch.no_grad():
        forward = count_flops(lambda: saved.model(pixel_values=saved.normalise(canvas.pixels), pixel_mask=canvas.pixel_mask))
    assert cost.capture_flops == pytest.approx(forward, rel=0.01)
    # a step is a forward and a backward to the pixels only (the weights are frozen): measured 1.85-1.95 forwards
    assert cost.full_step_flops > 1.8 * cost.capture_flops > 0 and 0 < cost.backbone_step_flops < cost.full_step_flops


def test_two_stage_deformable_detr_is_captured_and_its_queries_follow_the_encoder(tmp_path):
    config = tiny_config("deformable_detr")
    config.two_stage, config.with_box_refine, config.two_stage_num_proposals = True, True, config.num_queries
    torch.manual_seed(0)
    family_for(config).model_class(config).save_pretrained(tmp_path)
    detector = Detector.from_pretrained(str(tmp_path), working_size=WORKING_SIZE, threshold=0.0)
    canvas = detector.preprocess(images())
    reps = detector.capture(canvas)
    own = own_forward(detector, canvas)
    assert (reps.logits - own.logits).abs().max() <= 1e-5 and (reps.boxes - own.pred_boxes).abs().max() <= 1e-5
    torch.testing.assert_close(reps.decoder[0], own.decoder_hidden_states[0], rtol=0, atol=0)
    # two-stage queries are the encoder's own top proposals: another encoder output gives other queries
    changed = run_from(detector, reps, memory=reps.encoder[-1].flip(1))
    assert (changed.decoder[0] - reps.decoder[0]).abs().max() > 1e-3


def test_rt_detrs_convolutional_fusion_cannot_be_skipped_and_its_queries_follow_the_memory(tmp_path):
    trained_looking(tiny_config("rt_detr")).save_pretrained(tmp_path)
    detector = Detector.from_pretrained(str(tmp_path), working_size=WORKING_SIZE, threshold=0.0)
    reps = detector.capture([random_image(64, 96), Image.new("RGB", (96, 64), (250, 20, 20))])  # far apart
    with pytest.raises(UserFacingError, match="encoder layer 2 is its convolutional fusion"):
        run_from(detector, reps, skip_encoder=[2])
    # its queries are the memory's top-scoring tokens: another memory selects other queries, at other places
    other = run_from(detector, reps, memory=torch.randn(reps.encoder[-1].shape, generator=torch.Generator().manual_seed(0)))
    assert (other.decoder[0] - reps.decoder[0]).abs().max() > 0.1 and (other.boxes - reps.boxes).abs().max() > 0.1
