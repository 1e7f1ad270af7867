"""What each app tab computes, called directly: sizes, labels, metrics, and the perturbed region.

Most tests use a stand-in with the Shapes world's architecture and random weights; the tests
marked `needs_shapes` assert behaviour of the trained Shapes model and run once
checkpoints/shapes/inverters exists.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from inversion.core.registry import build_model, model_specs
from inversion.core.stages import STAGES
from inversion.experiments.colour import hue_distance, mean_hue
from inversion.shapes.world import generate_sample
from inversion.testing import save_standin, shapes_config
from lab import gpu, service
from lab.service import RequestError
from support.standins import standin_spec


@pytest.fixture(scope="module")
def standin_entry(tmp_path_factory):
    return save_standin(tmp_path_factory.mktemp("standin"), shapes_config(), (128, 128))


@pytest.fixture(scope="module")
def model(standin_entry):
    loaded = build_model(standin_spec(standin_entry), strict=False)
    assert loaded.inverters_problem is None
    return loaded


@pytest.fixture(scope="module")
def shapes_image():
    image, _ = generate_sample(15)
    return image


def test_stage_reconstructions_give_one_scored_panel_per_stage(model):
    image = Image.new("RGB", (200, 100), (30, 120, 200))  # wide: fitted into 128 x 64
    result = service.stage_reconstructions(model, image)
    assert [panel.label for panel in result.panels] == ["backbone", "encoder", "decoder", "prediction"]
    assert result.input.view.size == (128, 64)
    for panel in result.panels:
        assert panel.image.size == (128, 64)
        assert 0 < panel.psnr < 100 and -1 <= panel.ssim <= 1
        assert f"PSNR {panel.psnr:.1f} dB" in panel.caption
    for detection in result.input.detections:  # boxes in the view's pixels
        x0, y0, x1, y1 = detection.box
        assert -1 <= x0 <= x1 <= 129 and -1 <= y0 <= y1 <= 65


def test_every_layer_adds_encoder_and_decoder_panels(model, shapes_image):
    result = service.stage_reconstructions(model, shapes_image, all_layers=True)
    layers = model.detector.config.encoder_layers
    expected = [f"encoder {i}" for i in range(layers + 1)] + [f"decoder {i}" for i in range(layers + 1)]
    assert [panel.label for panel in result.panels][4:] == expected


def test_layer_swap_feeds_layers_to_the_chosen_inverse_and_measures_cka(model, shapes_image):
    result = service.layer_swap(model, shapes_image, ["encoder 0", "encoder 2", "decoder 1"], "backbone")
    assert [panel.label for panel in result.panels] == ["encoder 0 as backbone", "encoder 2 as backbone", "decoder 1"]
    size = model.detector.config.encoder_layers + 1
    assert result.encoder_similarity.shape == result.decoder_similarity.shape == (size, size)
    np.testing.assert_allclose(np.diag(result.encoder_similarity), 1.0, atol=1e-6)
    assert np.isnan(result.decoder_similarity[0]).all()  # decoder layer 0 is the zero queries
    assert result.heat_map.width > 300
    as_encoder = service.layer_swap(model, shapes_image, ["encoder 1"], "encoder")
    assert [panel.label for panel in as_encoder.panels] == ["encoder 1"]


@pytest.mark.parametrize("layers, entry, message", [
    (["encoder 9"], "backbone", "Unknown layer 'encoder 9': this model has encoder 0 to decoder 3"),
    ([], "backbone", "at least one"),
    (["encoder 1"], "decoder", "not 'decoder'"),
])
def test_bad_layer_swaps_are_refused_with_a_reason(model, shapes_image, layers, entry, message):
    with pytest.raises(RequestError, match=message):
        service.layer_swap(model, shapes_image, layers, entry)


def test_perturbation_changes_the_box_and_nothing_else(model, shapes_image):
    result = service.colour_perturbation(model, shapes_image, 0, "box", "grey")
    before, after = np.asarray(result.original.view), np.asarray(result.perturbed.view)
    changed = (before != after).any(axis=2)
    assert result.object_index == 0
    assert result.mask.shape == before.shape[:2] and result.mask.any()
    assert not changed[~result.mask].any()
    x0, y0, x1, y1 = result.original.detections[0].box
    ys, xs = np.nonzero(result.mask)
    assert xs.min() >= math.floor(x0) and xs.max() < math.ceil(x1) and ys.min() >= math.floor(y0) and ys.max() < math.ceil(y1)
    coloured = before.max(axis=2).astype(int) - before.min(axis=2) > 10
    assert changed[result.mask & coloured].all()
    assert len(result.original_panels) == len(result.perturbed_panels) == 4
    assert len(result.changes) >= len(result.original.detections)


def test_whole_image_red_sets_every_hue(model, shapes_image):
    result = service.colour_perturbation(model, shapes_image, None, "image", "red")
    assert result.object_index is None and result.mask.all()
    assert hue_distance(mean_hue(result.perturbed.view, result.mask), 0) < 3
    free = service.colour_perturbation(model, shapes_image, None, "image", "hue", hue=150)
    assert hue_distance(mean_hue(free.perturbed.view, free.mask), 150) < 3


def test_grabcut_mask_stays_inside_the_box(model, shapes_image):
    result = service.colour_perturbation(model, shapes_image, 1, "grabcut", "blue")
    x0, y0, x1, y1 = result.original.detections[1].box
    ys, xs = np.nonzero(result.mask)
    assert xs.min() >= math.floor(x0) - 1 and xs.max() <= math.ceil(x1) and ys.min() >= math.floor(y0) - 1


def test_no_detection_needs_the_whole_image_mask(model, shapes_image):
    threshold = model.detector.threshold
    model.detector.threshold = 1.0  # nothing scores above 1
    try:
        with pytest.raises(RequestError, match="no object.*the whole image"):
            service.colour_perturbation(model, shapes_image, 0, "grabcut", "red")
        result = service.colour_perturbation(model, shapes_image, 0, "image", "green")
        assert result.original.detections == [] and result.changes == []
        assert service.stage_reconstructions(model, shapes_image).input.detections == []
    finally:
        model.detector.threshold = threshold


@pytest.mark.parametrize("args, message", [
    ((99, "box", "red"), "There is no object 99"),
    ((0, "lasso", "red"), "Unknown mask 'lasso'"),
    ((0, "box", "purple"), "Unknown perturbation 'purple'"),
    ((0, "box", "hue"), "between 0 and 179"),
])
def test_bad_perturbation_requests_are_refused_with_a_reason(model, shapes_image, args, message):
    with pytest.raises(RequestError, match=message):
        service.colour_perturbation(model, shapes_image, *args)


def test_a_model_without_inverters_gets_optimised_stage_reconstructions(standin_entry):
    bare = build_model(standin_spec(standin_entry, inverters=False))
    image = Image.new("RGB", (200, 100), (30, 120, 200))  # wide: fitted into 128 x 64
    progress = []
    result = service.stage_reconstructions(bare, image, all_layers=True, optimise_steps=3,
                                               progress=lambda fraction, text: progress.append((fraction, text)))
    assert [panel.label for panel in result.panels] == list(STAGES)
    assert result.optimised_panels == []
    for panel in result.panels:
        assert panel.image.size == (128, 64)
        assert 0 < panel.psnr < 100 and -1 <= panel.ssim <= 1
    fractions = [fraction for fraction, _ in progress]
    assert len(progress) == 3 and fractions == sorted(fractions) and fractions[-1] == 1.0  # all stages in one batch
    assert "4 images" in progress[-1][1]
    assert "no trained inverters yet" in result.note and "3 steps" in result.note
    assert "every encoder and decoder layer need trained inverters" in result.note


def test_a_model_without_inverters_serves_what_needs_none(standin_entry, model, shapes_image):
    bare = build_model(standin_spec(standin_entry, inverters=False))
    swap = service.layer_swap(bare, shapes_image, ["encoder 1", "decoder 2"])
    learned = service.layer_swap(model, shapes_image, ["encoder 1", "decoder 2"])
    assert swap.panels == [] and "need trained inverters" in swap.note and learned.note == ""
    np.testing.assert_allclose(swap.encoder_similarity, learned.encoder_similarity)  # same detector, same map
    assert swap.heat_map.size == learned.heat_map.size
    perturbed = service.colour_perturbation(bare, shapes_image, None, "image", "grey")
    assert perturbed.original_panels == perturbed.perturbed_panels == [] and "need trained inverters" in perturbed.note
    assert "Tick the optimisation box" in perturbed.note
    assert [change.status for change in perturbed.changes] == [
        change.status for change in service.colour_perturbation(model, shapes_image, None, "image", "grey").changes]
    assert service.detect(bare, shapes_image).view.size == (128, 128)


def test_a_model_without_inverters_gets_both_perturbation_images_optimised_in_one_batch(standin_entry, model, shapes_image,
                                                                                         monkeypatch):
    bare = build_model(standin_spec(standin_entry, inverters=False))
    batches = []
    optimise = service.optimise_inversions
    monkeypatch.setattr(service, "optimise_inversions", lambda detector, reps, sources, config, progress:
                        batches.append((reps.batch_size, len(sources), config.steps)) or
                        optimise(detector, reps, sources, config, progress))
    result = service.colour_perturbation(bare, shapes_image, None, "image", "grey", optimised=True, optimise_steps=2)
    assert batches == [(2, 4, 2)]  # both images, every stage, one optimisation
    assert [panel.label for panel in result.original_panels] == [panel.label for panel in result.perturbed_panels] == list(STAGES)
    assert result.original_panels[0].image.size == result.perturbed_panels[0].image.size == (128, 128)
    assert "reconstructions of both images are optimisation-based: 2 steps" in result.note
    learned = service.colour_perturbation(model, shapes_image, None, "image", "grey", optimised=True)
    assert len(batches) == 1 and len(learned.original_panels) == 4  # learned inverters: no optimisation


def test_learned_and_optimised_reconstructions_side_by_side(model, shapes_image):
    result = service.stage_reconstructions(model, shapes_image, optimised=True, optimise_steps=2)
    assert [panel.label for panel in result.panels] == list(STAGES)
    assert [panel.label for panel in result.optimised_panels] == list(STAGES)
    assert {panel.image.size for panel in result.panels + result.optimised_panels} == {(128, 128)}
    assert all(0 < panel.psnr < 100 and -1 <= panel.ssim <= 1 for panel in result.optimised_panels)
    assert result.note.startswith("The second row is optimisation-based: 2 steps")
    assert service.stage_reconstructions(model, shapes_image).note == ""


def test_the_optimisation_budget_shrinks_with_the_canvas_on_a_cpu(model):
    assert service.optimise_budget(model) == service.OPTIMISE_STEPS  # 128 x 128
    assert service.optimised_stage_steps(model, optimised=False) == 0  # learned inverters suffice
    assert service.optimised_stage_steps(model, optimised=True, optimise_steps=7) == 7
    size, model.detector.working_size = model.detector.working_size, (480, 640)
    try:
        assert service.optimise_budget(model) == 10  # DETR-R50's canvas
    finally:
        model.detector.working_size = size


def test_where_a_model_runs_is_what_was_decided_when_it_was_loaded(model):
    """On ZeroGPU a parameter reports "cpu" in every request's thread although the model runs on the GPU (issue 24):
    the optimisation budget and the batch size follow the device recorded on the model at load."""
    assert model.device == "cpu" and not model.on_gpu
    on_gpu = replace(model, device="cuda")  # its parameters still report cpu, as on ZeroGPU outside a GPU call
    size, model.detector.working_size = model.detector.working_size, (480, 640)
    spec_size, model.spec.working_size = model.spec.working_size, (480, 640)
    try:
        assert service.optimise_budget(on_gpu) == service.OPTIMISE_STEPS and service.optimise_budget(model) == 10
        assert gpu.batch_limit(on_gpu) == gpu.MAX_BATCH and gpu.batch_limit(model) == 2
    finally:
        model.detector.working_size, model.spec.working_size = size, spec_size


# ---------------------------------------------------------------- the trained Shapes model


@pytest.fixture(scope="module")
def shapes_model():
    return build_model(model_specs()["shapes"])


@pytest.mark.shapes
def test_shapes_stages_find_the_objects_and_fade_with_depth(shapes_model):
    image, objects = generate_sample(15)
    result = service.stage_reconstructions(shapes_model, image)
    assert {d.label for d in result.input.detections} == {o.name for o in objects}
    psnr = {panel.label: panel.psnr for panel in result.panels}
    assert psnr["backbone"] > 18
    assert psnr["backbone"] > psnr["prediction"]


@pytest.mark.shapes
def test_shapes_layer_similarity_falls_with_distance(shapes_model):
    image, _ = generate_sample(18)
    result = service.layer_swap(shapes_model, image, service.layer_choices(shapes_model), "encoder")
    cka = result.encoder_similarity
    assert cka[0, 1] > cka[0, -1]
    last = [panel for panel in result.panels if panel.label == f"encoder {len(cka) - 1}"][0]
    assert last.psnr > 15  # the final encoder layer is what the inverse encoder was trained on


@pytest.mark.shapes
def test_shapes_recolouring_a_square_keeps_it_detected(shapes_model):
    image, objects = generate_sample(5)  # one green square
    result = service.colour_perturbation(shapes_model, image, 0, "grabcut", "red")
    assert result.original.detections[0].label == "square"
    assert hue_distance(mean_hue(result.perturbed.view, result.mask), 0) < 5
    before, after = np.asarray(result.original.view), np.asarray(result.perturbed.view)
    assert np.array_equal(before[~result.mask], after[~result.mask])
    assert result.changes[0].after is not None  # still found where it was
