"""The bundled Shapes classifiers (ViT, Swin) in the app beside the Shapes DETR, through gradio_client: each tab
shows the chosen classifier's own classes where a detector shows detections, its reconstructions from every
stage, the classes before and after a recolouring, the ViT's CLS attention and rollout, a Swin's windowed attention,
the layer swap with the CKA between the layers; what serves detectors only says so in one message, and the app keeps
serving."""

from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from inversion.core.classifier import Classifier
from inversion.core.classifier_checkpoints import load_classifier_inverters
from inversion.core.classifier_stages import ClassifierSource
from inversion.core.families.classifier_base import ClassifierChanges
from inversion.core.images import load_image
from inversion.core.registry import read_space_config
from inversion.experiments.classifier_attention import attention_rollout, cls_map, point_map, received_map
from inversion.experiments.colour import perturb
from inversion.experiments.similarity import layer_similarity
from inversion.figures import heat_overlay, layer_similarity_map, model_line, result_card, save_card
from inversion.shapes.world import generate_sample
from inversion.testing import write_space_config
from lab import classifier_service, text
from lab.cards import card_link
from lab.links import from_query
from lab.page import model_notice
from lab.tabs import attend, layer_swap, stages
from lab.tabs.attend import enlarged
from support.app_server import serving
from support.paths import REPO

pytestmark = [pytest.mark.app, pytest.mark.slow]

PAGE = "http://127.0.0.1:7860/"  # the page address a card's link is made from
CLASSIFIERS = {"shapes-vit": "checkpoints/shapes/classifier-vit", "shapes-swin": "checkpoints/shapes/classifier-swin"}
INVERTERS = {name: f"{folder}-inverters" for name, folder in CLASSIFIERS.items()}
STAGES = {"shapes-vit": ["embedding (analytic)", "embedding (learned)", "encoder output", "pooled token", "logits"],
          "shapes-swin": ["embedding (analytic)", "embedding (learned)", "encoder output", "pooled token", "logits"]}
ENTRIES = {"shapes-vit": 3, "shapes-swin": 4}  # encoder entries between the embedding's and the output (Swin: merges too)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(the catalogue, the app's URL): the project's Shapes DETR and both classifiers, from a config in a temporary
    folder whose checkpoints/ is the project's (the classifiers' recorded names are relative paths)."""
    folder = tmp_path_factory.mktemp("classifiers")
    (folder / "checkpoints").symlink_to(REPO / "checkpoints")
    real = read_space_config(REPO / "space_config.yaml")
    models = {name: real["models"][name] for name in ("shapes", *CLASSIFIERS)}
    config = write_space_config(folder / "space_config.yaml", models, default_model="shapes", limits=real["limits"])
    with serving(config, folder) as catalogue_and_url:
        yield catalogue_and_url


@pytest.fixture(scope="module")
def client(served):
    return Client(served[1], verbose=False)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "shapes.png"
    generate_sample(15)[0].save(path)
    return path


def own_classes(name: str, picture) -> str:
    """The classifier's top classes as the summary lists them, computed here from its own weights."""
    classifier = Classifier.from_pretrained(str(REPO / CLASSIFIERS[name]))
    probabilities = classifier.class_probabilities(classifier.capture([picture]).logits)[0]
    order = probabilities.argsort(descending=True)
    return ", ".join(f"{classifier.config.id2label[int(i)]} {float(probabilities[i]):.2f}" for i in order)


def sent(shown):
    """A picture or gallery as the app returned it, to send back (its files as uploads)."""
    if isinstance(shown, dict):
        return {**shown, "image": handle_file(shown["image"])}
    return [{"image": handle_file(item["image"]), "caption": item["caption"]} for item in shown]


def card_files(client, query: str, endpoint: str, *values) -> list:
    files = client.predict(PAGE + query, query, *values, api_name=endpoint)["value"]
    files = [file["path"] if isinstance(file, dict) else file for file in files]
    assert [Path(file).suffix for file in files] == [".png", ".pdf"] and Image.open(files[0]).size == (1920, 1080)
    return files


def same_card(served, tmp_path, name: str, query: str, png: str, card) -> bool:
    """Whether the app's card PNG is `card` (the tab's card function with classifier=True) drawn here."""
    spec = served[0].models[name].spec
    figure = result_card(card.title, card.rows, model_line(spec.label, spec.detector, spec.revision),
                         card_link(PAGE, query), card.subtitle)
    save_card(figure, tmp_path / "expected.png")
    return np.array_equal(np.asarray(Image.open(png).convert("RGB")), np.asarray(Image.open(tmp_path / "expected.png").convert("RGB")))


