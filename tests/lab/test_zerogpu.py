"""The app on ZeroGPU (issue 24), under the `spaces` package's own ZeroGPU mode (support/zerogpu_app.py: spaces
patches torch, books each call with a stand-in of ZeroGPU's device API, forks its worker, pickles arguments,
results and errors across and relays progress; only attaching a real GPU is left out).

Every GPU call of every tab is booked once, under the x-ip-token of the visitor who asked, with the cost
model's seconds, and runs in spaces' forked worker; a visitor over quota or without a free GPU gets their
own message and nobody else's work fails or waits for it; optimisations on the GPU run side by side.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from inversion.core.registry import read_space_config
from inversion.testing import save_standin, shapes_config, write_space_config
from lab import gpu
from lab.catalogue import load_catalogue
from support.paths import EXAMPLES, REPO
from support.raw_visitor import WAIT_S, RawVisitor, wait_for
from support.zerogpu import FakeDeviceAPI, visitor_headers, zero_gpu_app

pytestmark = pytest.mark.app

OPTIMISE_STEPS = 3
IMAGE, SECOND = EXAMPLES / "shapes_15.png", EXAMPLES / "shapes_05.png"
NO_ATTENTION_SETTINGS = (None, None, -1, None, None)  # decoder layer, encoder layer, head, point x, point y
ATTEND = {"attention": ("attention", 3, 3, -1, 10, 100, 0, "encoder", 0, 0, "encoder 1"),
          "transplant": ("transplant", *NO_ATTENTION_SETTINGS, 3, "backbone", 0, 0, "encoder 1"),
          "skip": ("skip", *NO_ATTENTION_SETTINGS, 0, "encoder", 0, 0, "decoder 2")}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zerogpu-models")
    entry = save_standin(folder / "shapes", shapes_config(), (128, 128))
    (folder / "checkpoints").symlink_to(REPO / "checkpoints")  # the bundled ViT's recorded name is a relative path
    models = {"shapes": {"label": "Shapes stand-in", **entry, "threshold": 0.0},
              "bare": {"label": "Stand-in without inverters", **entry, "inverters": None, "threshold": 0.0},
              "shapes-vit": read_space_config(REPO / "space_config.yaml")["models"]["shapes-vit"]}
    return write_space_config(folder / "space_config.yaml", models, default_model="shapes",
                              limits=read_space_config(REPO / "space_config.yaml")["limits"])


@pytest.fixture(scope="module")
def zero_gpu(config, tmp_path_factory):
    """(the device API, the app's process, its URL)."""
    with FakeDeviceAPI() as api, zero_gpu_app(config, tmp_path_factory.mktemp("zerogpu-app"), api,
                                              OPTIMISE_STEPS) as (process, url):
        yield api, process, url


@pytest.fixture(scope="module")
def models(config):
    """The same models in this process, for the seconds the cost model asks for."""
    catalogue = load_catalogue(config)
    gpu.count_costs(catalogue.models.values())
    return catalogue.models


def client(url: str, name: str) -> Client:
    return Client(url, verbose=False, headers=visitor_headers(name))


def calls(models):
    """Each GPU call of each tab: (visitor, endpoint, arguments, the seconds it must book, check of its result)."""
    shapes, bare, vit = models["shapes"], models["bare"], models["shapes-vit"]
    image, second = handle_file(str(IMAGE)), handle_file(str(SECOND))
    return [
        ("detect", "/detect", ("shapes", image), gpu.request_seconds(shapes, 1),
         lambda result: len(result[0]["annotations"]) == 16),
        ("stages", "/stages", (image, "shapes", False, False), gpu.stage_seconds(shapes, False, False),
         lambda result: len(result[1]) == 4 and result[2] == []),
        ("optimised stages", "/stages", (image, "bare", True, False), gpu.stage_seconds(bare, True, False, OPTIMISE_STEPS),
         lambda result: len(result[1]) == 4 and f"{OPTIMISE_STEPS} steps of L-BFGS" in result[3]),
        ("layer swap", "/layer_swap", (image, "shapes", ["encoder 1", "decoder 2"], "backbone"),
         gpu.request_seconds(shapes, 1, 2), lambda result: len(result[0]) == 2),
        ("perturb", "/perturb", (image, "shapes", 0, "box", "red", 90, False), gpu.perturb_seconds(shapes, False),
         lambda result: len(result[4]) == len(result[5]) == 4),
        ("optimised perturb", "/perturb", (image, "bare", 0, "box", "red", 90, True),
         gpu.perturb_seconds(bare, True, OPTIMISE_STEPS), lambda result: len(result[4]) == len(result[5]) == 4),
        ("attention", "/attend", (image, None, "shapes", *ATTEND["attention"]), gpu.request_seconds(shapes, 1),
         lambda result: len(result[1]) == 16),
        ("transplant", "/attend", (image, second, "shapes", *ATTEND["transplant"]), gpu.request_seconds(shapes, 3, 4),
         lambda result: "transplanted" in result[5] and len(result[6]) == 4),
        ("skip", "/attend", (image, image, "bare", *ATTEND["skip"]), gpu.request_seconds(bare, 2),
         lambda result: result[5].startswith("Without decoder layer 2")),
        ("classify", "/detect", ("shapes-vit", image), gpu.request_seconds(vit, 1),
         lambda result: result[0]["annotations"] == [] and result[1]["choices"] == []),
        ("classifier stages", "/stages", (image, "shapes-vit", True, False),
         gpu.request_seconds(vit, 1, gpu.classifier_reconstructions(vit, True)),
         lambda result: len(result[1]) == 8 and "Top classes: star 0.98" in result[3]),
        ("classifier perturb", "/perturb", (image, "shapes-vit", None, "image", "grey", 90, False),
         gpu.request_seconds(vit, 2, gpu.classifier_reconstructions(vit)),
         lambda result: len(result[4]) == len(result[5]) == 5 and len(result[3]["data"]) == 4),
        ("classifier attention", "/attend", (image, None, "shapes-vit", "attention", None, None, 1, None, None, 0,
                                             "encoder", 0, 0, None), gpu.request_seconds(vit, 1),
         lambda result: [item["caption"].split(",")[0] for item in result[1]] == ["block 1", "block 2", "block 3", "block 4"]),
        ("classifier skip", "/attend", (image, None, "shapes-vit", "skip", None, None, -1, None, None, 0, "encoder", 0, 0,
                                        "block 2"), gpu.request_seconds(vit, 2, gpu.classifier_reconstructions(vit)),
         lambda result: result[5].startswith("Without block 2") and len(result[6]) == 5),
        ("classifier layer swap", "/layer_swap", (image, "shapes-vit", ["block 0", "block 3"], "encoder"),
         gpu.request_seconds(vit, 1, 2),
         lambda result: [item["caption"].split(" ·")[0] for item in result[0]] == ["embedding as the encoder output",
                                                                                 "block 3 as the encoder output"]),
    ]


def test_every_gpu_call_runs_in_spaces_worker_booked_once_under_its_visitors_token(zero_gpu, models):
    api, process, url = zero_gpu
    tokenless = len(api.bookings_of(None))
    for name, endpoint, arguments, seconds, looks_right in calls(models):
        result = client(url, name).predict(*arguments, api_name=endpoint)
        assert looks_right(result), (name, result)
        bookings = api.bookings_of(name)
        assert [(booking.seconds, booking.answer) for booking in bookings] == [(seconds, "granted")], name
        assert (bookings[0].allow_token, False) in api.released, name  # released as done, not failed
    assert len(api.bookings_of(None)) == tokenless  # nothing booked without a token (on the Space's own quota)
    assert api.allowed_pids and process.pid not in api.allowed_pids  # the work ran in forked workers


def test_a_message_raised_in_the_worker_reaches_its_visitor_word_for_word(zero_gpu):
    api, _, url = zero_gpu
    image, second = handle_file(str(IMAGE)), handle_file(str(SECOND))
    transplant = ("transplant", *NO_ATTENTION_SETTINGS, 99, "encoder", 0, 0, "encoder 1")  # found in the worker
    with pytest.raises(AppError, match=r"There is no object 99 in the first image: the detector found 16"):
        client(url, "asks for too much").predict(image, second, "shapes", *transplant, api_name="/attend")
    (booking,) = api.bookings_of("asks for too much")
    assert (booking.allow_token, True) in api.released  # the GPU given back as failed


def test_progress_crosses_from_spaces_worker_to_the_page(zero_gpu):
    _, _, url = zero_gpu
    page = RawVisitor(url, "10.2.0.1", headers=visitor_headers("progress"))
    page.ask_for_optimised_stages("bare")
    wait_for(lambda: page.received("process_completed"), "the optimisation to finish")
    assert page.error() is None
    steps = [desc for desc in page.progress() if desc.startswith("optimising")]  # said in the worker only
    assert steps and steps[-1].endswith(f"step {OPTIMISE_STEPS}/{OPTIMISE_STEPS}"), page.progress()


def test_each_visitor_is_booked_and_refused_on_their_own(zero_gpu):
    """Concurrent learned stage requests: each visitor's own booking, and one's refusal reaches nobody else."""
    api, _, url = zero_gpu
    first, over, unlucky, fine = "first in line", "over quota", "no GPU free", "within quota"
    api.over_quota |= {over, None}  # None: a request without a token, booked on the Space's own quota
    api.no_gpu.add(unlucky)
    let_go = api.hold(first)  # the first request waits for its GPU while the others arrive
    image = handle_file(str(IMAGE))
    clients = {name: client(url, name) for name in (first, over, unlucky, fine)}
    clients[None] = Client(url, verbose=False, headers={"x-forwarded-for": "10.2.9.9"})
    tokenless = len(api.bookings_of(None))
    with ThreadPoolExecutor(len(clients)) as pool:
        jobs = {name: pool.submit(visitor.predict, image, "shapes", False, False, api_name="/stages")
                for name, visitor in clients.items()}
        wait_for(lambda: all(api.bookings_of(name) for name in (over, unlucky, fine)) or jobs[fine].done(),
                 "the others' bookings while the first waits for its GPU")
        let_go.set()
        for name in (first, fine):
            assert len(jobs[name].result(WAIT_S)[1]) == 4, name
        with pytest.raises(AppError, match=r"You have exceeded your ZeroGPU quota \(10s requested vs. 3s left\)"):
            jobs[over].result(WAIT_S)
        with pytest.raises(AppError, match="No GPU was available"):
            jobs[unlucky].result(WAIT_S)
        with pytest.raises(AppError, match="Space app has reached its GPU limit"):
            jobs[None].result(WAIT_S)
    assert {name: [booking.answer for booking in api.bookings_of(name)] for name in (first, over, unlucky, fine)} == {
        first: ["granted"], over: ["over quota"], unlucky: ["no GPU"], fine: ["granted"]}
    assert len(api.bookings_of(None)) == tokenless + 1


def test_optimisations_on_the_gpu_run_side_by_side(zero_gpu):
    """One visitor's optimisation waiting for its GPU does not keep the next visitor's from being booked."""
    api, _, url = zero_gpu
    let_go = api.hold("slow first")
    pages = [RawVisitor(url, f"10.2.1.{index}", headers=visitor_headers(name))
             for index, name in enumerate(["slow first", "slow second"])]
    try:
        for page in pages:
            page.ask_for_optimised_stages("bare")
        wait_for(lambda: api.bookings_of("slow second") or any(page.error() for page in pages),
                 "the second optimisation's booking", lambda: [page.progress()[-1:] for page in pages])
        assert len(api.bookings_of("slow second")) == 1 and not api.bookings_of("slow first")  # the first still waits
        let_go.set()
        for page in pages:
            wait_for(lambda page=page: page.received("process_completed"), "the optimisations to finish")
            assert page.error() is None
    finally:
        let_go.set()
        for page in pages:
            page.close()


def test_a_page_closed_while_zerogpu_queues_it_stops_alone(zero_gpu):
    """A visitor waiting in ZeroGPU's queue closes the page: spaces stops waiting for them, and another visitor's
    request is served meanwhile, not after (issue 24: the batch waited for, then failed with, its first visitor)."""
    api, _, url = zero_gpu
    let_go = api.queue("closes the page")
    page = RawVisitor(url, "10.2.3.1", headers=visitor_headers("closes the page"))
    pool = ThreadPoolExecutor(1)
    try:
        page.ask_for_stages("shapes")
        wait_for(lambda: api.bookings_of("closes the page"), "its booking to wait in ZeroGPU's queue")
        other = pool.submit(client(url, "served meanwhile").predict, handle_file(str(IMAGE)), "shapes", False, False,
                            api_name="/stages")
        assert len(other.result(WAIT_S)[1]) == 4
        page.close()
        (booking,) = api.bookings_of("closes the page")
        wait_for(lambda: booking.answer == "left the queue", "spaces to leave the queue for the closed page")
    finally:
        let_go.set()
        page.close()
        pool.shutdown(wait=False)
