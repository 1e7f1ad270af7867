"""The app as an MCP server: the tools an assistant lists, their typed parameters, and the pictures they return.

The app (random-weight stand-ins) is served on loopback in this process and driven with the `mcp`
package's own client over streamable HTTP, as an assistant would reach the Space.
"""

import asyncio
import base64
import io

import httpx
import numpy as np
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from PIL import Image

from inversion.shapes.world import generate_sample
from support.app_server import serving, standin_config

pytestmark = pytest.mark.app

TOOLS = {"detect_objects", "reconstruct_stages", "attention_maps", "colour_perturbation", "skip_layer"}
CARD_SIZE = (1920, 1080)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcp")
    with serving(standin_config(folder), folder) as (_, address):
        yield address


@pytest.fixture(scope="module")
def url(app_url):
    return app_url + "gradio_api/mcp/"


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def session_call(url: str, action):
    """Run `action(session)` in an MCP client session on the app."""

    async def run():
        async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            return await action(session)

    return asyncio.run(run())


def call(url: str, tool: str, **arguments):
    """A tool's result: (error flag, the images it returned, its texts)."""
    result = session_call(url, lambda session: session.call_tool(tool, arguments))
    images = [Image.open(io.BytesIO(base64.b64decode(part.data))).convert("RGB") for part in result.content if part.type == "image"]
    return result.isError, images, [part.text for part in result.content if part.type == "text"]


def test_the_tools_are_the_app_actions_typed_and_described(url):
    tools = {tool.name: tool for tool in session_call(url, lambda session: session.list_tools()).tools}
    assert set(tools) == TOOLS  # the tabs' own events and the card buttons are not tools
    for tool in tools.values():
        properties = tool.inputSchema["properties"]
        assert tool.inputSchema["required"] == ["image"]
        assert properties["image"]["type"] == "string" and "url" in properties["image"]["format"]
        assert properties["model"]["enum"] == ["shapes", "bare"]  # the models served (DETR-R50 did not load)
        assert all(parameter.get("description") for parameter in properties.values())
        assert len(tool.description) > 150
    stages = tools["reconstruct_stages"].inputSchema["properties"]
    assert stages["every_layer"]["type"] == "boolean"
    perturb = tools["colour_perturbation"].inputSchema["properties"]
    assert set(perturb["perturbation"]["enum"]) == {"red", "green", "blue", "rotate120", "rotate240", "grey", "hue"}
    assert perturb["mask"]["enum"] == ["grabcut", "box", "image"]
    skip = tools["skip_layer"].inputSchema["properties"]
    assert skip["stage"]["enum"] == ["encoder", "decoder"] and skip["layer"]["type"] == "integer"
    assert {"decoder_layer", "encoder_layer", "head", "point_x", "point_y"} <= set(tools["attention_maps"].inputSchema["properties"])


def picture_bands(card: Image.Image) -> list[np.ndarray]:
    """The card's rows of pictures, top first: bands over 100 pixels tall where most of each pixel row is not white
    (the title, captions and lines of text are thinner or sparser)."""
    pixels = np.asarray(card, dtype=np.int16)
    dense = (pixels < 245).any(axis=-1).mean(axis=1) > 0.3
    edges = np.flatnonzero(np.diff(np.concatenate([[0], dense.astype(int), [0]])))
    return [pixels[start:end] for start, end in zip(edges[::2], edges[1::2]) if end - start > 100]


def blue_share(pixels: np.ndarray) -> float:
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return float(((blue > red + 60) & (blue > green + 60)).mean())


def test_reconstruction_and_perturbation_return_their_cards(url):
    shapes, _ = generate_sample(15)
    failed, images, _ = call(url, "reconstruct_stages", image=data_url(shapes), model="shapes")
    assert not failed and len(images) == 1 and images[0].size == CARD_SIZE
    assert len(picture_bands(images[0])) == 1  # the input and the four stages' reconstructions
    failed, images, _ = call(url, "reconstruct_stages", image=data_url(shapes), model="shapes", every_layer=True)
    assert not failed and len(picture_bands(images[0])) == 2  # and every layer's: 13 pictures, 7 a row

    failed, images, _ = call(url, "colour_perturbation", image=data_url(shapes), model="shapes", mask="image",
                             perturbation="blue")
    assert not failed and images[0].size == CARD_SIZE
    original_row, perturbed_row = picture_bands(images[0])
    # the perturbed image, whole, turned blue (measured: 2.2% of its row strongly blue, none of the original row)
    assert blue_share(perturbed_row) > 0.015 and blue_share(original_row) < 0.001


def test_a_bad_call_gets_the_apps_message(url):
    failed, _, texts = call(url, "colour_perturbation", image=data_url(generate_sample(15)[0]), model="shapes",
                            object_index=99)
    assert failed and "There is no object 99" in " ".join(texts)
    failed, _, texts = call(url, "skip_layer", image=data_url(generate_sample(15)[0]), model="shapes", stage="decoder",
                            layer=9)
    assert failed and "decoder layer" in " ".join(texts)
    failed, _, texts = call(url, "detect_objects", image="data:image/png;base64," + base64.b64encode(b"not a picture").decode())
    assert failed and "is not an image we can read" in " ".join(texts)


def call_over_http(app_url: str, endpoint: str, data: list) -> str:
    """A raw call of an endpoint over Gradio's HTTP API (no client to upload files on the way): its event stream."""
    event = httpx.post(f"{app_url}gradio_api/call/{endpoint}", json={"data": data}, timeout=30).json()["event_id"]
    return httpx.get(f"{app_url}gradio_api/call/{endpoint}/{event}", timeout=120).text


def test_a_tool_reads_only_uploaded_files(app_url, tmp_path):
    """The tools take their image as Gradio's file data, unprocessed: Gradio must still refuse a path on the
    server that was never uploaded (a caller naming one of the server's files)."""
    private = tmp_path / "private.png"
    generate_sample(15)[0].save(private)
    refused = call_over_http(app_url, "detect_objects", [{"path": str(private), "meta": {"_type": "gradio.FileData"}}, "shapes"])
    assert "event: error" in refused and "because it was not uploaded by a user" in refused
    uploaded = httpx.post(f"{app_url}gradio_api/upload", files={"files": private.open("rb")}, timeout=30).json()[0]
    read = call_over_http(app_url, "detect_objects", [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}, "shapes"])
    assert "event: complete" in read