def shown(value):
    """A picture or gallery as the app returned it, as a card function reads it on the page."""
    if isinstance(value, dict):
        return value["image"], []
    return [(item["image"], item["caption"]) for item in value]


def captions(gallery) -> list[str]:
    return [item["caption"].split(" ·")[0] for item in gallery]


def psnr(gallery, label: str) -> float:
    caption = next(item["caption"] for item in gallery if item["caption"].startswith(f"{label} ·"))
    return float(caption.split("PSNR ")[1].split(" dB")[0])


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_stages_show_the_classifier_s_own_classes_and_its_reconstructions(served, client, image, name, tmp_path):
    view, gallery, optimised, summary, query = client.predict(handle_file(str(image)), name, False, False,
                                                              api_name="/stages")
    assert view["annotations"] == [] and Image.open(view["image"]).size == (64, 64)  # its input, no boxes
    assert summary.startswith(text.CLASSES_NOT_DETECTIONS)
    assert f"Top classes: {own_classes(name, load_image(image))}." in summary
    assert captions(gallery) == STAGES[name] and optimised == []
    assert psnr(gallery, "embedding (analytic)") > 100  # exact
    assert psnr(gallery, "embedding (learned)") > 25 > psnr(gallery, "logits") > 12
    assert query.startswith(f"?model={name}")
    png, _ = card_files(client, query, "/stages_card", sent(view), sent(gallery), [])  # the card, from what is shown
    state = from_query(dict(parse_qsl(query[1:])), [name], ["shapes_15.png"])
    assert same_card(served, tmp_path, name, query, png, stages.card(state, shown(view), shown(gallery), [], classifier=True))

    _, gallery, _, summary, _ = client.predict(handle_file(str(image)), name, True, True, api_name="/stages")
    entries = [f"encoder entry {entry}" for entry in range(1, ENTRIES[name] + 1)]
    assert captions(gallery) == [*STAGES[name][:2], *entries, *STAGES[name][2:]]
    assert summary.endswith(text.CLASSIFIER_OPTIMISED)  # said plainly, not attempted


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_perturbation_shows_the_classes_before_and_after_beside_both_reconstructions(client, image, name):
    original, objects, perturbed, changes, original_gallery, perturbed_gallery, query = client.predict(
        handle_file(str(image)), name, None, "image", "rotate120", 90, False, api_name="/perturb")
    assert original["annotations"] == perturbed["annotations"] == [] and objects["choices"] == []
    view = Image.open(original["image"]).convert("RGB")
    recoloured = Image.fromarray(perturb(view, np.ones((64, 64), dtype=bool), "rotate120"))
    assert np.array_equal(np.asarray(Image.open(perturbed["image"]).convert("RGB")), np.asarray(recoloured))
    classifier = Classifier.from_pretrained(str(REPO / CLASSIFIERS[name]))
    before, after = classifier.class_probabilities(classifier.capture([view, recoloured]).logits)
    assert changes["headers"] == text.CLASS_CHANGE_HEADERS
    for label, row in zip((row[0].split()[0] for row in changes["data"]), changes["data"], strict=True):
        index = classifier.config.label2id[label]
        present = (bool(before[index] > 0.5), bool(after[index] > 0.5))
        assert row == [f"{label} {before[index]:.2f}", f"{label} {after[index]:.2f}",
                       f"{after[index] - before[index]:+.2f}",
                       {(True, True): "kept", (True, False): "lost", (False, True): "gained", (False, False): "absent"}[present]]
    assert len(changes["data"]) == 4  # every Shapes class (top 5 of 4)
    assert captions(original_gallery) == captions(perturbed_gallery) == STAGES[name]
    assert psnr(original_gallery, "embedding (analytic)") > 100 and psnr(perturbed_gallery, "embedding (analytic)") > 100
    assert "mask=image" in query
    card_files(client, query, "/perturb_card", sent(original), sent(perturbed), changes, sent(original_gallery),
               sent(perturbed_gallery))

    with pytest.raises(AppError, match="no box or object to recolour"):
        client.predict(handle_file(str(image)), name, 0, "grabcut", "red", 90, False, api_name="/perturb")
    annotated, objects = client.predict(name, handle_file(str(image)), api_name="/detect")
    assert annotated["annotations"] == [] and objects["choices"] == []


