"""The app under a crowd (issue 11), through gradio_client and raw HTTP with real threads, on loopback only:
concurrent stage requests are batched and each gets its own correct result; one visitor cannot fill the
queue; slow work waits in its own lane without starving plain requests; a closed page stops its work.

Every wait is bounded (WAIT_S): a regression fails the test instead of hanging it.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import gradio as gr
import pytest
from gradio_client import Client, handle_file

from inversion.shapes.world import generate_sample
from lab import admission, service
from lab.admission import SLOW_RUNNING, SLOW_WAITING, VISITOR_LIMIT, bounded_queue, visitor
from lab.server import LOOPBACK, free_port
from support.app_server import serving, standin_config
from support.paths import EXAMPLES
from support.raw_visitor import WAIT_S, RawVisitor, wait_for

pytestmark = pytest.mark.app

CLIENTS = 12  # threads, each with its own Client: a room opening one shared link
SLOW_STEPS = 1_000_000  # optimisation steps per stage for the slow-lane tests: never finishes by itself


@pytest.fixture(autouse=True)
def behind_the_spaces_proxy(monkeypatch):
    """These tests stand for the Space's proxy: the last x-forwarded-for address they send is each visitor's."""
    monkeypatch.setattr(admission, "BEHIND_PROXY", True, raising=False)


def test_the_visitor_is_the_address_the_proxy_appended_and_nothing_the_client_chose(monkeypatch):
    assert visitor({"x-forwarded-for": "made-up, 10.0.0.1"}, "10.200.0.1") == "10.0.0.1"  # the proxy appends its own
    assert visitor({"x-ip-token": "abc", "x-forwarded-for": "1.2.3.4"}, "10.200.0.1") == "1.2.3.4"  # a token is the client's
    assert visitor({}, "10.200.0.1") == "10.200.0.1"
    monkeypatch.setattr(admission, "BEHIND_PROXY", False, raising=False)  # no proxy in front: every header is the client's own
    assert visitor({"x-forwarded-for": "1.2.3.4", "x-ip-token": "abc"}, "127.0.0.1") == "127.0.0.1"


def as_visitor(url: str, address: str) -> Client:
    return Client(url, verbose=False, headers={"x-forwarded-for": address})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    with serving(standin_config(folder), folder) as catalogue_and_url:
        yield catalogue_and_url


def test_concurrent_stage_requests_are_batched_and_each_gets_its_own_result(served, monkeypatch, tmp_path):
    catalogue, url = served
    images = []
    for seed in range(CLIENTS // 2):
        images.append(tmp_path / f"shapes-{seed}.png")
        generate_sample(seed)[0].save(images[-1])
    images += [EXAMPLES / "shapes_15.png"] * (CLIENTS - len(images))  # half the room sends one image
    alone = {}
    for path in set(images):  # each image's result when it is the only request
        _, gallery, _, summary, _ = as_visitor(url, "10.0.0.1").predict(
            handle_file(str(path)), "shapes", False, False, api_name="/stages")
        alone[path] = ([item["caption"] for item in gallery], summary)

    detector = catalogue.models["shapes"].detector
    forwards, capture = [], detector.capture
    monkeypatch.setattr(detector, "capture", lambda batch: forwards.append(len(batch)) or capture(batch))
    clients = [as_visitor(url, f"10.0.1.{index}") for index in range(CLIENTS)]
    start_line = threading.Barrier(CLIENTS)

    def visit(index):
        start_line.wait(WAIT_S)
        results = []
        for _ in range(2):
            _, gallery, _, summary, _ = clients[index].predict(handle_file(str(images[index])), "shapes", False, False,
                                                               api_name="/stages")
            results.append(([item["caption"] for item in gallery], summary))
        return results

    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = [future.result(WAIT_S) for future in [pool.submit(visit, index) for index in range(CLIENTS)]]
    for index, results in enumerate(outcomes):
        assert results == [alone[images[index]]] * 2  # the same captions (PSNR, SSIM) and detections as alone
    requests = 2 * CLIENTS
    assert sum(forwards) < requests  # identical images computed once
    assert len(forwards) <= requests // 2, forwards  # concurrent requests share detector forwards


@contextmanager
def holding_app():
    """An app whose requests named "greedy..." wait until the yielded event is set: (URL, event)."""
    release = threading.Event()

    def hold(name):
        if name.startswith("greedy"):
            release.wait(WAIT_S)
        return name

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(hold, box, out, api_name="hold", concurrency_limit=None)
    bounded_queue(demo)
    port = free_port()
    demo.launch(server_name=LOOPBACK, server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://{LOOPBACK}:{port}/", release
    finally:
        release.set()
        demo.close(verbose=False)


def test_one_visitor_cannot_fill_the_queue_for_others():
    with holding_app() as (url, release):
        greedy = RawVisitor(url, "10.9.9.9")  # joins without a stream: its requests stay in the queue
        for index in range(VISITOR_LIMIT):
            assert greedy.join("hold", [f"greedy {index}"]).status_code == 200
        refused = greedy.join("hold", ["greedy again"])
        assert refused.status_code == 422 and f"already have {VISITOR_LIMIT} requests" in refused.text
        with pytest.raises(Exception, match=f"already have {VISITOR_LIMIT} requests waiting or running"):
            as_visitor(url, "10.0.0.2, 10.9.9.9").predict("greedy, posing as 10.0.0.2", api_name="/hold")
        assert as_visitor(url, "10.8.8.8").predict("patient", api_name="/hold") == "patient"  # another visitor
        release.set()
        deadline = time.monotonic() + WAIT_S
        while greedy.join("hold", ["greedy later"]).status_code != 200:  # served again once its requests finished
            assert time.monotonic() < deadline
            time.sleep(0.1)


@pytest.mark.parametrize("behind_proxy", [True, False])
def test_made_up_addresses_do_not_make_one_client_a_crowd(monkeypatch, behind_proxy):
    """Sixteen requests from one client, each with an address of its own making, are one visitor's (issue 24)."""
    monkeypatch.setattr(admission, "BEHIND_PROXY", behind_proxy, raising=False)
    proxy = ", 10.7.7.7" if behind_proxy else ""  # what the Space's proxy appends; without one, nothing
    source = None if behind_proxy else "127.0.0.2"  # not a proxy uvicorn trusts: its headers are its own
    with holding_app() as (url, _):
        answers = [RawVisitor(url, f"10.6.0.{index}{proxy}", source=source).join("hold", [f"greedy {index}"])
                   for index in range(16)]
        assert [answer.status_code for answer in answers] == [200] * VISITOR_LIMIT + [422] * (16 - VISITOR_LIMIT)


