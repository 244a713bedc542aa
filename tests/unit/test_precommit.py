"""The pre-commit config is real: it validates, it fetches nothing, and its notebook hook
strips outputs and execution counts in a real git repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

CONFIG = REPO / ".pre-commit-config.yaml"
VENV_BIN = Path(sys.executable).parent
PRE_COMMIT = VENV_BIN / "pre-commit"  # the dev extra installs it beside this interpreter


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "HOME": str(home),
        "PRE_COMMIT_HOME": str(home / "pre-commit"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }


def test_config_validates(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(PRE_COMMIT), "validate-config", str(CONFIG)],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hooks_are_local_tools_of_the_venv() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert {"ruff-check", "ruff-format", "mypy", "nbstripout"} <= set(hooks)
    for hook in hooks.values():
        assert hook["language"] == "system", hook["id"]
        tool = hook["entry"].split()[0]
        assert tool.startswith(".venv/bin/"), hook["id"]
        assert (VENV_BIN / Path(tool).name).exists(), f"{tool} is not installed (make install)"


def _notebook_with_outputs() -> dict:
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 3,
                "id": "cell-00",
                "metadata": {"execution": {"iopub.status.idle": "2026-01-01T00:00:00Z"}},
                "outputs": [{"name": "stdout", "output_type": "stream", "text": ["2\n"]}],
                "source": ["print(1 + 1)"],
            }
        ],
        "metadata": {"language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_notebook_hook_strips_outputs_in_a_git_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(CONFIG, repo / CONFIG.name)
    (repo / ".venv").symlink_to(VENV_BIN.parent)  # the hooks call .venv/bin/<tool>
    notebook = repo / "notebooks" / "dirty.ipynb"
    notebook.write_text(json.dumps(_notebook_with_outputs(), indent=1) + "\n")
    env = _env(tmp_path)
    for cmd in (["git", "init", "-q"], ["git", "add", CONFIG.name, "notebooks"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)

    run = [str(PRE_COMMIT), "run", "nbstripout", "--files", "notebooks/dirty.ipynb"]
    first = subprocess.run(run, cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 1, first.stdout + first.stderr  # files were modified
    assert "files were modified by this hook" in first.stdout
    (cell,) = json.loads(notebook.read_text())["cells"]
    assert cell["outputs"] == [] and cell["execution_count"] is None
    assert cell["id"] == "cell-00"  # --keep-id: no churn in the ids
    assert "execution" not in cell["metadata"]

    second = subprocess.run(run, cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr  # clean stays unchanged


def test_repository_notebooks_pass_the_hook_unchanged(tmp_path: Path) -> None:
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    copies = []
    for path in notebooks:
        copy = tmp_path / path.name
        shutil.copy(path, copy)
        copies.append(copy)
    done = subprocess.run(
        [str(VENV_BIN / "nbstripout"), "--keep-id", *map(str, copies)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    changed = [
        p.name for p, c in zip(notebooks, copies, strict=True) if p.read_bytes() != c.read_bytes()
    ]
    assert not changed, f"the nbstripout hook would rewrite {changed}"
