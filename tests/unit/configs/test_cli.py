"""configs.cli: log level, colour only on a terminal, progress, errors with a next step."""

from __future__ import annotations

import io
import logging
import os

import pytest

from configs import cli


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def plain_env():
    """No colour, level or MLflow settings from outside; whatever a test exports is undone."""
    saved = dict(os.environ)
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM", cli.LOG_LEVEL_ENV, "MLFLOW_LOGGING_LEVEL"):
        os.environ.pop(name, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_colour_only_on_a_terminal(plain_env):
    assert cli.paint("FAILED", stream=io.StringIO()) == "FAILED"
    assert cli.paint("FAILED", stream=Terminal()) == "\033[31mFAILED\033[0m"
    assert cli.paint("passed", stream=Terminal()) == "\033[32mpassed\033[0m"
    assert cli.paint("not promoted", stream=Terminal()).startswith("\033[33m")
    assert cli.paint("something else", stream=Terminal()) == "something else"


def test_no_color_wins_and_force_color_forces(plain_env, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert cli.paint("ok", stream=io.StringIO()) == "\033[32mok\033[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli.paint("ok", stream=Terminal()) == "ok"


def test_highlight_paints_whole_words_and_is_identity_without_colour(plain_env):
    line = "- Bar: PASS, FAILURE is not FAIL-ed, FAIL"
    assert cli.highlight(line, ["PASS", "FAIL"], stream=io.StringIO()) == line
    painted = cli.highlight(line, ["PASS", "FAIL"], stream=Terminal())
    assert painted == ("- Bar: \033[32mPASS\033[0m, FAILURE is not FAIL-ed, \033[31mFAIL\033[0m")


def test_setup_logging_sets_the_level_exports_it_and_quiets_libraries(plain_env):
    root = logging.getLogger()
    before = root.level
    try:
        assert cli.setup_logging("debug") == "DEBUG"
        assert root.level == logging.DEBUG
        assert logging.getLogger("mlflow").level == logging.NOTSET
        assert cli.log_level() == "DEBUG"  # children (kfp.local components) inherit it
        assert os.environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG"
        assert cli.setup_logging() == "DEBUG"  # again: from the environment
        cli.setup_logging("INFO")
        assert logging.getLogger("mlflow").level == logging.WARNING
        with pytest.raises(ValueError, match="log level must be one of"):
            cli.setup_logging("LOUD")
    finally:
        root.setLevel(before)


def _root_record(pathname: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("root", level, pathname, 1, "message", None, None)


def test_library_info_through_the_root_logger_is_dropped_below_debug(plain_env):
    root = logging.getLogger()
    before = root.level
    kfp_file = "/venv/lib/python3.11/site-packages/kfp/local/pipeline_orchestrator.py"
    try:
        cli.setup_logging("INFO")
        assert not cli._not_library_chatter(_root_record(kfp_file))
        assert cli._not_library_chatter(_root_record(kfp_file, logging.WARNING))
        assert cli._not_library_chatter(_root_record("/repo/pipelines/run_local.py"))
        cli.setup_logging("DEBUG")
        assert cli._not_library_chatter(_root_record(kfp_file))
    finally:
        root.setLevel(before)


def test_progress_is_a_pass_through_off_a_terminal(plain_env, capsys):
    assert not cli.progress_enabled()  # pytest captures stderr: no terminal
    assert list(cli.progress(range(3), desc="x")) == [0, 1, 2]
    with cli.progress(total=5) as bar:
        bar.update(5)
    assert capsys.readouterr().err == ""


def test_progress_is_off_above_info(plain_env, monkeypatch):
    monkeypatch.setattr(cli.sys, "stderr", Terminal())
    assert cli.progress_enabled()
    monkeypatch.setenv(cli.LOG_LEVEL_ENV, "WARNING")
    assert not cli.progress_enabled()


def test_milestones_about_every_tenth_and_the_end():
    steps = cli.Milestones(30)
    assert [n for n in range(1, 31) if steps.due(n)] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    resumed = cli.Milestones(5)
    assert [n for n in (4, 5, 5, 6) if resumed.due(n)] == [4, 5]


def test_fail_prints_the_error_and_the_next_step(plain_env, capsys):
    assert cli.fail(cli.UserError("it broke", hint="make fix")) == 2
    assert capsys.readouterr().err == "error: it broke\n  next: make fix\n"
    assert cli.fail(RuntimeError("plain"), "make fallback", code=1) == 1
    assert capsys.readouterr().err == "error: plain\n  next: make fallback\n"
    assert cli.fail("no remedy") == 2
    assert capsys.readouterr().err == "error: no remedy\n"


def test_cli_parser_splits_the_docstring(plain_env):
    doc = """First line
    continues here.

        python -m x --flag
    """
    parser = cli.cli_parser(doc, prog="python -m x", make="make x")
    assert parser.description == "First line continues here."
    assert parser.epilog == "    python -m x --flag\n\nmake target: make x"
    assert parser.parse_args([]).log_level == "INFO"