@pytest.fixture(scope="module")
def slow_served(tmp_path_factory):
    """The app with an optimisation that never finishes by itself (SLOW_STEPS per stage)."""
    folder = tmp_path_factory.mktemp("slow-app")
    with serving(standin_config(folder), folder, optimise_steps=SLOW_STEPS) as catalogue_and_url:
        yield catalogue_and_url


class Optimisations:
    """Watches the app's optimisations (which thread started one, how each stopped); `end` stops any left."""

    def __init__(self):
        self.started, self.stopped, self.over = [], [], threading.Event()
        self.in_lane = 0  # requests in the slow lane, waiting or running

    def count(self, enter):
        @contextmanager
        def counted(lane, who, waiting):
            self.in_lane += 1
            try:
                with enter(lane, who, waiting):
                    yield
            finally:
                self.in_lane -= 1

        return counted

    def watch(self, optimise):
        def watched(*args, progress, **kwargs):
            self.started.append(threading.get_ident())

            def report(fraction, words):
                if self.over.is_set():
                    raise RuntimeError("the test is over")
                progress(fraction, words)

            try:
                return optimise(*args, progress=report, **kwargs)
            except BaseException as error:
                self.stopped.append(error)
                raise

        return watched

    def end(self):
        """Stop what is left (pages closed but not yet noticed as closed) before the app is closed."""
        self.over.set()
        wait_for(lambda: self.in_lane == 0 and len(self.stopped) == len(self.started), "the slow lane to empty")


@pytest.fixture()
def optimisations(slow_served):
    watcher = Optimisations()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "optimise_inversions", watcher.watch(service.optimise_inversions))
        patch.setattr(admission.SlowLane, "enter", watcher.count(admission.SlowLane.enter))
        yield watcher
        watcher.end()


