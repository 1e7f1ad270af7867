"""Micro-batching (issue 11): requests that wait together run once, identical ones are computed once,
each gets its own result or error, and a batch gives exactly what single requests give."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from inversion.shapes.world import generate_sample
from lab import service
from lab.batching import Batcher, image_fingerprint
from lab.catalogue import load_catalogue
from support.app_server import standin_config

WAIT_S = 60  # every wait is bounded: a broken batcher fails the test instead of hanging it


def test_requests_waiting_together_run_as_one_batch_with_identical_ones_once():
    calls, first_running, release = [], threading.Event(), threading.Event()

    def run(key, items):
        calls.append(list(items))
        if len(calls) == 1:  # the first batch holds the key until every later request is waiting
            first_running.set()
            assert release.wait(WAIT_S)
        return [f"{key}:{item}" for item in items]

    batcher = Batcher(run, max_size=lambda key: 4, fingerprint=str)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher, "k", "a")
        assert first_running.wait(WAIT_S)
        later = [pool.submit(batcher, "k", item) for item in ["b", "c", "b", "d", "e", "c"]]
        other_key = pool.submit(batcher, "other", "z")  # another key does not wait for "k"
        assert other_key.result(WAIT_S) == "other:z"
        deadline = time.monotonic() + WAIT_S
        while batcher._open.get("k") is None or batcher._open["k"].requests < len(later):
            assert time.monotonic() < deadline, "the later requests never gathered"
            time.sleep(0.01)
        release.set()
        results = [future.result(WAIT_S) for future in [first, *later]]
    assert results == ["k:a", "k:b", "k:c", "k:b", "k:d", "k:e", "k:c"]
    assert sorted(map(sorted, calls)) == [["a"], ["b", "c", "d", "e"], ["z"]]


def test_a_failing_batch_gives_each_request_its_own_result_or_error():
    def run(key, items):
        if "bad" in items:
            raise ValueError(f"cannot do {items}")
        return [item.upper() for item in items]

    batcher = Batcher(run, max_size=lambda key: 8, fingerprint=str)
    outcomes = batcher._outcomes("k", ["ok", "bad", "fine"])
    assert [kind for kind, _ in outcomes] == ["ok", "error", "ok"]
    assert outcomes[0][1] == "OK" and outcomes[2][1] == "FINE" and "cannot do ['bad']" in str(outcomes[1][1])
    with pytest.raises(ValueError, match="bad"):
        batcher("k", "bad")
    assert batcher("k", "alone") == "ALONE"


def test_images_are_identical_by_content():
    image, _ = generate_sample(3)
    assert image_fingerprint(image) == image_fingerprint(image.copy())
    assert image_fingerprint(image) != image_fingerprint(image.rotate(90))
    assert image_fingerprint(Image.new("RGB", (4, 2))) != image_fingerprint(Image.new("RGB", (2, 4)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_catalogue(standin_config(tmp_path_factory.mktemp("batching"))).models["shapes"]


def test_a_batch_gives_what_single_requests_give(model):
    images = [generate_sample(seed)[0] for seed in (5, 15)]
    images += [Image.new("RGB", (300, 90), (200, 40, 40)), Image.new("RGB", (20, 90), (20, 140, 40)), images[0]]
    forwards = []
    capture = model.detector.capture
    model.detector.capture = lambda batch: forwards.append(len(batch)) or capture(batch)
    try:
        batched = service.learned_stages(model, images, all_layers=True)
        alone = [service.stage_reconstructions(model, image, all_layers=True) for image in images]
    finally:
        model.detector.capture = capture
    assert forwards == [len(images)] + [1] * len(images)
    for got, want in zip(batched, alone, strict=True):
        assert got.input.view.size == want.input.view.size
        assert [d.label for d in got.input.detections] == [d.label for d in want.input.detections]
        assert all(abs(a - b) < 1e-3 for g, w in zip(got.input.detections, want.input.detections)
                   for a, b in zip((g.score, *g.box), (w.score, *w.box)))
        assert [panel.label for panel in got.panels] == [panel.label for panel in want.panels]
        assert len(got.panels) == 4 + 2 * 4  # every stage and layer of the stand-in
        for mine, theirs in zip(got.panels, want.panels):
            assert mine.image.size == theirs.image.size
            assert abs(mine.psnr - theirs.psnr) < 0.01 and abs(mine.ssim - theirs.ssim) < 0.001
            assert mine.caption == theirs.caption
