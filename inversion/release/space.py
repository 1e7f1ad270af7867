"""Deploy the app as a Hugging Face Space: exactly the files the Space needs, uploaded with huggingface_hub.

    python -m inversion deploy OWNER/NAME --dry-run   # list the files and sizes, check the Hub's limits
    python -m inversion deploy OWNER/NAME             # upload (one commit; binaries go through Xet)
    python -m inversion deploy OWNER/NAME --inverters detr-resnet-50=ORG/NAME@COMMIT   # serve published inverters

The Hub refuses binary files over about 1 MB in a Space's git history unless they are routed
through LFS/Xet; `.gitattributes` routes them, and the dry run names any binary over the limit
that it does not route.
"""

from __future__ import annotations

import fnmatch
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from ..core.checkpoints import CheckpointError, checkpoint_folder, read_config
from ..core.errors import UserFacingError
from ..core.hub import is_hub_id
from ..core.registry import CONFIG_NAME, ModelSpec, model_specs

# What the Space runs: its entry point, the app, the library, the models and examples it serves.
SPACE_FILES = (
    "README.md", "app.py", "space_config.yaml", "requirements.txt", ".gitattributes",
    "lab/**/*.py", "lab/**/*.css", "inversion/**/*.py",
    "checkpoints/shapes*/detector/*", "checkpoints/shapes*/inverters/inverters.*", "checkpoints/tradeoff/results.json",
    "checkpoints/shapes/classifier-*/config.json", "checkpoints/shapes/classifier-*/model.safetensors",
    "checkpoints/shapes/classifier-*-inverters/inverters.*",  # the bundled classifiers and their inverters
    "checkpoints/shapes/optimisation/results.json",  # the About tab's learned-vs-optimised table
    "checkpoints/shapes/headroom/results.json",  # the About tab's verdict on the shipped inverters
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


def check_pins(root: str | Path = ".", config: str | Path | None = None) -> None:
    """Refuse a deployment whose space config (`config`, else the project's) offers a Hub model (detector or
    inverters) not pinned at a commit: a Space must serve the weights it was checked with, not whatever a repo's
    main holds on the day."""
    unpinned = [
        f"{spec.name}: {kind} {name!r}"
        for spec in model_specs(config or Path(root) / CONFIG_NAME).values()
        for kind, name, revision in (("detector", spec.detector, spec.revision),
                                     ("inverters", spec.inverters, spec.inverters_revision))
        if name and not (Path(root) / name).exists() and is_hub_id(name) and not COMMIT.fullmatch(revision or "")
    ]
    if unpinned:
        raise DeployError(f"Hub models not pinned at a commit in space_config.yaml: {'; '.join(unpinned)}. "
                          "Set their revision to the 40-hex commit you checked.")


@dataclass(frozen=True)
class InverterPin:
    """`--inverters MODEL=ORG/NAME@COMMIT`: the inverters a space-config model is deployed with."""

    model: str
    repo: str
    commit: str

    @classmethod
    def parse(cls, text: str) -> InverterPin:
        """The pin written as MODEL=ORG/NAME@COMMIT, or one message saying how to write it."""
        model, _, target = text.partition("=")
        repo, _, commit = target.partition("@")
        if not model or not is_hub_id(repo) or not COMMIT.fullmatch(commit):
            raise DeployError(f"--inverters {text!r}: write MODEL=ORG/NAME@COMMIT, e.g. detr-resnet-50=myorg/"
                              "detr-r50-inverters@<the 40-hex commit of the inverter repo>.")
        return cls(model, repo, commit)


def check_inverter_pin(pin: InverterPin, specs: dict[str, ModelSpec]) -> dict:
    """The inverters.json of a pinned inverter repo, refused (one message) when the model is not in the config or
    the inverters were trained for another detector, another detector commit or another working size."""
    if pin.model not in specs:
        raise DeployError(f"--inverters {pin.model}=...: space_config.yaml has no model {pin.model!r} "
                          f"(it offers {', '.join(specs)}).")
    spec = specs[pin.model]
    try:
        config = read_config(checkpoint_folder(pin.repo, pin.commit))
    except CheckpointError as error:
        raise DeployError(f"Cannot read the inverters {pin.repo}@{pin.commit}: {error}") from error
    recorded = config.get("detector", {})
    trained_for = (recorded.get("id"), recorded.get("revision"), tuple(config.get("working_size", ())))
    pinned = (spec.detector, spec.revision, tuple(spec.working_size))
    if trained_for != pinned:
        raise DeployError(f"The inverters {pin.repo}@{pin.commit[:12]} were trained for the detector {trained_for[0]!r} "
                          f"at revision {trained_for[1]!r} ({'x'.join(map(str, trained_for[2]))}), but space_config.yaml "
                          f"serves {pin.model} as {pinned[0]!r} at revision {pinned[1]!r} ({'x'.join(map(str, pinned[2]))}): "
                          "pin inverters trained for that detector commit, or change the detector's pin to theirs.")
    return config


def pinned_config(text: str, pins: list[InverterPin]) -> str:
    """The space config's text with each pinned model's `inverters` and `inverters_revision` set (the rest, comments
    included, as it is)."""
    lines = text.splitlines()
    for pin in pins:
        start = next((index for index, line in enumerate(lines) if line.rstrip() == f"  {pin.model}:"), None)
        if start is None:
            raise DeployError(f"space_config.yaml does not write the model {pin.model!r} as a block '  {pin.model}:' "
                              "under 'models:': write it so, then pin its inverters.")
        end = next((index for index in range(start + 1, len(lines))
                    if lines[index].strip() and not lines[index].startswith("    ")), len(lines))
        block = [line for line in lines[start + 1 : end]
                 if not line.lstrip().startswith(("inverters:", "inverters_revision:"))]
        block += [f"    inverters: {pin.repo}", f"    inverters_revision: {pin.commit}  # pinned by deploy --inverters"]
        lines[start + 1 : end] = block
    result = "\n".join(lines) + "\n"
    parsed = yaml.safe_load(result)["models"]
    if any((parsed[pin.model].get("inverters"), parsed[pin.model].get("inverters_revision")) != (pin.repo, pin.commit)
           for pin in pins):
        raise DeployError("space_config.yaml's layout kept the inverter pins from being written: set the models' "
                          "inverters and inverters_revision by hand.")
    return result


def deployed_config(root: str | Path, pins: list[InverterPin]) -> str:
    """The space_config.yaml a deployment sends: the project's, with the inverter pins checked and written in."""
    path = Path(root) / CONFIG_NAME
    specs = model_specs(path)
    for pin in pins:
        check_inverter_pin(pin, specs)
    return pinned_config(path.read_text(), pins)


def checked_config(root: str | Path, pins: list[InverterPin]) -> str:
    """`deployed_config`, refused when a Hub model in it is not pinned at a commit (`check_pins`)."""
    text = deployed_config(root, pins)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / CONFIG_NAME).write_text(text)
        check_pins(root, Path(folder) / CONFIG_NAME)
    return text


def deploy(space_id: str, root: str | Path = ".", private: bool = False, pins: list[InverterPin] = ()) -> str:
    """Create the Space if needed and upload exactly `space_files`, its space_config.yaml with the inverter `pins`
    written in (`checked_config`); return the commit URL."""
    files = space_files(root)
    check_limits(files)
    config = checked_config(root, list(pins)).encode()
    operations = [CommitOperationAdd(file.path, config if file.path == CONFIG_NAME else str(Path(root) / file.path))
                  for file in files]
    api = HfApi()
    try:
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        commit = api.create_commit(space_id, operations, repo_type="space", commit_message="Deploy DETR Inversion Lab")
    except (HfHubHTTPError, OSError) as error:
        raise DeployError(f"The upload to the Space {space_id} failed ({error}); check your token (hf auth login) "
                          "and network, or use --dry-run.") from error
    return str(commit)
