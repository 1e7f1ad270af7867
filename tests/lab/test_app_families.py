"""Every family in the app: a detector alone (no inverters) of each is served on every tab through gradio_client."""

import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from inversion.core.families import FAMILIES, family_for
from inversion.core.registry import read_space_config
from inversion.shapes.world import generate_sample
from inversion.testing import tiny_config, write_space_config
from support.app_server import serving
from support.paths import REPO

pytestmark = [pytest.mark.app, pytest.mark.slow]

MODEL_TYPES = [model_type for family in FAMILIES for model_type in family.model_types]
STAGES = ["backbone", "encoder", "decoder", "prediction"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The app serving one tiny random detector of each family, without inverters, every query a detection."""
    folder = tmp_path_factory.mktemp("families")
    models = {}
    for model_type in MODEL_TYPES:
        config = tiny_config(model_type)
        torch.manual_seed(0)
        family_for(config).model_class(config).save_pretrained(folder / model_type)
        models[model_type] = {"label": f"tiny {model_type}", "detector": str(folder / model_type), "revision": None,
                              "inverters": None, "working_size": [64, 96], "threshold": 0.0}
    limits = read_space_config(REPO / "space_config.yaml")["limits"]
    config = write_space_config(folder / "space_config.yaml", models, default_model=MODEL_TYPES[0], limits=limits)
    with serving(config, folder) as (_, url):
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "shapes.png"
    generate_sample(15)[0].save(path)
    return handle_file(str(path))


@pytest.mark.parametrize("model", MODEL_TYPES)
def test_every_tab_answers_for_every_family(client, image, model):
    annotated, gallery, _, summary, _ = client.predict(image, model, False, False, api_name="/stages")
    assert [item["caption"].split(" ·")[0] for item in gallery] == STAGES  # optimisation-based, from every stage
    assert "optimisation-based" in summary and len(annotated["annotations"]) == 6  # threshold 0: every query

    attending = family_for(model).sizes(tiny_config(model)).encoder_attention_layers  # RT-DETR: its AIFI layer only
    view, query_maps, point_map, *_ = client.predict(image, None, model, "attention", 2, attending, -1, 10, 20, 0, "encoder",
                                                     0, 0, "encoder 1", api_name="/attend")
    assert len(query_maps) == 6 and Image.open(point_map).width > 0
    decoder_free = family_for(model).name == "YOLOS"  # its detection tokens pass through the encoder's layers
    skipped = "encoder 1" if decoder_free else "decoder 1"
    *_, changes, summary, _, _ = client.predict(image, None, model, "skip", 2, 2, -1, None, None, 0, "encoder", 0, 0,
                                                skipped, api_name="/attend")
    assert summary.startswith(f"Without {skipped.replace(' ', ' layer ')}: ") and len(changes["data"]) >= 6
    if decoder_free:  # what it lacks is answered in words
        with pytest.raises(AppError, match="skip an encoder layer instead"):
            client.predict(image, None, model, "skip", 2, 2, -1, None, None, 0, "encoder", 0, 0, "decoder 1",
                           api_name="/attend")
        with pytest.raises(AppError, match="no decoder reading an encoder output"):
            client.predict(image, image, model, "transplant", 2, 2, -1, None, None, 0, "encoder", 0, 0, "encoder 1",
                           api_name="/attend")
    for at in ("backbone",) if decoder_free else ("backbone", "encoder"):
        _, _, _, after, changes, summary, _, _ = client.predict(image, image, model, "transplant", 2, 2, -1, None, None, 0,
                                                                at, 0, 0, "encoder 1", api_name="/attend")
        assert len(after["annotations"]) == 6 and changes["headers"][-1] == "what happened"

    gallery, heat_map, _ = client.predict(image, model, ["encoder 1"], "backbone", api_name="/layer_swap")
    assert gallery == [] and Image.open(heat_map).size[0] > 300
    *_, changes, original_gallery, perturbed_gallery, _ = client.predict(image, model, None, "image", "grey", 90, False,
                                                                         api_name="/perturb")
    assert changes["data"] and original_gallery == perturbed_gallery == []
