"""Reconstruction from every stage and layer: right size, valid pixels, one cascade."""

import pytest
import torch

from inversion.core.detector import Detector
from inversion.core.families import family_for
from inversion.core.images import to_pil
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.core.reconstruct import reconstruct
from inversion.core.stages import STAGE_SOURCES, Source, layer_sources, tokens_to_levels
from inversion.testing import random_image, tiny_config


def test_every_stage_and_layer_gives_an_image_of_the_input_size(tiny_detector, tiny_stack):
    image = random_image(50, 90)
    reps = tiny_detector.capture([image])
    sources = [*STAGE_SOURCES, *layer_sources(reps), Source("encoder", 1, entry="backbone")]
    results = reconstruct(tiny_stack, reps, sources)
    assert list(results) == sources
    height, width = reps.content_sizes[0]
    for source, (picture,) in results.items():
        assert picture.shape == (3, height, width), source
        assert picture.min() >= 0 and picture.max() <= 1
        assert to_pil(picture, reps.original_sizes[0]).size == image.size


def test_the_cascade_equals_each_chain_run_alone(tiny_detector, tiny_stack):
    reps = tiny_detector.capture([random_image(64, 96), random_image(40, 96, seed=2)])
    together = reconstruct(tiny_stack, reps, STAGE_SOURCES)
    for source in STAGE_SOURCES:
        (alone,) = reconstruct(tiny_stack, reps, [source]).values()
        for a, b in zip(alone, together[source]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_manual_chain_matches(tiny_detector, tiny_stack):
    reps = tiny_detector.capture([random_image(64, 96)])
    stack = tiny_stack
    decoder = stack.prediction(stack.prediction.encode(reps.logits, reps.boxes))
    encoder = stack.decoder(decoder, reps.grid_mask)
    backbone = stack.encoder(encoder, reps.grid_mask)
    image = stack.backbone(backbone.transpose(1, 2).reshape(1, -1, *reps.grid_size))
    (from_prediction,) = reconstruct(stack, reps, [Source("prediction")])[Source("prediction")]
    height, width = reps.content_sizes[0]
    torch.testing.assert_close(from_prediction, image[0, :, :height, :width], atol=1e-5, rtol=1e-4)


def test_impossible_sources_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="cannot be fed"):
        Source("decoder", 2, entry="backbone")
    with pytest.raises(ValueError, match="Only encoder and decoder have layers"):
        Source("backbone", 1)


def test_out_of_range_layer_is_named(tiny_detector, tiny_stack):
    reps = tiny_detector.capture([random_image(64, 96)])
    with pytest.raises(ValueError, match="layers 0 to 2"):
        reconstruct(tiny_stack, reps, [Source("encoder", 7)])


def test_the_inverse_prediction_reads_the_class_and_the_box(tiny_stack):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, tiny_stack.config.num_queries, tiny_stack.config.num_logits, generator=generator)
    boxes = torch.rand(1, tiny_stack.config.num_queries, 4, generator=generator)
    module = tiny_stack.prediction
    with torch.no_grad():
        output = module(module.encode(logits, boxes))
        moved = module(module.encode(logits, boxes.roll(1, dims=1)))
        relabelled = module(module.encode(logits.roll(1, dims=-1), boxes))
    assert (output - moved).abs().amax(-1).min() > 1e-4  # every query's output depends on its box
    assert (output - relabelled).abs().amax(-1).min() > 1e-4  # and on its class


def test_a_multi_scale_stack_inverts_every_level_and_its_chain_is_the_modules_in_turn():
    config = tiny_config("deformable_detr")
    torch.manual_seed(0)
    detector = Detector(family_for(config).model_class(config), working_size=(64, 96))
    stack = InverterStack(InverterConfig.for_detector(detector)).eval()
    reps = detector.capture([random_image(64, 96), random_image(40, 96, seed=2)])
    sources = [*STAGE_SOURCES, Source("encoder", 1, entry="backbone")]
    with torch.no_grad():
        results = reconstruct(stack, reps, sources)
        for source, pictures in results.items():
            assert [picture.shape for picture in pictures] == [(3, 64, 96), (3, 40, 96)], source
        encoder = stack.decoder(stack.prediction(stack.prediction.encode(reps.logits, reps.boxes)), reps.level_masks)
        levels = tokens_to_levels(stack.encoder(encoder, reps.level_masks), reps.level_masks)
        assert [level.shape for level in levels] == [level.shape for level in reps.levels]
        by_hand = stack.backbone(levels)
        torch.testing.assert_close(results[Source("prediction")][1], by_hand[1, :, :40], atol=1e-5, rtol=1e-4)
        # every level counts: changing only the coarsest changes the image
        coarsest_changed = stack.backbone([*reps.levels[:-1], torch.zeros_like(reps.levels[-1])])
        assert (coarsest_changed - stack.backbone(reps.levels)).abs().max() > 1e-4