def test_the_vit_attention_tab_shows_each_block_s_cls_attention_and_the_rollout(client, image):
    view, block_maps, rollout_map, after, changes, summary, panels, query = client.predict(
        handle_file(str(image)), None, "shapes-vit", "attention", None, None, -1, None, None, 0, "encoder", 0, 0,
        None, api_name="/attend")
    assert view["annotations"] == [] and changes["data"] in ([], [["", "", "", ""]])
    assert [item["caption"] for item in block_maps] == [
        f"block {block}, mean of the heads: the CLS token's attention" for block in range(1, 5)]
    classifier = Classifier.from_pretrained(str(REPO / CLASSIFIERS["shapes-vit"]))
    reps = classifier.capture([load_image(image)], attention=True)
    expected = enlarged(heat_overlay(reps.pixels[0], cls_map(attention_rollout([reps.attention[b] for b in range(1, 5)]),
                                                                1, (16, 16))[0]))
    assert np.abs(np.asarray(Image.open(rollout_map).convert("RGB"), dtype=int) - np.asarray(expected, dtype=int)).max() <= 1
    last = heat_overlay(reps.pixels[0], cls_map(reps.attention[4], 1, (16, 16))[0])
    shown = np.asarray(Image.open(block_maps[3]["image"]).convert("RGB"), dtype=int)
    assert np.abs(shown - np.asarray(last, dtype=int)).max() <= 1
    assert text.CLASSES_NOT_DETECTIONS in summary and "attention rollout" in summary
    card_files(client, query, "/attend_card", sent(view), sent(block_maps), handle_file(rollout_map), sent(after), changes,
               panels)

    _, block_maps, *_ = client.predict(handle_file(str(image)), None, "shapes-vit", "attention", None, None, 2, None, None,
                                       0, "encoder", 0, 0, None, api_name="/attend")
    assert block_maps[0]["caption"] == "block 1, head 2: the CLS token's attention"
    with pytest.raises(AppError, match="choose one of -1, 0, 1, 2, 3"):
        client.predict(handle_file(str(image)), None, "shapes-vit", "attention", None, None, 4, None, None, 0, "encoder",
                       0, 0, None, api_name="/attend")


@pytest.mark.parametrize("name, block", [("shapes-vit", 2), ("shapes-swin", 3)])
def test_a_skipped_block_shows_the_classes_without_it_and_its_reconstructions(served, client, image, name, block,
                                                                               tmp_path):
    view, _, _, after, changes, summary, panels, query = client.predict(
        handle_file(str(image)), None, name, "skip", None, None, -1, None, None, 0, "encoder", 0, 0, f"block {block}",
        api_name="/attend")
    assert view["annotations"] == after["annotations"] == []
    classifier = Classifier.from_pretrained(str(REPO / CLASSIFIERS[name]))
    pixels = classifier.preprocess([load_image(image)])
    before = classifier.class_probabilities(classifier.forward_stages(pixels).logits)[0]
    without = classifier.class_probabilities(classifier.forward_stages(pixels, ClassifierChanges(skip_blocks=[block])).logits)[0]
    assert not torch.allclose(before, without, atol=1e-3)  # the block matters
    listed = ", ".join(f"{classifier.config.id2label[int(i)]} {float(without[i]):.2f}" for i in without.argsort(descending=True))
    assert summary.startswith(f"Without block {block} (the identity in its place): Top classes: {listed}.")
    assert changes["headers"] == text.CLASS_SKIP_HEADERS and len(changes["data"]) == 4
    for row in changes["data"]:
        index = classifier.config.label2id[row[0].split()[0]]
        assert row[:3] == [f"{row[0].split()[0]} {before[index]:.2f}", f"{row[0].split()[0]} {without[index]:.2f}",
                           f"{without[index] - before[index]:+.2f}"]
    assert captions(panels) == STAGES[name] and f"skip=b{block}" in query
    png, _ = card_files(client, query, "/attend_card", sent(view), [], handle_file(view["image"]), sent(after), changes,
                        sent(panels))
    state = from_query(dict(parse_qsl(query[1:])), [name], ["shapes_15.png"])
    table = pd.DataFrame(changes["data"], columns=changes["headers"])
    expected = attend.card(state, shown(view), [], view["image"], shown(after), table, shown(panels), classifier=True)
    assert same_card(served, tmp_path, name, query, png, expected)


