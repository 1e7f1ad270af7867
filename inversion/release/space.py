"""Deploy the app as a Hugging Face Space: exactly the files the Space needs, uploaded with huggingface_hub.

    python -m inversion deploy OWNER/NAME --dry-run   # list the files and sizes, check the Hub's limits
    python -m inversion deploy OWNER/NAME             # upload (upload_folder stores binaries through Xet)

The Hub refuses binary files over about 1 MB in a Space's git history unless they are routed
through LFS/Xet; `.gitattributes` routes them, and the dry run names any binary over the limit
that it does not route.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ..core.errors import UserFacingError
from ..core.hub import is_hub_id
from ..core.registry import model_specs

# What the Space runs: its entry point, the app, the library, the models and examples it serves.
SPACE_FILES = (
    "README.md", "app.py", "space_config.yaml", "requirements.txt", ".gitattributes",
    "lab/**/*.py", "inversion/**/*.py",
    "checkpoints/shapes*/detector/*", "checkpoints/shapes*/inverters/inverters.*", "checkpoints/tradeoff/results.json",
    "checkpoints/shapes/optimisation/results.json",  # the About tab's learned-vs-optimised table
    "examples/*",
)
BINARY_LIMIT_BYTES = 1_000_000  # larger binary files must go through LFS/Xet
COMMIT = re.compile(r"[0-9a-f]{40}")  # a pinned Hub revision
TEXT_SUFFIXES = {".py", ".md", ".txt", ".yaml", ".yml", ".json", ".jsonl", ".toml", ".cfg", ".gitattributes"}


class DeployError(UserFacingError):
    """A Space that cannot be deployed as it is; the message names the files or the problem."""


@dataclass
class SpaceFile:
    path: str  # relative to the project folder
    size: int  # bytes
    binary: bool
    through_lfs: bool  # routed through LFS/Xet by .gitattributes

    @property
    def refused_by_hub(self) -> bool:
        return self.binary and self.size > BINARY_LIMIT_BYTES and not self.through_lfs


def lfs_patterns(root: Path) -> list[str]:
    """The patterns `.gitattributes` routes through LFS (filter=lfs)."""
    attributes = root / ".gitattributes"
    if not attributes.is_file():
        return []
    return [line.split()[0] for line in attributes.read_text().splitlines()
            if line.strip() and not line.startswith("#") and "filter=lfs" in line.split()[1:]]


def _matches(path: str, pattern: str) -> bool:
    """gitattributes matching: a pattern without a slash matches the file name at any depth."""
    return fnmatch.fnmatch(path if "/" in pattern else path.rsplit("/", 1)[-1], pattern)


def space_files(root: str | Path = ".") -> list[SpaceFile]:
    """Every file the Space needs, with its size and whether the Hub would take it as it is."""
    root = Path(root)
    routed = lfs_patterns(root)
    chosen = sorted({path for pattern in SPACE_FILES for path in root.glob(pattern)
                     if path.is_file() and "__pycache__" not in path.parts})
    files = []
    for path in chosen:
        relative = path.relative_to(root).as_posix()
        binary = path.suffix.lower() not in TEXT_SUFFIXES and path.name not in TEXT_SUFFIXES
        files.append(SpaceFile(relative, path.stat().st_size, binary, any(_matches(relative, p) for p in routed)))
    missing = [name for name in ("README.md", "app.py", "space_config.yaml", "requirements.txt")
               if name not in {file.path for file in files}]
    if missing:
        raise DeployError(f"{root.resolve()} is not the project folder: it has no {', '.join(missing)}.")
    return files


def check_limits(files: list[SpaceFile]) -> None:
    """Refuse a deployment the Hub would refuse: binaries over the limit that .gitattributes does not route."""
    refused = [file for file in files if file.refused_by_hub]
    if refused:
        listed = ", ".join(f"{file.path} ({file.size / 1e6:.1f} MB)" for file in refused)
        raise DeployError(f"Binary files over {BINARY_LIMIT_BYTES / 1e6:g} MB not routed through LFS/Xet by "
                          f".gitattributes: {listed}. Add their patterns to .gitattributes.")


def check_pins(root: str | Path = ".") -> None:
    """Refuse a deployment whose space config offers a Hub model (detector or inverters) not pinned at a commit:
    a Space must serve the weights it was checked with, not whatever a repo's main holds on the day."""
    unpinned = [
        f"{spec.name}: {kind} {name!r}"
        for spec in model_specs(Path(root) / "space_config.yaml").values()
        for kind, name, revision in (("detector", spec.detector, spec.revision),
                                     ("inverters", spec.inverters, spec.inverters_revision))
        if name and not (Path(root) / name).exists() and is_hub_id(name) and not COMMIT.fullmatch(revision or "")
    ]
    if unpinned:
        raise DeployError(f"Hub models not pinned at a commit in space_config.yaml: {'; '.join(unpinned)}. "
                          "Set their revision to the 40-hex commit you checked.")


def deploy(space_id: str, root: str | Path = ".", private: bool = False) -> str:
    """Create the Space if needed and upload exactly `space_files`; return the commit URL."""
    files = space_files(root)
    check_limits(files)
    check_pins(root)
    api = HfApi()
    try:
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(root), repo_id=space_id, repo_type="space",
                                   allow_patterns=[file.path for file in files], commit_message="Deploy DETR Inversion Lab")
    except (HfHubHTTPError, OSError) as error:
        raise DeployError(f"The upload to the Space {space_id} failed ({error}); check your token (hf auth login) "
                          "and network, or use --dry-run.") from error
    return str(commit)
