"""docs/api.md's examples run as written, in order, from a folder outside the project."""

import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@pytest.mark.shapes
@pytest.mark.slow
def test_every_example_in_the_api_guide_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", API.read_text(), re.S)
    assert len(blocks) == 7
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "from_decoder.png").is_file()
    assert namespace["result"]["stages"]["encoder"] == {"trained": False}
    assert "('backbone', 'encoder', 'decoder', 'prediction')" in capsys.readouterr().out