def same_picture(path, expected) -> bool:
    """Whether a picture the app returned is `expected` drawn here (PNG round trips: within one grey level)."""
    shown = np.asarray(Image.open(path).convert("RGB"), dtype=int)
    return shown.shape == np.asarray(expected).shape and np.abs(shown - np.asarray(expected, dtype=int)).max() <= 1


# (model, the layers chosen, the inverse they enter, the encoder entries reconstructed, the entry whose inverse they
# go through): a Swin's entries that do not fit the chosen inverse (another stage's grid) are left out
SWAPS = [("shapes-vit", ["block 0", "block 2"], "encoder", [0, 2], 4),
         ("shapes-vit", ["block 1", "block 4"], "backbone", [1, 4], 0),
         ("shapes-swin", ["block 1", "merging 1", "block 3"], "backbone", [1], 0),
         ("shapes-swin", ["block 0", "merging 1", "block 4"], "encoder", [3, 5], 5)]


@pytest.mark.parametrize("name, layers, entry, entries, target", SWAPS)
def test_the_layer_swap_feeds_a_classifier_s_blocks_to_another_inverse_beside_the_cka_of_its_layers(
        served, client, image, name, layers, entry, entries, target, tmp_path):
    swapped, heat, query = client.predict(handle_file(str(image)), name, layers, entry, api_name="/layer_swap")
    classifier = Classifier.from_pretrained(str(REPO / CLASSIFIERS[name]))
    inverters, _ = load_classifier_inverters(str(REPO / INVERTERS[name]))
    reps = classifier.capture([load_image(image)])
    assert len(swapped) == len(entries)
    with torch.no_grad():
        for item, entry_number in zip(swapped, entries, strict=True):
            expected = inverters.invert(reps, ClassifierSource("encoder", entry_number, enters=target))[0].clamp(0, 1)
            picture = torch.from_numpy(np.asarray(Image.open(item["image"]).convert("RGB"), dtype=np.float32) / 255)
            assert (picture.permute(2, 0, 1) - expected).abs().max() <= 1 / 255 + 1e-6, item["caption"]
            assert item["caption"].split(" ·")[0].endswith("as the embedding" if entry == "backbone" else
                                                           "as the encoder output")
    names = [label for label, _ in classifier_service.swap_layers(served[0].models[name])]
    expected_heat = layer_similarity_map(layer_similarity(reps).numpy(), [*names, text.POOLED_LAYER], text.CLASSIFIER_SIMILARITY)
    assert same_picture(heat, expected_heat)
    assert dict(parse_qsl(query[1:]))["swap"] == ",".join(layer[0] + layer.split()[1] for layer in layers)
    assert ("entry=encoder" in query) == (entry == "encoder")
    png, _ = card_files(client, query, "/swap_card", handle_file(heat), sent(swapped))
    state = from_query(dict(parse_qsl(query[1:])), [name], ["shapes_15.png"])
    assert state.swap == layers
    assert same_card(served, tmp_path, name, query, png, layer_swap.card(state, heat, shown_gallery(swapped)))


def shown_gallery(value):
    return [(item["image"], item["caption"]) for item in value]


