"""The page's GPU calls decided before any request (issue 24): each model's costs counted once, when the calls are
built at start, and never in a request; the slow lane sized for where the models run (side by side on a GPU)."""

import threading
from dataclasses import replace

import pytest

from inversion.shapes.world import generate_sample
from lab import admission, gpu
from lab.admission import SLOW_RUNNING, SLOW_RUNNING_GPU, slow_lane
from lab.catalogue import load_catalogue
from support.app_server import standin_config

WAIT_S = 60  # every wait is bounded: a lane that serialises fails the test instead of hanging it


@pytest.fixture()
def catalogue(tmp_path):
    return load_catalogue(standin_config(tmp_path))


def test_costs_are_counted_once_at_start_and_never_in_a_request(catalogue, monkeypatch):
    counted, measure = [], gpu.measure_cost
    monkeypatch.setattr(gpu, "measure_cost", lambda detector, inverters: counted.append(detector) or measure(detector, inverters))
    calls = gpu.gpu_calls(catalogue, optimise_steps=2)
    assert counted == [model.detector for model in catalogue.models.values()]  # each model's, as the page is built
    gpu.gpu_calls(catalogue, optimise_steps=2)
    assert len(counted) == len(catalogue.models)  # not again for another page of the same models

    def no_counting(detector, inverters):
        raise AssertionError("FLOPs counted in a request")

    monkeypatch.setattr(gpu, "measure_cost", no_counting)
    image = generate_sample(15)[0]
    assert gpu.stage_seconds(catalogue.models["shapes"], True, True, 2) >= gpu.request_seconds(catalogue.models["bare"], 1)
    assert len(calls.stages("shapes", image, False, False, lambda *args, **kwargs: None).panels) == 4
    assert calls.detect("bare", image).detections


def test_a_model_never_counted_is_a_programming_error_not_a_slow_request(catalogue):
    with pytest.raises(RuntimeError, match="not counted at start"):
        gpu.model_cost(catalogue.models["bare"])


def test_the_slow_lane_runs_optimisations_side_by_side_on_a_gpu_and_one_at_a_time_on_a_cpu():
    assert slow_lane(on_gpu=False).running == SLOW_RUNNING == 1
    lane = slow_lane(on_gpu=True)
    inside = threading.Barrier(SLOW_RUNNING_GPU + 1)  # met only when that many run in the lane at once

    def optimise(who):
        with lane.enter(who):
            inside.wait(WAIT_S)

    threads = [threading.Thread(target=optimise, args=(f"visitor {index}",)) for index in range(SLOW_RUNNING_GPU)]
    for thread in threads:
        thread.start()
    inside.wait(WAIT_S)
    for thread in threads:
        thread.join(WAIT_S)
    assert lane.occupancy == 0 and SLOW_RUNNING_GPU > 1


def test_models_on_a_gpu_get_the_gpus_lane(catalogue, monkeypatch):
    lanes = []
    monkeypatch.setattr(gpu, "slow_lane", lambda on_gpu: lanes.append(on_gpu) or admission.slow_lane(on_gpu))
    gpu.gpu_calls(catalogue)
    for name, model in catalogue.models.items():
        catalogue.models[name] = replace(model, device="cuda")
    gpu.gpu_calls(catalogue)
    assert lanes == [False, True]
