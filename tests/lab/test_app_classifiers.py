"""The bundled Shapes classifiers (ViT, Swin) in the app beside the Shapes DETR, through gradio_client: each tab
shows the chosen classifier's own classes where a detector shows detections, its reconstructions from every
stage, the classes before and after a recolouring, the ViT's CLS attention and rollout; what serves detectors
only says so in one message, and the app keeps serving."""

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
from inversion.core.families.classifier_base import ClassifierChanges
from inversion.core.images import load_image
from inversion.core.registry import read_space_config
from inversion.experiments.classifier_attention import attention_rollout, cls_map
from inversion.experiments.colour import perturb
from inversion.figures import heat_overlay, model_line, result_card, save_card
from inversion.shapes.world import generate_sample
from inversion.testing import write_space_config
from lab import text
from lab.cards import card_link
from lab.links import from_query
from lab.page import model_notice
from lab.tabs import attend, stages
from lab.tabs.attend import enlarged
from support.app_server import serving
from support.paths import REPO

pytestmark = [pytest.mark.app, pytest.mark.slow]

PAGE = "http://127.0.0.1:7860/"  # the page address a card's link is made from
CLASSIFIERS = {"shapes-vit": "checkpoints/shapes/classifier-vit", "shapes-swin": "checkpoints/shapes/classifier-swin"}
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


@pytest.mark.parametrize("call, message", [
    (("/attend", None, "shapes-swin", "attention", None, None, -1, None, None, 0, "encoder", 0, 0, None),
     "a Swin attends within shifted windows and has no CLS token"),
    (("/attend", None, "shapes-vit", "skip", None, None, -1, None, None, 0, "encoder", 0, 0, "encoder 1"),
     "choose one of block 1, block 2, block 3, block 4"),
    (("/attend", "second", "shapes-vit", "transplant", None, None, -1, None, None, 0, "encoder", 0, 0, None),
     "a transplant moves a detector's object tokens into another image"),
    (("/layer_swap", "shapes-swin", [], "backbone"), "the layer swap feeds a DETR's encoder and decoder layers"),
    (("/reconstruct_stages", "shapes-vit", False), "the tools serve detectors"),
])
def test_what_serves_detectors_only_says_so_and_the_app_keeps_serving(client, image, call, message):
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
    assert "a Swin records no CLS attention" in swin and "is an image classifier" not in model_notice(catalogue, "shapes")
    assert torch.is_tensor(catalogue.models["shapes-vit"].classifier.capture([Image.new("RGB", (8, 8))]).logits)