def test_a_swin_s_attention_is_what_each_patch_receives_per_block_and_a_point_s_window(served, client, image, tmp_path):
    view, block_maps, point, after, changes, summary, panels, query = client.predict(
        handle_file(str(image)), None, "shapes-swin", "attention", None, 2, -1, 10, 50, 0, "encoder", 0, 0, None,
        api_name="/attend")
    assert view["annotations"] == []
    assert [item["caption"] for item in block_maps] == [
        f"block {block}, mean of the heads: the attention each patch receives" for block in range(1, 5)]
    classifier = Classifier.from_pretrained(str(REPO / CLASSIFIERS["shapes-swin"]))
    reps = classifier.capture([load_image(image)], attention=True)
    grids = [(16, 16), (16, 16), (8, 8), (8, 8)]
    for item, block in zip(block_maps, range(1, 5)):
        assert same_picture(item["image"], heat_overlay(reps.pixels[0], received_map(reps.attention[block], grids[block - 1])[0]))
    # block 2 rolls its 16 x 16 grid by 2 cells before cutting 4 x 4 windows: the point (10, 50), cell (12, 2), lies in
    # the window of rows 10-13 and columns 2-5 (unshifted, it would be rows 12-15 and columns 0-3)
    weights = point_map(reps.attention[2], (16, 16), (12, 2))[0]
    assert weights[10:14, 2:6].sum() > 0.999 and weights[10:14, 2:6].min() > 0
    expected = enlarged(heat_overlay(reps.pixels[0], weights))
    shown = np.asarray(Image.open(point).convert("RGB"), dtype=int)
    outside = np.ones(shown.shape[:2], dtype=bool)
    outside[470:530, 70:130] = False  # the frame around the chosen patch (x 80-120, y 480-520)
    assert np.abs(shown - np.asarray(expected, dtype=int))[outside].max() <= 1
    assert "has no CLS token" in summary and text.CLASSES_NOT_DETECTIONS in summary
    assert "attention from the patch at (10, 50) over its window" in summary
    assert dict(parse_qsl(query[1:])) == {"model": "shapes-swin", "tab": "attend", "example": "shapes_15.png",
                                          "encoder_layer": "2", "point_x": "10",
                                          "point_y": "50"}
    png, _ = card_files(client, query, "/attend_card", sent(view), sent(block_maps), handle_file(point), sent(after),
                        changes, panels)
    state = from_query(dict(parse_qsl(query[1:])), ["shapes-swin"], ["shapes_15.png"])
    table = pd.DataFrame(changes["data"], columns=changes["headers"])
    expected_card = attend.card(state, shown_view(view), shown_gallery(block_maps), point, shown_view(after), table,
                                shown_gallery(panels), classifier=True, cls_token=False)
    assert expected_card.title == text.WINDOWED_ATTENTION_CARD_TITLE
    assert same_card(served, tmp_path, "shapes-swin", query, png, expected_card)
    with pytest.raises(AppError, match="choose one of 1, 2, 3, 4"):
        client.predict(handle_file(str(image)), None, "shapes-swin", "attention", None, 5, -1, None, None, 0, "encoder",
                       0, 0, None, api_name="/attend")


def shown_view(value):
    return value["image"], []


@pytest.mark.parametrize("call, message", [
    (("/attend", None, "shapes-vit", "skip", None, None, -1, None, None, 0, "encoder", 0, 0, "encoder 1"),
     "choose one of block 1, block 2, block 3, block 4"),
    (("/attend", "second", "shapes-vit", "transplant", None, None, -1, None, None, 0, "encoder", 0, 0, None),
     "a transplant moves a detector's object tokens into another image"),
    (("/layer_swap", "shapes-swin", [], "backbone"), "Choose at least one block"),
    (("/layer_swap", "shapes-vit", ["encoder 1"], "backbone"),
     r"Unknown layer 'encoder 1': choose from block 0 \(embedding\), block 1, block 2"),
    (("/layer_swap", "shapes-vit", ["block 1"], "decoder"), r"'decoder' .* is not in the list of choices: \['backbone'"),
    (("/layer_swap", "shapes", ["block 1"], "backbone"), "Unknown layer 'block 1'"),
    (("/reconstruct_stages", "shapes-vit", False), "the tools serve detectors"),
])
def test_what_a_model_does_not_have_says_so_and_the_app_keeps_serving(client, image, call, message):
    api_name, *arguments = call
    arguments = [handle_file(str(image)) if value == "second" else value for value in arguments]
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(image)), *arguments, api_name=api_name)
    _, gallery, _, summary, _ = client.predict(handle_file(str(image)), "shapes", False, False, api_name="/stages")
    assert captions(gallery) == ["backbone", "encoder", "decoder", "prediction"] and "detected" in summary


def test_the_notice_says_what_a_classifier_gets(served):
    catalogue, _ = served
    vit, swin = model_notice(catalogue, "shapes-vit"), model_notice(catalogue, "shapes-swin")
    assert "is an image classifier, not a detector" in vit and "CLS token's attention per block" in vit
    assert "it has no CLS token" in swin and "the layer swap its blocks fed to the inverse of another" in swin
    assert "is an image classifier" not in model_notice(catalogue, "shapes")
    assert torch.is_tensor(catalogue.models["shapes-vit"].classifier.capture([Image.new("RGB", (8, 8))]).logits)
