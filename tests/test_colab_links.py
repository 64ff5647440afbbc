"""The Colab badges and the setup cells' clone all name one repository: ``siamlib.REPOSITORY``.

A badge that points at another repository, branch or notebook opens the wrong lesson (or none)
in Colab; a setup cell that clones another repository installs another siamlib. Each is checked
against the one constant, for every notebook and for the README's table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from siamlib import REPOSITORY

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"'\]]+")
GITHUB_URL = re.compile(r"https://github\.com/[^\s)\"'\]]+")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{notebook}"


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_the_repository_is_one_owner_and_name():
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", REPOSITORY)
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_badge_opens_this_very_notebook_of_the_repository(path):
    first = source(cells(path)[0])
    badge = f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(path.name)})"
    assert badge in first, f"{path.name}: first cell's badge is not {colab_url(path.name)}"
    everywhere = [url for cell in cells(path) for url in COLAB_URL.findall(source(cell))]
    assert set(everywhere) == {colab_url(path.name)}, f"{path.name}: {sorted(set(everywhere))}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_setup_cell_clones_the_repository(path):
    setup = source(cells(path)[1])
    assert f'workbook = "https://github.com/{REPOSITORY}"' in setup, path.name
    assert "!git clone --depth 1 -q {workbook} /content/workbook" in setup, path.name
    assert set(GITHUB_URL.findall(setup)) == {f"https://github.com/{REPOSITORY}"}, path.name


def test_readme_badges_open_each_notebook_of_the_repository():
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if COLAB_URL.search(line)]
    badges = {}
    for row in rows:
        [link] = re.findall(r"\]\(notebooks/([\w.-]+\.ipynb)\)", row)  # the lesson's own link
        badges[link] = COLAB_URL.findall(row)
    expected = {path.name: [colab_url(path.name)] for path in NOTEBOOKS}
    assert badges == expected, f"README's Colab badges: {badges}"
    owner, name = REPOSITORY.split("/")
    ours = [url for url in GITHUB_URL.findall(readme) if owner in url or name in url]
    assert all(re.match(rf"https://github\.com/{re.escape(REPOSITORY)}(/|$)", url)
               for url in ours), ours
