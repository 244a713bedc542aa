"""How every command talks to a person: log level, colour, progress, and errors with a next step.

- `cli_parser` builds a CLI's parser: description from the module docstring's first line, the
  rest (examples) and the make target as the epilog, and `--log-level`.
- `setup_logging` configures the root logger once, at `--log-level` / `MLOPS_LOG_LEVEL`
  (default INFO), and exports the level so subprocesses (kfp.local components) log alike.
- `paint` / `highlight` colour status words (green ok, yellow warning, red failure) only on a
  terminal, never with `NO_COLOR`, always with `FORCE_COLOR`; otherwise text is unchanged.
- `progress` is a tqdm bar on stderr, shown only on a terminal at INFO or below.
- `fail` prints `error: <what went wrong>` and, where there is a remedy, `  next: <what to run>`.

Nothing heavy is imported here: commands that must start fast (gpu_check) use it too.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import os
import re
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

LOG_LEVEL_ENV = "MLOPS_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Libraries that log a lot at INFO; kept at WARNING unless the level is DEBUG.
CHATTY_LOGGERS = (
    "alembic", "botocore", "evidently", "filelock", "git", "great_expectations", "h5py", "httpx",
    "kfp", "matplotlib", "mlflow", "numba", "numexpr", "optuna", "PIL", "shap", "sqlalchemy",
    "urllib3",
)  # fmt: skip

GREEN, YELLOW, RED = "32", "33", "31"
# Status words (lower case) and their colour; `paint` picks by the word unless told.
TONES = {
    "ok": GREEN, "pass": GREEN, "passed": GREEN, "ready": GREEN, "done": GREEN,
    "promoted": GREEN, "promoted to champion": GREEN, "deployed": GREEN,
    "deployed as champion": GREEN,
    "warning": YELLOW, "refused": YELLOW, "skipped": YELLOW, "drift": YELLOW,
    "not promoted": YELLOW, "not deployed": YELLOW,
    "fail": RED, "failed": RED, "error": RED,
}  # fmt: skip


class UserError(Exception):
    """A failure the person running the command can fix; `hint` is what to run next."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# -- logging ---------------------------------------------------------------------------------


def log_level() -> str:
    """The level from `MLOPS_LOG_LEVEL` (INFO when unset or not a level)."""
    level = os.environ.get(LOG_LEVEL_ENV, "").strip().upper()
    return level if level in LOG_LEVELS else "INFO"


