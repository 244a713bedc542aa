"""The docs hold: every path and `make` target they name exists, and the claims they make
(counts, defaults, targets, prerequisites) match the code."""

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


# -- claims the docs make, checked against the code ---------------------------------------------

NUMBER_WORDS = {"eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15}


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_the_component_count_matches_the_pipeline() -> None:
    from pipelines.stages import STAGES

    text = " ".join((ROOT / "docs" / "architecture.md").read_text().split())
    found = re.search(
        r"pipeline of (\w+) lightweight Python components: one per stage \(the (\w+)", text
    )
    assert found, "architecture.md no longer states the component count"
    components = (ROOT / "pipelines" / "components.py").read_text().count("\n@component\n")
    assert NUMBER_WORDS[found.group(1)] == components
    assert NUMBER_WORDS[found.group(2)] == len(STAGES)


def test_every_make_target_is_in_the_readme_table() -> None:
    targets = re.findall(r"^([a-z][a-z0-9-]*):(?!=)", (ROOT / "Makefile").read_text(), re.M)
    table = _section((ROOT / "README.md").read_text(), "## Make targets")
    named = set(re.findall(r"`make ([a-z][a-z0-9-]*)", table))  # a row, or inside a row
    assert not [t for t in targets if t not in named], "targets missing from README's table"


def test_make_clean_keeps_mlruns_as_the_readme_says() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "keeps the tracking store and registry (`mlruns/`)" in readme
    dry = subprocess.run(["make", "-n", "clean"], cwd=ROOT, capture_output=True, text=True)
    assert "rm -rf" in dry.stdout and "mlruns" not in dry.stdout


def test_the_prerequisites_match_the_packages() -> None:
    readme = _section((ROOT / "README.md").read_text(), "## Prerequisites")
    requires = re.search(r'requires-python = "([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert requires and f'`requires-python = "{requires.group(1)}"`' in readme
    pin = re.search(
        r"nvidia-pytriton==([\d.]+)", (ROOT / "serving/triton/requirements.txt").read_text()
    )
    assert pin, "the Triton wheel is no longer pinned"
    wheels = list(
        (ROOT / ".venv-triton").glob(
            f"lib/python*/site-packages/nvidia_pytriton-{pin.group(1)}.dist-info/WHEEL"
        )
    )
    if not wheels:
        pytest.skip("make triton-env has not run here: the wheel's glibc tag cannot be read")
    tag = re.search(r"manylinux_(\d+)_(\d+)_x86_64", wheels[0].read_text())
    assert tag, "the Triton wheel is no longer a manylinux x86_64 one"
    assert f"glibc {tag.group(1)}.{tag.group(2)} or newer" in readme
    assert f"`manylinux_{tag.group(1)}_{tag.group(2)}_x86_64`" in readme
    assert "root or sudo for `make system-deps`" in readme
    assert "apt-get" in (ROOT / "Makefile").read_text().split("system-deps:", 1)[1].split("\n\n")[0]


def test_the_default_study_location_is_the_one_the_docs_name() -> None:
    from pipelines.steps.tune import default_study_storage

    workdir = re.findall(r"^WORKDIR (\S+)", (ROOT / "Dockerfile").read_text(), re.M)[-1]
    assert default_study_storage(Path(workdir)) == f"sqlite:///{workdir}/mlruns/optuna.db"
    deploy = " ".join((ROOT / "docs" / "deploy.md").read_text().split())
    assert f"`mlruns/optuna.db` in the tune step's working directory (`{workdir}`" in deploy
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert "Optuna: by default SQLite in the tune pod" in architecture
    assert "Optuna: PostgreSQL (ParallelFor workers)" not in architecture  # the old claim


def test_notebook_02_says_what_a_second_run_does_to_the_study(tmp_path) -> None:
    import json

    import numpy as np

    from configs import load_config, parse_config
    from models.tune import tune_model

    cells = json.loads((ROOT / "notebooks" / "02-experiments.ipynb").read_text())["cells"]
    text = " ".join(" ".join("".join(c["source"]) for c in cells).split())
    assert "so the second run adds none" in text and "trials add to the first" not in text
    raw = load_config(ROOT / "tests" / "configs" / "fraud_small.yaml").model_dump(mode="json")
    raw["tuning"] |= {"n_trials": 2, "families": ["logreg"]}
    config = parse_config(raw)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for _ in range(2):  # the same inputs name the same study: the second run resumes it
        result = tune_model(
            config, X[:150], y[:150], X[150:], y[150:], storage=storage, study_name="s"
        )
    assert len(result.trials) == 2  # not 4: the finished budget is not run again
