"""The trainer runs unchanged under `accelerate launch` with two processes; one process writes."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_process_ddp_run_writes_one_checkpoint_and_one_log(tmp_path, tiny_detector_folder, image_folder):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "inversion", "train",
        "--data", str(image_folder), "--detector", str(tiny_detector_folder), "--working-size", "64", "96",
        "--steps", "4", "--batch-size", "2", "--val-every", "4", "--save-every", "2", "--log-every", "1",
        "--val-images", "2", "--workers", "0", "--warmup-steps", "1", "--out", str(out),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "inverters.json", "inverters.safetensors", "metrics.jsonl", "train_config.json",
        "training_state.json", "training_state.safetensors",
    ]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]  # written once, not per process
    assert json.loads((out / "training_state.json").read_text())["step"] == 4
