"""The app served in this process (random-weight stand-ins) and driven through gradio_client.

Every endpoint, the bad inputs of issue 4 (each gets a clear message or a correct result, and
the app serves the next request), links, the on-screen notices, and the Space front matter.
"""

import io
import re

import gradio
import httpx
import numpy as np
import pytest
import yaml
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from inversion.core.hub import is_hub_id
from inversion.core.images import load_image
from inversion.core.registry import model_specs
from inversion.core.stages import STAGE_SOURCES
from inversion.optimisation.cost import zero_gpu_duration
from inversion.shapes.world import generate_sample
from lab import gpu, service
from lab.catalogue import load_catalogue
from lab.links import LinkState, from_query, to_query
from lab.page import model_notice
from support.app_server import OPTIMISE_STEPS, serving, standin_config
from support.paths import EXAMPLES, REPO

pytestmark = pytest.mark.app

STAGES = ["backbone", "encoder", "decoder", "prediction"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(the catalogue, the app's URL)."""
    folder = tmp_path_factory.mktemp("app")
    with serving(standin_config(folder), folder) as catalogue_and_url:
        yield catalogue_and_url


@pytest.fixture(scope="module")
def client(served):
    return Client(served[1], verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The awkward inputs of issue 4, written once."""
    folder = tmp_path_factory.mktemp("inputs")
    shapes, _ = generate_sample(15)
    paths = {"shapes": folder / "shapes.png"}
    shapes.save(paths["shapes"])
    (folder / "notes.txt").write_text("not an image")
    paths["text"] = folder / "notes.txt"
    full = io.BytesIO()
    shapes.save(full, format="PNG")
    (folder / "truncated.png").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    paths["truncated"] = folder / "truncated.png"
    Image.new("L", (7000, 6000), 128).save(folder / "huge.png")  # 42 megapixels
    paths["huge"] = folder / "huge.png"
    for mode in ("RGBA", "LA", "P"):
        paths[mode] = folder / f"{mode}.png"
        shapes.convert(mode).save(paths[mode])
    paths["I;16"] = folder / "sixteen.png"
    Image.fromarray(np.asarray(shapes.convert("L"), dtype=np.uint16) * 257).save(paths["I;16"])
    paths["CMYK"] = folder / "cmyk.jpg"
    shapes.convert("CMYK").save(paths["CMYK"])
    paths["exif"] = folder / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (200, 100), (200, 40, 40)).save(paths["exif"], exif=exif)
    paths["tiny"] = folder / "one.png"
    Image.new("RGB", (1, 1), (0, 128, 255)).save(paths["tiny"])
    return paths


def stages(client, path, model="shapes", all_layers=False, optimised=False):
    return client.predict(handle_file(str(path)), model, all_layers, optimised, api_name="/stages")


def attend(client, first, second=None, model="shapes", action="attention", decoder_layer=3, encoder_layer=3, head=-1,
           point=(None, None), object_index=0, at="encoder", offset=(0, 0), skip="encoder 1"):
    """The attention tab's request: (view, query maps, point map, after, changes, summary, reconstructions, link)."""
    return client.predict(handle_file(str(first)), None if second is None else handle_file(str(second)), model, action,
                          decoder_layer, encoder_layer, head, *point, object_index, at, *offset, skip, api_name="/attend")


def check_stage_result(result, size=None):
    annotated, gallery, optimised_gallery, summary, query = result
    assert optimised_gallery == []
    assert [item["caption"].split(" ·")[0] for item in gallery] == STAGES
    assert all(re.search(r"PSNR \d+\.\d dB · SSIM -?\d\.\d\d", item["caption"]) for item in gallery)
    if size is not None:
        assert Image.open(annotated["image"]).size == size
        assert all(Image.open(item["image"]).size == size for item in gallery)
    return summary, query


def test_every_endpoint_answers(client, files):
    # the API page shows the tools (lab.tools); the tabs' own events stay callable (PAGE_ONLY), as below
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(endpoints) == {"/detect_objects", "/reconstruct_stages", "/attention_maps", "/colour_perturbation",
                              "/skip_layer"}

    summary, query = check_stage_result(stages(client, files["shapes"], all_layers=False), size=(128, 128))
    assert summary.startswith("16 detected")
    _, gallery, _, _, _ = stages(client, files["shapes"], all_layers=True)
    assert len(gallery) == 4 + 2 * 4

    gallery, heat_map, query = client.predict(handle_file(str(files["shapes"])), "shapes",
                                              ["encoder 1", "decoder 3"], "encoder", api_name="/layer_swap")
    assert [item["caption"].split(" ·")[0] for item in gallery] == ["encoder 1", "decoder 3"]
    assert Image.open(heat_map).width > 300
    assert from_query(_params(query), ["shapes"], []).swap == ["encoder 1", "decoder 3"]

    annotated, objects = client.predict("shapes", handle_file(str(files["shapes"])), api_name="/detect")
    assert len(annotated["annotations"]) == len(objects["choices"]) == 16

    result = client.predict(handle_file(str(files["shapes"])), "shapes", 2, "box", "rotate240", 90, False,
                            api_name="/perturb")
    original, objects, perturbed, changes, original_gallery, perturbed_gallery, query = result
    assert objects["value"] == 2
    assert len(changes["data"]) >= 16 and changes["headers"][-1] == "what happened"
    assert [item["caption"].split(" ·")[0] for item in perturbed_gallery] == STAGES
    before, after = np.asarray(Image.open(original["image"])), np.asarray(Image.open(perturbed["image"]))
    assert (before != after).any()
    state = from_query(_params(query), ["shapes"], [])
    assert (state.tab, state.object, state.mask, state.perturbation) == ("perturb", 2, "box", "rotate240")

    digits, summary, plot, query = client.predict("fc-s", 4, 0.0, api_name="/tradeoff")
    assert _params(query) == {"tab": "tradeoff", "arch": "fc-s", "latent": "4", "lam": "0"}
    assert Image.open(digits).size == (10 * 8 * 12 + 9 * 2 * 12, (2 * 8 + 2) * 12)  # ten test digits over their reconstructions
    accuracy = float(summary.split("test accuracy ")[1].split("%")[0])
    assert 50 < accuracy <= 100 and "λ = 0" in summary


@pytest.mark.parametrize("name, message", [
    ("text", "is not an image we can read"),
    ("truncated", "truncated or corrupt"),
    ("huge", "over the 40 megapixel limit"),
])
def test_bad_files_get_a_clear_message_and_the_app_keeps_serving(client, files, name, message):
    with pytest.raises(AppError, match=message):
        stages(client, files[name])
    check_stage_result(stages(client, files["shapes"]))


@pytest.mark.parametrize("name", ["RGBA", "LA", "P", "I;16", "CMYK"])
def test_odd_modes_are_reconstructed(client, files, name):
    check_stage_result(stages(client, files[name]), size=(128, 128))


def test_exif_rotation_is_applied_and_a_single_pixel_works(client, files):
    check_stage_result(stages(client, files["exif"]), size=(64, 128))  # stored 200x100, displayed 100x200
    check_stage_result(stages(client, files["tiny"]), size=(128, 128))


def test_no_detection_is_explained(served, client, files):
    detector = served[0].models["shapes"].detector
    threshold, detector.threshold = detector.threshold, 1.0
    try:
        summary, _ = check_stage_result(stages(client, files["shapes"]))
        assert summary.startswith("No object detected")
        with pytest.raises(AppError, match="no object.*the whole image"):
            client.predict(handle_file(str(files["shapes"])), "shapes", 0, "grabcut", "red", 90, False, api_name="/perturb")
        result = client.predict(handle_file(str(files["shapes"])), "shapes", None, "image", "grey", 90, False,
                                api_name="/perturb")
        assert result[3]["data"] == []
    finally:
        detector.threshold = threshold


@pytest.mark.parametrize("call, message", [
    (lambda c, f: stages(c, f, model="nonsense"), "nonsense is not in the list of choices"),
    (lambda c, f: c.predict(None, "shapes", False, False, api_name="/stages"), "Upload an image"),
    (lambda c, f: c.predict(handle_file(str(f)), "shapes", [], "backbone", api_name="/layer_swap"), "at least one"),
    (lambda c, f: c.predict(handle_file(str(f)), "shapes", 40, "box", "red", 90, False, api_name="/perturb"),
     "no object 40"),
    (lambda c, f: c.predict(handle_file(str(f)), "shapes", 0, "box", "hue", 400, False, api_name="/perturb"),
     "greater than maximum value 179"),
])
def test_bad_requests_get_a_clear_message(client, files, call, message):
    with pytest.raises(AppError, match=message):
        call(client, files["shapes"])
    check_stage_result(stages(client, files["shapes"]))


def test_learned_and_optimised_reconstructions_side_by_side(client, files):
    _, gallery, optimised_gallery, summary, _ = stages(client, files["shapes"], optimised=True)
    assert [item["caption"].split(" ·")[0] for item in gallery] == STAGES
    assert [item["caption"].split(" ·")[0] for item in optimised_gallery] == STAGES
    assert all(re.search(r"PSNR \d+\.\d dB · SSIM -?\d\.\d\d", item["caption"]) for item in optimised_gallery)
    assert all(Image.open(item["image"]).size == (128, 128) for item in optimised_gallery)
    assert "The second row is optimisation-based: 3 steps" in summary  # OPTIMISE_STEPS of the test server


def test_a_model_without_inverters_is_reconstructed_by_optimisation(client, files):
    _, gallery, optimised_gallery, summary, _ = stages(client, files["exif"], model="bare")
    assert [item["caption"].split(" ·")[0] for item in gallery] == STAGES
    assert all(Image.open(item["image"]).size == (64, 128) for item in gallery) and optimised_gallery == []
    assert "has no trained inverters yet, so these reconstructions are optimisation-based" in summary


def test_the_gpu_budget_comes_from_the_cost_model(served):
    shapes, bare = served[0].models["shapes"], served[0].models["bare"]
    cost = gpu.model_cost(shapes)
    assert cost.capture_flops > 0 and cost.reconstruction_flops > 0 and gpu.model_cost(bare).reconstruction_flops == 0
    assert gpu.stage_seconds(shapes, False, False, OPTIMISE_STEPS) == gpu.request_seconds(shapes, 1, 4)
    assert gpu.stage_seconds(shapes, True, True, OPTIMISE_STEPS) == gpu.request_seconds(shapes, 1, 20, OPTIMISE_STEPS)
    assert gpu.stage_seconds(bare, True, False, OPTIMISE_STEPS) == gpu.request_seconds(bare, 1, 0, OPTIMISE_STEPS)
    many = 10**4  # steps enough to lift a 128 x 128 request over ZeroGPU's minimum duration
    assert gpu.request_seconds(shapes, 1, 0, many) == zero_gpu_duration(
        cost.capture_flops + many * cost.step_flops(STAGE_SOURCES), many) > gpu.request_seconds(shapes, 1, 0, 48)
    assert gpu.perturb_seconds(bare, True, many) > gpu.perturb_seconds(bare, False, many) == gpu.request_seconds(bare, 2)


def test_an_example_is_named_in_the_link(client):
    _, query = check_stage_result(stages(client, EXAMPLES / "shapes_15.png"))
    assert _params(query) == {"model": "shapes", "example": "shapes_15.png"}
    *_, query = stages(client, EXAMPLES / "shapes_15.png", optimised=True)
    assert _params(query) == {"model": "shapes", "example": "shapes_15.png", "optimised": "1"}


def test_a_link_restores_model_tab_example_and_settings():
    query = "?model=shapes&tab=perturb&example=shapes_05.png&object=1&mask=box&perturbation=hue&hue=33"
    state = from_query(_params(query), ["shapes"], ["shapes_05.png"])
    assert state == LinkState(model="shapes", tab="perturb", example="shapes_05.png", object=1, mask="box",
                              perturbation="hue", hue=33)
    junk = from_query({"model": "gpt", "tab": "x", "example": "../secret", "hue": "-4", "object": "²", "swap": "e²,d1"},
                      ["shapes"], ["shapes_05.png"])
    assert junk == LinkState(swap=["decoder 1"])


def test_link_state_round_trips():
    state = LinkState(model="shapes", tab="swap", example="cat.png", swap=["encoder 2", "decoder 0"], entry="encoder")
    assert from_query(_params(to_query(state)), ["shapes"], ["cat.png"]) == state
    assert to_query(LinkState()) == "?"


def test_the_page_says_what_is_missing(served):
    """In a visitor's words: what is missing, what still works, what to do; the technical cause only in the log."""
    config = httpx.get(served[1] + "config").text
    assert "DETR-R50 on COCO (facebook/detr-resnet-50)** is not available right now" in config
    assert "which this server cannot reach" in config and "works with **Shapes stand-in" in config
    assert "Connect to the internet and start it again" in config
    assert not re.search(r"Could not fetch|WeightsNotFound|LocalEntryNotFoundError", config)
    assert "has no trained inverters yet" in model_notice(served[0], "bare")


def test_the_log_keeps_the_technical_cause(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="lab.catalogue"):
        catalogue = load_catalogue(standin_config(tmp_path))
    assert "WeightsNotFound: Could not fetch 'facebook/detr-resnet-50'" in caplog.text
    assert "LocalEntryNotFoundError" in caplog.text
    assert not any("LocalEntryNotFoundError" in notice for notice in catalogue.problems.values())


def test_space_front_matter_matches_space_config():
    text = (REPO / "README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and (REPO / "app.py").is_file()
    assert front["sdk_version"] == gradio.__version__
    assert f"gradio[mcp]=={front['sdk_version']}" in (REPO / "requirements.txt").read_text()  # with its MCP server
    assert front["python_version"].startswith("3.12.")
    assert front["suggested_hardware"].startswith("zero-")
    hub_repos = {
        repo for spec in model_specs().values() for repo in (spec.detector, spec.inverters)
        if repo is not None and is_hub_id(repo)
    }
    assert set(front["models"]) == hub_repos
    pinned = {f"{spec.detector} config.json,model.safetensors {spec.revision}" for spec in model_specs().values()
              if is_hub_id(spec.detector)}
    assert set(front["preload_from_hub"]) == pinned  # the Space downloads the pinned detector at build time


def _params(query: str) -> dict:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query.lstrip("?")))


def test_requests_are_checked_before_the_gpu(client, files):
    with pytest.raises(AppError, match=r"Choose a model: shapes, bare \(got None\)"):
        client.predict(handle_file(str(files["shapes"])), None, False, False, api_name="/stages")
    with pytest.raises(AppError, match="tick box: send true or false"):
        client.predict(handle_file(str(files["shapes"])), "shapes", "no", False, api_name="/stages")
    with pytest.raises(AppError, match="maximum value 179"):  # Gradio's slider; NaN: see test_requests.py
        client.predict(handle_file(str(files["shapes"])), "shapes", 0, "image", "hue", 400, False, api_name="/perturb")
    check_stage_result(stages(client, files["shapes"]))  # and the next request is served


@pytest.mark.parametrize("settings, message", [
    ({"action": "nonsense"}, "'nonsense' .* is not in the list of choices"),  # Gradio checks radio buttons
    ({"decoder_layer": 4}, "Decoder layer of the detections' maps: choose one of 1, 2, 3"),
    ({"encoder_layer": 1.5}, "Encoder layer of the point's map must be a whole number"),
    ({"head": 8}, "Head: choose one of -1, 0, 1"),
    ({"point": (3, "x")}, "Expected a `float | None`"),  # Gradio checks numbers
    ({"action": "transplant"}, "needs a second image"),
    ({"action": "transplant", "second": "shapes", "object_index": 99}, "no object 99 in the first image"),
    ({"action": "transplant", "second": "shapes", "at": "decoder"}, "'decoder' .* is not in the list of choices"),
    ({"action": "transplant", "second": "shapes", "offset": (0, 40)}, "would leave the image receiving them"),
    ({"action": "skip", "skip": "encoder 4"}, "Layer to skip .*: choose one of encoder 1, encoder 2"),
])
def test_bad_attention_requests_say_what_to_change(client, files, settings, message):
    if settings.get("second"):
        settings = {**settings, "second": files["shapes"]}
    with pytest.raises(AppError, match=message):
        attend(client, files["shapes"], **settings)
    assert attend(client, files["shapes"])[5].startswith("16 detected")  # and the next request is served


def test_the_attention_tab_shows_maps_and_interventions(client, files):
    view, query_maps, point_map, after, changes, summary, panels, query = attend(client, files["shapes"], head=2,
                                                                                 point=(10, 100))
    assert len(view["annotations"]) == len(query_maps) == 16 and changes["data"] == [] and panels == []
    assert all(re.fullmatch(r"\d+: .+ \d\.\d\d · \d+% inside its box", item["caption"]) for item in query_maps)
    assert Image.open(point_map).width == 640 and "head 2: attention from the cell at (10, 100)" in summary
    shown = {"model": "shapes", "example": "shapes_15.png", "tab": "attend"}  # files["shapes"] is that example
    assert _params(query) == {**shown, "head": "2", "point_x": "10", "point_y": "100"}

    view, query_maps, _, after, changes, summary, panels, query = attend(
        client, files["shapes"], EXAMPLES / "shapes_05.png", action="transplant", object_index=3, at="backbone")
    assert query_maps == [] and len(after["annotations"]) == 16 and changes["headers"][-1] == "what happened"
    assert [item["caption"].split(" ·")[0] for item in panels] == STAGES
    assert "The first image's 3: " in summary and "at the backbone map at the same place" in summary
    assert _params(query) == {**shown, "action": "transplant", "second": "shapes_05.png", "object": "3", "at": "backbone"}

    *_, changes, summary, panels, query = attend(client, files["shapes"], model="bare", action="skip", skip="decoder 2")
    assert summary.startswith("Without decoder layer 2: ") and "need trained inverters" in summary and panels == []
    assert len(changes["data"]) >= 16
    assert _params(query) == {**shown, "model": "bare", "action": "skip", "skip": "d2"}


def test_uploads_over_the_limit_are_refused(client, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(21_000_000))  # over space_config.yaml's 20 MB
    with pytest.raises(Exception, match="(?i)file.*(size|large)|413|exceed"):
        client.predict(handle_file(str(big)), "shapes", False, False, api_name="/stages")


def test_results_are_the_models_pixels_in_png(served, client, files):
    """A visitor downloads the detector's view and each reconstruction losslessly: PNG files of the service's pixels."""
    catalogue, _ = served
    view, gallery, *_ = stages(client, files["shapes"])
    image = load_image(files["shapes"], catalogue.limits.max_megapixels)
    expected = service.learned_stages(catalogue.models["shapes"], [image])[0]
    computed = [expected.input.view, *(panel.image for panel in expected.panels)]
    for path, pixels in zip([view["image"], *(item["image"] for item in gallery)], computed, strict=True):
        with Image.open(path) as shown:
            assert shown.format == "PNG"
            assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(pixels))


def test_only_the_example_images_are_served(served):
    assert httpx.get(served[1] + "gradio_api/file=" + str(EXAMPLES / "shapes_15.png")).status_code == 200
    assert httpx.get(served[1] + "gradio_api/file=" + str(EXAMPLES / "PROVENANCE.md")).status_code == 403


def test_a_model_without_inverters_still_answers_layer_swap_and_perturbation(client, files):
    gallery, heat_map, _ = client.predict(handle_file(str(files["shapes"])), "bare", ["encoder 1"], "backbone",
                                          api_name="/layer_swap")
    assert gallery == [] and Image.open(heat_map).size[0] > 300  # the similarity map, no reconstructions
    original, _, perturbed, changes, original_gallery, perturbed_gallery, _ = client.predict(
        handle_file(str(files["shapes"])), "bare", None, "image", "grey", 90, False, api_name="/perturb")
    assert changes["data"] and original_gallery == perturbed_gallery == []


def test_the_attention_tabs_gpu_calls_ask_for_their_work(served):
    shapes, bare = served[0].models["shapes"], served[0].models["bare"]
    assert gpu.request_seconds(shapes, 3, 4) >= gpu.request_seconds(bare, 3) >= gpu.request_seconds(bare, 1)


def test_a_card_before_any_result_says_what_to_do(client):
    with pytest.raises(AppError, match="no result in this tab yet"):
        client.predict("", "", None, [], [], api_name="/stages_card")


@pytest.mark.parametrize("endpoint", ["/stages_card", "/swap_card", "/perturb_card", "/tradeoff_card", "/attend_card"])
def test_a_card_of_a_file_that_is_not_an_image_says_so(client, files, endpoint):
    """Each card endpoint, every picture it reads sent as a text file (issue 24: Gradio's raw "Could not preprocess")."""
    text_file = handle_file(str(files["text"]))
    shown = {"image": text_file, "annotations": [{"image": text_file, "label": "0: square 0.90"}]}
    table = {"headers": ["before", "after", "score change", "what happened"], "data": [["a", "b", "+0.10", "lost"]]}
    pictures = [{"image": text_file, "caption": "backbone · PSNR 9.9 dB · SSIM 0.10"}]
    values = {"/stages_card": [shown, pictures, pictures], "/swap_card": [text_file, pictures],
              "/perturb_card": [shown, shown, table, pictures, pictures], "/tradeoff_card": [text_file, "**accuracy**"],
              "/attend_card": [shown, pictures, text_file, shown, table, pictures]}[endpoint]
    tab = endpoint.strip("/").removesuffix("_card")
    with pytest.raises(AppError, match="one of the files sent for it is not an image"):
        client.predict("http://127.0.0.1:7860/", f"?tab={tab}&model=shapes&action=attention", *values, api_name=endpoint)
