"""The attention tab's service: maps and interventions from the detector alone (a stand-in without inverters,
whose inverter path must not run), reconstructions when there are inverters, and the trained Shapes model's
behaviour (thresholds near what it measures)."""

import numpy as np
import pytest
import torch
from PIL import Image

from inversion.core.errors import UserFacingError
from inversion.core.registry import build_model, model_specs
from inversion.shapes.world import generate_sample
from inversion.testing import save_standin, shapes_config
from lab import attention_service
from lab.service import RequestError
from support.paths import EXAMPLES
from support.standins import standin_spec


@pytest.fixture(scope="module")
def standin_entry(tmp_path_factory):
    return save_standin(tmp_path_factory.mktemp("standin"), shapes_config(), (128, 128))


@pytest.fixture(scope="module")
def bare(standin_entry):
    return build_model(standin_spec(standin_entry, inverters=False), strict=False)


@pytest.fixture(scope="module")
def with_inverters(standin_entry):
    return build_model(standin_spec(standin_entry), strict=False)


@pytest.fixture()
def no_inverter_path(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the inverter path ran")
    monkeypatch.setattr(attention_service, "reconstruct", refuse)


def shapes(index):
    return generate_sample(index)[0]


def test_attention_maps_need_no_inverters(bare, no_inverter_path):
    result = attention_service.attention_maps(bare, shapes(15))
    encoders, decoders, _ = attention_service.layer_counts(bare)
    assert (result.decoder_layer, result.encoder_layer) == (decoders, encoders)  # the last layers by default
    assert len(result.query_maps) == len(result.input.detections) > 0  # threshold 0: every query is a detection
    for shown in result.query_maps:
        assert shown.image.size == result.input.view.size == (128, 128)
        assert "inside its box" in shown.caption
    assert result.point == (64, 64)  # the centre
    assert result.point_map.image.size == (128, 128)


@pytest.mark.parametrize("settings, named", [({"decoder_layer": 99}, "decoder layer 99"),
                                              ({"encoder_layer": 0}, "encoder layer 0"), ({"head": 8}, "head 8")])
def test_settings_the_model_lacks_are_refused(bare, settings, named):
    with pytest.raises(RequestError, match=named):
        attention_service.attention_maps(bare, shapes(15), **settings)


def test_a_transplant_needs_no_inverters(bare, no_inverter_path):
    result = attention_service.transplant_object(bare, shapes(5), shapes(15), 0, "encoder")
    assert result.panels == [] and "need trained inverters" in result.note
    assert result.source is not None and result.source.detections and result.before.view.size == result.after.view.size
    assert [change.before for change in result.changes if change.before is not None] == result.before.detections
    assert "transplanted into the second at the encoder output at the same place" in result.summary


def test_a_layer_skip_needs_no_inverters(bare, no_inverter_path):
    result = attention_service.skip_one_layer(bare, shapes(15), "decoder", 1)
    assert result.panels == [] and result.source is None
    assert result.summary.startswith("Without decoder layer 1: ")
    assert [change.before for change in result.changes if change.before is not None] == result.before.detections


def test_interventions_reconstruct_the_changed_representation(with_inverters):
    skipped = attention_service.skip_one_layer(with_inverters, shapes(15), "encoder", 2)
    unchanged = attention_service.skip_one_layer(with_inverters, shapes(15), "decoder", 1)
    assert [panel.label for panel in skipped.panels] == ["backbone", "encoder", "decoder", "prediction"] and not skipped.note
    assert np.array_equal(np.asarray(skipped.panels[0].image), np.asarray(unchanged.panels[0].image))  # the backbone: before the skip
    assert not np.array_equal(np.asarray(skipped.panels[1].image), np.asarray(unchanged.panels[1].image))  # the encoder: changed


@pytest.mark.parametrize("call, message", [
    (lambda model: attention_service.transplant_object(model, shapes(5), shapes(15), 999), "no object 999"),
    (lambda model: attention_service.transplant_object(model, shapes(5), shapes(15), 0, "decoder"), "Transplant at 'decoder'"),
    (lambda model: attention_service.transplant_object(model, shapes(5), shapes(15), 0, offset=(50, 0)), "would leave"),
    (lambda model: attention_service.skip_one_layer(model, shapes(15), "decoder", 7), "no decoder layer 7"),
    (lambda model: attention_service.skip_one_layer(model, shapes(15), "backbone", 1), "Only encoder and decoder"),
])
def test_bad_interventions_say_what_to_change(bare, call, message):
    with pytest.raises(UserFacingError, match=message):
        call(bare)


def test_a_first_image_without_detections_has_nothing_to_transplant(standin_entry):
    spec = standin_spec(standin_entry, inverters=False)
    spec.threshold = 1.0  # nothing scores above 1
    model = build_model(spec, strict=False)
    with pytest.raises(RequestError, match="no object in the first image"):
        attention_service.transplant_object(model, shapes(5), shapes(15), 0)


# ---------------------------------------------------------------- the trained Shapes model


@pytest.fixture(scope="module")
def shapes_model():
    return build_model(model_specs()["shapes"])


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    return float(np.abs(np.asarray(first, dtype=float) - np.asarray(second, dtype=float)).mean())


@pytest.mark.shapes
def test_shapes_detections_look_inside_their_boxes_each_its_own_way(shapes_model):
    last = attention_service.attention_maps(shapes_model, shapes(15))
    shares = [float(shown.caption.split(" · ")[1].split("%")[0]) / 100 for shown in last.query_maps]
    assert len(shares) == 5 and min(shares) > 0.27  # measured 0.31 to 0.42 (boxes cover about 0.08 of the image)
    first, second, third = (shown.image for shown in last.query_maps[:3])
    assert mean_difference(first, second) > 9 and mean_difference(second, third) > 9  # measured 12.9 and 18.2
    middle = attention_service.attention_maps(shapes_model, shapes(15), decoder_layer=2)
    assert mean_difference(middle.query_maps[0].image, first) > 3  # another layer, another map


@pytest.mark.shapes
def test_shapes_point_map_follows_the_point(shapes_model):
    corner = attention_service.attention_maps(shapes_model, shapes(15), point=(5, 5))
    other = attention_service.attention_maps(shapes_model, shapes(15), point=(120, 120))
    near = attention_service.attention_maps(shapes_model, shapes(15), point=(6, 6))  # the same cell: only the marker moves
    assert corner.point == (5, 5) and other.point == (120, 120)
    assert mean_difference(corner.point_map.image, other.point_map.image) > 10  # measured 15.0
    assert mean_difference(corner.point_map.image, near.point_map.image) < 1  # measured 0.36


@pytest.mark.shapes
def test_shapes_object_transplanted_at_its_own_cells_is_found(shapes_model):
    source = shapes(5)  # one green square
    result = attention_service.transplant_object(shapes_model, source, Image.new("RGB", source.size, "white"), 0, "encoder")
    assert "found there as square" in result.summary
    assert [change.status for change in result.changes] == ["new"]
    assert [panel.label for panel in result.panels] == ["backbone", "encoder", "decoder", "prediction"]


@pytest.mark.shapes
def test_shapes_skipping_the_first_decoder_layer_changes_the_detections(shapes_model):
    result = attention_service.skip_one_layer(shapes_model, shapes(15), "decoder", 1)
    assert any(change.status != "same label" or abs(change.score_delta) > 0.05 for change in result.changes)
    kept = attention_service.skip_one_layer(shapes_model, shapes(15), "decoder", 3)
    assert all(change.status == "same label" for change in kept.changes)


def test_query_maps_sum_before_display(bare):
    """The service's overlays come from maps that are distributions (the library's test checks them in full)."""
    from inversion.experiments.attention import capture_attention, detection_queries
    reps, attention = capture_attention(bare.detector, [shapes(15)])
    query = detection_queries(bare.detector, reps, 0)[0]
    assert torch.isclose(attention.query_map(0, query).sum(), torch.tensor(1.0), atol=1e-5)


@pytest.mark.shapes
def test_shapes_transplant_takes_the_chosen_object_at_the_chosen_stage(shapes_model):
    source, target = (Image.open(EXAMPLES / name).convert("RGB") for name in ("shapes_15.png", "shapes_05.png"))
    results = {at: attention_service.transplant_object(shapes_model, source, target, 2, at) for at in ("encoder", "backbone")}
    scores = {}
    for at, result in results.items():
        assert "The first image's 2: star" in result.summary and "found there as star" in result.summary
        assert result.changes[0].status == "same label"  # shapes_05's own square stays
        scores[at] = float(result.summary.split("found there as star ")[1].rstrip("."))
    assert abs(scores["encoder"] - scores["backbone"]) > 0.2  # measured 0.96 and 0.63 (the encoder mixes it in)
