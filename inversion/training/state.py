"""A training run's books: its resumable state (optimizers, schedulers, step and RNG, as safetensors
plus JSON) and its output folder, which holds one run only.

Written beside the inverter checkpoint of a run (training_state.json + training_state.safetensors);
nothing is ever unpickled. A folder that already holds a run is refused unless the run is resumed
with the settings it was started with (`check_out_folder`), or overwritten (`clear_run`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..core.checkpoints import CONFIG_FILE, WEIGHTS_FILE, CheckpointError
from ..core.errors import UserFacingError

STATE_CONFIG_FILE = "training_state.json"
STATE_WEIGHTS_FILE = "training_state.safetensors"
RUN_CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.jsonl"
RUN_FILES = (RUN_CONFIG_FILE, METRICS_FILE, STATE_CONFIG_FILE, STATE_WEIGHTS_FILE, CONFIG_FILE, WEIGHTS_FILE)
# Settings a resumed run may change: where its folder is, how long it runs, how often it logs, validates and saves.
RESUMABLE_CHANGES = {"out", "steps", "resume", "overwrite", "val_every", "val_images", "save_every", "log_every", "workers",
                     "precision", "max_unreadable"}


def check_out_folder(out: Path, settings: dict, resume: bool, overwrite: bool) -> None:
    """Refuse a non-empty `out` unless resuming or overwriting; refuse to resume with changed `settings`
    (a train_config as JSON), naming each change."""
    if resume:
        try:
            saved = json.loads((out / RUN_CONFIG_FILE).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CheckpointError(f"--resume: {out} holds no readable {RUN_CONFIG_FILE} of a run to continue ({error}).") from error
        changed = [f"{key} was {saved[key]!r}, now {value!r}" for key, value in settings.items()
                   if key not in RESUMABLE_CHANGES and key in saved and saved[key] != value]  # (older runs lack newer keys)
        if changed:
            raise UserFacingError(f"--resume: the run in {out} was started with other settings ({'; '.join(changed)}): "
                                  "resume with its settings, or train into a new --out.")
    elif out.exists() and not out.is_dir():
        raise UserFacingError(f"--out {out} is a file, not a folder: choose another --out.")
    elif not overwrite and out.is_dir() and any(out.iterdir()):
        held = ", ".join(sorted(path.name for path in out.iterdir())[:6])
        raise UserFacingError(f"--out {out} is not empty ({held}): pass --resume to continue its run, --overwrite to "
                              "replace it, or choose another --out.")


def clear_run(out: Path) -> None:
    """Delete the files a training run writes in `out` (and in its chain-* folders), nothing else."""
    for folder in (out, *sorted(out.glob("chain-*"))):
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)


def save_training_state(folder: str | os.PathLike, step: int, optimizers: dict, schedulers: dict,
                        helpers: dict[str, torch.nn.Module] | None = None, batches_drawn: int | None = None) -> None:
    """Write optimizer and scheduler states, the step, the batches drawn from the data so far (`step` unless some
    held no readable image) and the weights of `helpers` (modules that train beside the inverters, e.g. a patch
    critic), as safetensors tensors plus JSON."""
    tensors: dict[str, torch.Tensor] = {f"helper/{name}/{key}": value.detach().contiguous().cpu()
                                        for name, module in (helpers or {}).items()
                                        for key, value in module.state_dict().items()}
    document = {"step": step, "batches_drawn": step if batches_drawn is None else batches_drawn, "optimizers": {},
                "schedulers": {}}
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


def load_training_state(folder: str | os.PathLike, optimizers: dict, schedulers: dict,
                        helpers: dict[str, torch.nn.Module] | None = None) -> tuple[int, int]:
    """Restore optimizer and scheduler states and the helpers' weights saved by save_training_state; return the step
    and the batches drawn (the step, for a state saved before they were recorded)."""
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
    for name, module in (helpers or {}).items():
        prefix = f"helper/{name}/"
        weights = {key.removeprefix(prefix): tensor for key, tensor in tensors.items() if key.startswith(prefix)}
        if not weights:
            raise CheckpointError(f"Cannot resume from {folder}: it has no weights for its {name}.")
        module.load_state_dict(weights)
    torch.set_rng_state(tensors["rng/torch"])
    return int(document["step"]), int(document.get("batches_drawn", document["step"]))
