"""The docs point at things that exist: every repository path and every `make` target they name."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# The tracked top-level folders (generated ones such as reports/ may be absent on a clone).
TRACKED_ROOTS = ("benchmarks/", "configs/", "docs/", "features/", "infra/", "models/")
TRACKED_ROOTS += ("monitoring/", "notebooks/", "pipelines/", "serving/", "tests/")
PLACEHOLDER = re.compile(r"[<>*{}…]|\.\.\.")


def _code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _paths(text: str) -> set[str]:
    found = set()
    for span in _code_spans(text):
        for token in span.split():
            token = token.split("#")[0].rstrip(".,;:)")
            if token.startswith(TRACKED_ROOTS) and not PLACEHOLDER.search(token):
                found.add(token)
    return found


def _generated(path: str) -> bool:
    """A path git ignores: written by a make target (pipelines/compiled/, reports/ ...)."""
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return done.returncode == 0


def _make_targets(text: str) -> set[str]:
    return set(re.findall(r"\bmake ([a-z][a-z0-9-]*[a-z0-9])(?![\w*-])", text))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_paths_exist(doc: Path) -> None:
    missing = sorted(
        p for p in _paths(doc.read_text()) if not (ROOT / p).exists() and not _generated(p)
    )
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_make_targets_exist(doc: Path) -> None:
    defined = set(re.findall(r"^([a-z][a-z0-9-]+):", (ROOT / "Makefile").read_text(), re.M))
    unknown = sorted(_make_targets(doc.read_text()) - defined)
    assert not unknown, f"{doc.name} names make targets the Makefile lacks: {unknown}"


def test_the_checks_see_something() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert "models/gate.py" in _paths(text)
    assert "rollback" in _make_targets((ROOT / "docs" / "runbook.md").read_text())
    assert _generated("pipelines/compiled/training_pipeline.yaml")
    assert not _generated("models/gate.py")
