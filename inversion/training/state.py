"""A training run's resumable state: optimizers, schedulers, step and RNG, as safetensors plus JSON.

Written beside the inverter checkpoint of a run (training_state.json + training_state.safetensors);
nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..core.checkpoints import CheckpointError

STATE_CONFIG_FILE = "training_state.json"
STATE_WEIGHTS_FILE = "training_state.safetensors"


def save_training_state(folder: str | os.PathLike, step: int, optimizers: dict, schedulers: dict) -> None:
    """Write optimizer and scheduler states and the step, as safetensors tensors plus JSON."""
    tensors: dict[str, torch.Tensor] = {}
    document = {"step": step, "optimizers": {}, "schedulers": {}}
    for name, optimizer in optimizers.items():
        state = optimizer.state_dict()
        scalars = {}
        for param_id, param_state in state["state"].items():
            for key, value in param_state.items():
                if torch.is_tensor(value):
                    tensors[f"{name}/{param_id}/{key}"] = value.detach().contiguous().cpu()
                else:
                    scalars[f"{param_id}/{key}"] = value
        document["optimizers"][name] = {"param_groups": state["param_groups"], "scalars": scalars}
    for name, scheduler in schedulers.items():
        document["schedulers"][name] = scheduler.state_dict()
    tensors["rng/torch"] = torch.get_rng_state()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / STATE_WEIGHTS_FILE)
    (folder / STATE_CONFIG_FILE).write_text(json.dumps(document, indent=2))


def load_training_state(folder: str | os.PathLike, optimizers: dict, schedulers: dict) -> int:
    """Restore optimizer and scheduler states saved by save_training_state; return the step."""
    folder = Path(folder)
    try:
        document = json.loads((folder / STATE_CONFIG_FILE).read_text())
        tensors = load_file(folder / STATE_WEIGHTS_FILE)
    except (OSError, json.JSONDecodeError, SafetensorError) as error:
        raise CheckpointError(f"Cannot resume from {folder}: its training state is missing or corrupt ({error}).") from error
    for name, optimizer in optimizers.items():
        saved = document["optimizers"].get(name)
        if saved is None:
            raise CheckpointError(f"Cannot resume from {folder}: it has no optimizer state for {name!r}.")
        state: dict[int, dict] = {}
        for key, tensor in tensors.items():
            owner, _, rest = key.partition("/")
            if owner == name:
                param_id, _, field = rest.partition("/")
                state.setdefault(int(param_id), {})[field] = tensor
        for key, value in saved["scalars"].items():
            param_id, _, field = key.partition("/")
            state.setdefault(int(param_id), {})[field] = value
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    for name, scheduler in schedulers.items():
        scheduler.load_state_dict(document["schedulers"][name])
    torch.set_rng_state(tensors["rng/torch"])
    return int(document["step"])
