"""The Space deployment sends exactly what the Space needs and refuses what the Hub would refuse."""

import os
import shutil
import subprocess
import sys

import pytest

from inversion.__main__ import main
from inversion.core.registry import model_specs
from inversion.release.space import BINARY_LIMIT_BYTES, DeployError, check_limits, space_files
from support.paths import REPO


def test_the_dry_run_lists_the_space_and_nothing_else(capsys):
    assert main(["deploy", "owner/space", "--root", str(REPO), "--dry-run"]) == 0
    listed = {line.split()[-1] for line in capsys.readouterr().out.splitlines()[:-1]}
    assert {"app.py", "space_config.yaml", "requirements.txt", "README.md", ".gitattributes"} <= listed
    assert {"lab/catalogue.py", "lab/page.css", "inversion/core/detector.py", "checkpoints/shapes/detector/model.safetensors",
            "checkpoints/shapes/inverters/inverters.safetensors", "examples/shapes_15.png"} <= listed
    assert not any(path.startswith(("tests/", "benchmarks/", "docs/", "runs/", ".venv/")) for path in listed)
    assert not any("__pycache__" in path for path in listed)
    bundled = [path for spec in model_specs(REPO / "space_config.yaml").values() for path in (spec.detector, spec.inverters)
               if path and (REPO / path).is_dir()]
    assert "checkpoints/shapes40/detector" in bundled  # the colour-dial model is offered, and shipped
    assert "checkpoints/shapes_conditional/detector" in bundled  # and the Conditional DETR
    assert all(any(item.startswith(f"{path}/") for item in listed) for path in bundled), bundled


@pytest.mark.slow
def test_the_app_starts_from_exactly_the_files_sent(tmp_path):
    """The deployed files alone build the page (every model they offer loads; a file the app reads and the
    deployment leaves out stops this, as it would stop the Space)."""
    for file in space_files(REPO):
        (tmp_path / file.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / file.path, tmp_path / file.path)
    build = ("from lab.catalogue import load_catalogue; from lab.page import build_demo; import lab; "
             "catalogue = load_catalogue(); build_demo(catalogue); print(lab.SPACE_ROOT, sorted(catalogue.models))")
    done = subprocess.run([sys.executable, "-c", build], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-7:] == [str(tmp_path), "['shapes',", "'shapes-conditional',", "'shapes-deformable',",
                                        "'shapes-swin',", "'shapes-vit',", "'shapes40']"]


def test_large_binaries_outside_lfs_are_named(tmp_path):
    for name in ("README.md", "app.py", "space_config.yaml", "requirements.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "big.png").write_bytes(b"\x89PNG" + bytes(BINARY_LIMIT_BYTES))
    (tmp_path / "examples" / "small.png").write_bytes(b"\x89PNG" + bytes(10))
    with pytest.raises(DeployError, match=r"examples/big.png \(1.0 MB\)"):
        check_limits(space_files(tmp_path))
    (tmp_path / ".gitattributes").write_text("*.png filter=lfs diff=lfs merge=lfs -text\n")
    check_limits(space_files(tmp_path))  # routed through LFS now


def test_a_folder_that_is_not_the_project_is_named(tmp_path, capsys):
    assert main(["deploy", "owner/space", "--root", str(tmp_path), "--dry-run"]) == 2
    assert "is not the project folder" in capsys.readouterr().err


def test_an_unpinned_hub_model_is_refused(tmp_path, capsys):
    from inversion.release.space import check_pins
    from inversion.testing import write_space_config

    (tmp_path / "local").mkdir()
    models = {"pinned": {"detector": "facebook/detr-resnet-50", "revision": "1d5f47bd3bdd2c4bbfa585418ffe6da5028b4c0b",
                         "inverters": "local", "working_size": [64, 64]},
              "branch": {"detector": "microsoft/conditional-detr-resnet-50", "revision": "main", "inverters": None,
                         "working_size": [64, 64]}}
    write_space_config(tmp_path / "space_config.yaml", models, default_model="pinned", limits={})
    with pytest.raises(DeployError, match="branch: detector 'microsoft/conditional-detr-resnet-50'") as refused:
        check_pins(tmp_path)
    assert "pinned: detector" not in str(refused.value)
    del models["branch"]
    write_space_config(tmp_path / "space_config.yaml", models, default_model="pinned", limits={})
    check_pins(tmp_path)  # a pinned Hub detector and local inverters pass
    check_pins(REPO)  # the shipped config is pinned