def test_slow_work_waits_in_its_own_lane_and_stops_when_its_page_closes(slow_served, optimisations):
    _, url = slow_served
    optimising, stopped = optimisations.started, optimisations.stopped
    lane = SLOW_RUNNING + SLOW_WAITING
    pages = [RawVisitor(url, f"10.3.0.{index}") for index in range(lane + 1)]
    try:
        for page in pages:
            page.ask_for_optimised_stages()
        wait_for(lambda: sum(page.error() is not None for page in pages) == 1, "one refusal",
                 lambda: [page.messages[-1:] for page in pages])
        refused = [page for page in pages if page.error() is not None]
        assert text_of(admission.text.SLOW_LANE_FULL) in refused[0].error()  # not queued for minutes
        in_lane = [page for page in pages if page not in refused]
        second = RawVisitor(url, in_lane[0].address)  # a visitor in the lane asks again from another page
        second.ask_for_optimised_stages()
        wait_for(lambda: second.error() is not None, "the refusal of a second slow request")
        assert text_of(admission.text.SLOW_ONE_PER_VISITOR) in second.error()

        answered = as_visitor(url, "10.3.1.1").submit(handle_file(str(EXAMPLES / "shapes_15.png")), "shapes", False,
                                                      False, api_name="/stages")
        _, gallery, _, _, _ = answered.result(WAIT_S)  # a plain request is served while the slow lane is full
        assert len(gallery) == 4
        assert not any(page.received("process_completed") for page in in_lane)  # the slow ones still run or wait
        assert len(optimising) == SLOW_RUNNING

        for page in in_lane:
            page.close()
        wait_for(lambda: stopped, "the running optimisation to stop after its page closed")
        assert admission.text.ABANDONED in str(stopped[0])
        wait_for(lambda: lane_is_free(url, pages), "the closed pages' requests to leave the slow lane")
        wait_for(lambda: len(stopped) == len(optimising), "every optimisation to stop")
        assert all(admission.text.ABANDONED in str(error) for error in stopped)
    finally:
        for page in pages:
            page.close()


def text_of(template: str) -> str:
    """The words of a message template before its first placeholder."""
    return template.split("{")[0]


def in_the_lane(page: RawVisitor) -> bool | None:
    """True once the page's slow request waits or runs in the slow lane, False if refused, None while unknown."""
    if page.error() is not None:
        return False
    descs = [unit.get("desc") or "" for message in page.messages if message["msg"] == "progress"
             for unit in message["progress_data"]]
    lane_words = (text_of(admission.text.SLOW_LANE_WAIT), "optimising")
    return True if any(desc.startswith(lane_words) for desc in descs) else None


def lane_is_free(url: str, pages: list) -> bool:
    """Whether a whole lane of new visitors is let in (each is closed again; their pages join `pages`)."""
    probes = [RawVisitor(url, f"10.4.{len(pages)}.{index}") for index in range(SLOW_RUNNING + SLOW_WAITING)]
    pages += probes
    for probe in probes:
        probe.ask_for_optimised_stages()
    wait_for(lambda: all(in_the_lane(probe) is not None for probe in probes), "the probes' answers")
    for probe in probes:
        probe.close()
    admitted = all(in_the_lane(probe) for probe in probes)
    if not admitted:
        time.sleep(1.0)  # let this round's admitted probes leave before the next round, or rounds keep refilling the lane
    return admitted


def test_old_results_are_deleted_and_a_result_deleted_meanwhile_is_no_error(tmp_path, monkeypatch):
    from lab import components

    monkeypatch.setattr(components, "RESULTS", tmp_path)
    old, new = tmp_path / "old.png", tmp_path / "new.png"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    past = time.time() - components.RESULT_SECONDS - 10
    os.utime(old, (past, past))
    gone = tmp_path / "deleted-by-another-visitor.png"
    listing = [old, gone, new]
    monkeypatch.setattr(type(tmp_path), "iterdir", lambda folder: iter(listing) if folder == tmp_path else None)
    components.delete_old_results()  # the vanished file raised FileNotFoundError before (a failed request)
    assert not old.exists() and new.exists()