def add_log_level(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--log-level {DEBUG,INFO,WARNING,ERROR}`, defaulting to `MLOPS_LOG_LEVEL` (else INFO)."""
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=log_level(),
        help=f"how much to log (default: ${LOG_LEVEL_ENV}, else INFO; make: LOG_LEVEL=...)",
    )


class _Concise(logging.Formatter):
    """INFO as the bare message; other levels prefixed (`warning: ...`, `debug name: ...`)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno == logging.INFO:
            return message
        if record.levelno == logging.DEBUG:
            return f"debug {record.name}: {message}"
        return f"{record.levelname.lower()}: {message}"


class _Stderr(logging.StreamHandler[TextIO]):
    """A handler writing to the current `sys.stderr` (which tests and tools may swap)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _not_library_chatter(record: logging.LogRecord) -> bool:
    """False for a chatty library's INFO sent through the root logger (kfp.local calls
    `logging.info` directly: "Skipping conditional task ...", "Cleaned up workspace ..."),
    unless the level is DEBUG."""
    if record.name != "root" or record.levelno >= logging.WARNING:
        return True
    if logging.getLogger().level <= logging.DEBUG:
        return True
    parts = Path(record.pathname).parts
    return not any(package in parts for package in CHATTY_LOGGERS)


def setup_logging(level: str | None = None) -> str:
    """Configure the root logger at `level` (default: `MLOPS_LOG_LEVEL`, else INFO); return it.

    Adds one concise stderr handler unless the root logger already has handlers (the kfp
    executor's, pytest's, a notebook's), whose format is then kept. Chatty libraries stay at
    WARNING below DEBUG. The level is exported in `MLOPS_LOG_LEVEL` for child processes.
    Safe to call again: only the level changes.
    """
    name = (level or log_level()).upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {LOG_LEVELS}, got {level!r}")
    root = logging.getLogger()
    if not root.handlers:
        handler = _Stderr()
        handler.setFormatter(_Concise("%(message)s"))
        handler.addFilter(_not_library_chatter)
        root.addHandler(handler)
    root.setLevel(name)
    for chatty in CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.NOTSET if name == "DEBUG" else logging.WARNING)
    # MLflow sets its own loggers' level when first imported, from this variable (else INFO)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if name == "DEBUG" else "WARNING")
    os.environ[LOG_LEVEL_ENV] = name
    return name


# -- parsers ---------------------------------------------------------------------------------


def cli_parser(
    doc: str | None, *, prog: str, make: str | None = None, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A CLI's parser: the docstring's first paragraph as description, the rest (or `epilog`)
    and the make target after the options, and `--log-level`."""
    text = inspect.cleandoc(doc or "")
    first, _, rest = text.partition("\n\n")
    description = textwrap.fill(" ".join(first.split()), width=88)
    tail = (rest if epilog is None else inspect.cleandoc(epilog)).strip("\n").rstrip()
    if make:
        tail = f"{tail}\n\nmake target: {make}" if tail else f"make target: {make}"
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=tail or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_log_level(parser.add_argument_group("output"))
    return parser


# -- colour ----------------------------------------------------------------------------------


def colour_enabled(stream: TextIO | None = None) -> bool:
    """Colour on `stream` (default stdout): never with NO_COLOR, always with FORCE_COLOR, else
    only on a terminal that is not `TERM=dumb`."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    return _is_terminal(stream if stream is not None else sys.stdout)


def _is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (false for a closed stream or one without `isatty`)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def paint(text: str, tone: str | None = None, *, stream: TextIO | None = None) -> str:
    """`text` in its status colour (`tone`: GREEN, YELLOW, RED; default: by the word) when
    `stream` (default stdout) shows colour; else `text` unchanged."""
    code = tone or TONES.get(text.strip().lower())
    if code is None or not colour_enabled(stream):
        return text
    return f"\033[{code}m{text}\033[0m"


def highlight(text: str, words: Iterable[str], *, stream: TextIO | None = None) -> str:
    """`text` with each whole-word occurrence of `words` painted (unchanged without colour)."""
    words = sorted(words, key=len, reverse=True)
    if not words or not colour_enabled(stream):
        return text
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, words)) + r")(?![\w-])")
    return pattern.sub(lambda match: paint(match.group(1), stream=stream), text)


# -- progress --------------------------------------------------------------------------------


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Bars only on a terminal (stderr by default) and at log level INFO or below."""
    tty = _is_terminal(stream if stream is not None else sys.stderr)
    return tty and LOG_LEVELS.index(log_level()) <= LOG_LEVELS.index("INFO")


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
) -> Any:
    """A tqdm bar on stderr over `iterable` (or updated by hand: `bar.update(n)`), disabled
    where `progress_enabled()` is false; it clears itself when done. Use as a context manager
    when updating by hand."""
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not progress_enabled(),
        leave=False,
        dynamic_ncols=True,
    )


class Milestones:
    """When a long loop without a terminal (a kfp component's log) should print a progress
    line: about every tenth of `total`, and once at the end."""

    def __init__(self, total: int, parts: int = 10) -> None:
        self.total = total
        self.step = max(1, math.ceil(total / parts))
        self._next = self.step
        self._finished = False

    def due(self, done: int) -> bool:
        """True when `done` reached the next milestone (or the total, the first time)."""
        if self._finished or (done < self._next and done < self.total):
            return False
        self._next = (done // self.step + 1) * self.step
        self._finished = done >= self.total
        return True


# -- errors ----------------------------------------------------------------------------------


def fail(error: BaseException | str, hint: str | None = None, *, code: int = 2) -> int:
    """Print `error: <what went wrong>` and, when known, `  next: <what to run>` to stderr.

    The error's own `hint` (a `UserError` raised where the remedy is known) wins over `hint`,
    the command's fallback for its context. Returns `code`, the exit status.
    """
    message = str(error).strip() or type(error).__name__
    hint = getattr(error, "hint", None) or hint
    print(f"{paint('error', RED, stream=sys.stderr)}: {message}", file=sys.stderr)
    if hint:
        print(f"  next: {hint}", file=sys.stderr)
    return code
