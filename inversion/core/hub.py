"""Where weights live: a local folder as is, or a Hugging Face Hub repo fetched into the local cache.

Only the files a caller names are fetched (JSON configs and safetensors weights, so nothing needs
unpickling). Offline (HF_HUB_OFFLINE=1) the same call reads the cache that huggingface_hub, or a
Space's `preload_from_hub`, left behind: naming exact files (not patterns) is what lets an offline
look-up succeed when the cache holds only those files.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from .errors import CheckpointError


class WeightsNotFound(CheckpointError):
    """A name that is neither a local folder nor a Hub repo that can be fetched; the message says which."""


def is_hub_id(name: str) -> bool:
    """Whether `name` has the form of a Hub repo id (owner/name), not of a path."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).exists()


def resolve_folder(name_or_path: str | os.PathLike, revision: str | None, files: tuple[str, ...]) -> Path:
    """The local folder holding a model's `files` (JSON and safetensors): a folder as is, else a Hub repo
    downloaded at `revision`."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return folder
    name = str(name_or_path)
    if not is_hub_id(name):
        raise WeightsNotFound(f"No folder {name!r}, and it is not a Hub repo id (owner/name) either.")
    if not all(file.endswith((".json", ".safetensors")) for file in files):
        raise ValueError(f"Only JSON and safetensors files are ever fetched, not {files}.")
    try:
        return Path(snapshot_download(name, revision=revision, allow_patterns=list(files)))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise WeightsNotFound(
            f"Could not fetch {name!r} (revision {revision or 'main'}) from the Hugging Face Hub and it is "
            f"not in the local cache: {error.__class__.__name__}. Check the name and your network."
        ) from error
