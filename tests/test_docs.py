"""The front door: the README stays short, its links and pictures (and the docs') lead somewhere, and its
Python example runs as printed."""

import re
from pathlib import Path

import pytest

from support.paths import EXAMPLES, REPO

README_LINES = 180
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)|<img src=\"([^\"]+)\"")


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub gives a Markdown page (lowercase, punctuation dropped, spaces as hyphens)."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_readme_reads_in_two_minutes():
    assert len((REPO / "README.md").read_text().splitlines()) <= README_LINES


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_and_picture_leads_somewhere(page):
    for match in LINK.finditer(page.read_text()):
        target = match.group(1) or match.group(2)
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.name} links to {target}: no such heading"


@pytest.mark.shapes
def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    code = re.search(r"## Python API\n\n```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL).group(1)
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INVERSION_SPACE_CONFIG", str(REPO / "space_config.yaml"))
    (tmp_path / "photo.jpg").write_bytes((EXAMPLES / "shapes_15.png").read_bytes())
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102  (the README's own example, as printed)
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["backbone.png", "decoder.png", "encoder.png",
                                                                    "prediction.png"]
