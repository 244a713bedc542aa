"""Warm start: kfp.local's real SubprocessRunner, components forked from one warm process."""

import os
import sys

import pytest
from kfp import dsl, local
from kfp.local.subprocess_task_handler import replace_python_executable

from pipelines import components
from pipelines.warm_start import Zygote, component_args, warm_components

LIGHT = ("kfp.dsl.executor_main",)  # what the zygote imports here: enough, and quick


@dsl.component(base_image="python:3.11")
def where(marker: str) -> str:
    import os

    return f"{os.getpid()} {os.getcwd()} {os.environ.get('WARM_TEST_MARKER')} {marker}"


@dsl.component(base_image="python:3.11")
def draw() -> float:
    import random

    return random.random()


@dsl.component(base_image="python:3.11")
def fail(message: str) -> str:
    raise ValueError(message)


@dsl.pipeline
def two_draws() -> float:
    first = draw()
    second = draw().after(first)
    return second.output


@pytest.fixture
def runner(tmp_path):
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
    )


def command_of(component) -> list[str]:
    container = component.component_spec.implementation.container
    return replace_python_executable([*container.command, *container.args], sys.executable)


def test_every_pipeline_component_is_recognised():
    for name in ("load_data", "tune_model", "deploy_model"):
        parsed = component_args(command_of(getattr(components, name)))
        assert parsed is not None, name
        source, args = parsed
        assert f"def {name}(" in source
        assert args == ["--executor_input", "{{$}}", "--function_to_execute", name]


@dsl.component(base_image="python:3.11")  # kfp's default: `pip install kfp==X` at start
def installs_kfp(marker: str) -> str:
    return marker


def test_a_start_that_installs_only_this_kfp_runs_warm():
    parsed = component_args(command_of(installs_kfp))
    assert parsed is not None and "def installs_kfp(" in parsed[0]


def test_other_installs_and_shapes_run_cold():
    command = command_of(installs_kfp)
    assert "kfp==" in command[2]
    looser = command[2].replace("kfp==", "kfp>=")
    assert component_args([*command[:2], looser, *command[3:]]) is None
    other = command[2].replace("'--no-deps'", "'--no-deps' 'requests'")
    assert component_args([*command[:2], other, *command[3:]]) is None
    assert component_args(["python3", "-m", "kfp.dsl.executor_main", "--x"]) is None


def test_components_run_in_forks_with_kfp_environment_and_cwd(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WARM_TEST_MARKER", "seen")
    with warm_components(LIGHT) as zygote:
        assert zygote is not None
        pids = set()
        # (the zygote is started, not awaited: the first component waits for its imports)
        for marker in ("a", "b"):
            pid, cwd, env, echoed = where(marker=marker).output.split()
            assert (cwd, env, echoed) == (str(tmp_path), "seen", marker)
            pids.add(int(pid))
        assert zygote.ready()
        assert os.getpid() not in pids and zygote.process.pid not in pids and len(pids) == 2
        # a fork would repeat its siblings' random draws; each child reseeds as a new process
        first = draw().output
        assert first != two_draws().output
        with pytest.raises(RuntimeError, match="fail"):
            fail(message="boom")
    assert zygote.process.poll() is not None  # stopped on the way out


def test_a_failing_component_fails_the_task_and_prints_its_traceback(tmp_path, capsys):
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=False,
    )
    with warm_components(LIGHT):
        fail(message="no such table")
    out = capsys.readouterr().out
    assert "ValueError: no such table" in out and "FAILURE" in out


def test_a_zygote_that_cannot_import_leaves_every_component_cold(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WARM_TEST_MARKER", "cold")
    with warm_components(("no_such_module_here",)) as zygote:
        pid, cwd, env, _ = where(marker="x").output.split()
        assert zygote is not None and not zygote.ready()
    assert (cwd, env) == (str(tmp_path), "cold") and int(pid) != os.getpid()


@dsl.component(base_image="python:3.11")
def imported(names: str) -> str:
    import sys

    return " ".join(name for name in names.split() if name in sys.modules)


def test_late_modules_are_imported_beside_the_first_children_not_before(runner):
    # The zygote is ready before it imports these; after each fork, while that child runs, it
    # imports at least the next one (one that fails is skipped): the first child has none of
    # them, the third has colorsys. Imported before it is ready, the first child would have it.
    late = ("no_such_module_here", "colorsys")
    with warm_components(zygote=Zygote.start(LIGHT, late=late)) as zygote:
        assert zygote is not None
        seen = [imported(names="colorsys no_such_module_here").output for _ in range(3)]
        assert zygote.ready()
    assert seen[0] == "" and seen[2] == "colorsys"
