"""Notebooks are stored clean (no outputs, no execution counts) and hold no logic of their
own: they only call into the package and plot what it returns."""

import json
import re

import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
DEFINITION = re.compile(r"^\s*(async\s+def|def|class)\s", re.MULTILINE)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, "notebooks/ should hold the walkthrough notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean_and_has_no_logic(path):
    notebook = json.loads(path.read_text())
    assert notebook["nbformat"] == 4
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        assert cell.get("outputs") == [], f"{path.name} cell {index} has stored outputs"
        assert cell.get("execution_count") is None, f"{path.name} cell {index} has a count"
        assert not DEFINITION.search(source), (
            f"{path.name} cell {index} defines a function or class: move it into the package"
        )
    assert any("import " in "".join(c["source"]) for c in notebook["cells"]), path.name
