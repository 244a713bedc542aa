"""Security audit of what the pipeline image ships: its pinned dependencies and the code.

1. Known vulnerabilities: pip-audit of the exact pins in infra/image/requirements.lock (what
   the Dockerfile installs, nothing else), against PyPI's advisory feed. A local build label is
   dropped (torch 2.13.0+cpu is audited as torch 2.13.0: advisories name releases). Accepted
   findings, each with a reason and a review date, live in infra/audit/ignored.toml.
2. Accepted bandit findings: every `# noqa: S...` in the code must say why after the codes
   (`# noqa: S603 - fixed binary, no shell`). Ruff's S rules themselves run in `make audit`.

    python -m pipelines.audit                      # both; the packages of the repository
    python -m pipelines.audit --skip-dependencies  # only the noqa reasons (offline)

Exit status: 0 clean, 1 a finding (vulnerability, noqa without a reason, malformed or stale
ignore entry), 2 when the dependencies could not be audited (no answer from PyPI's per-version
JSON API, which pip-audit needs: a network that reaches only PyPI's index cannot audit).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
import sys
import tempfile
import tokenize
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from configs.cli import cli_parser, fail, setup_logging
from pipelines.image import LOCK_FILE, PYPROJECT, parse_lock

IGNORE_FILE = Path("infra/audit/ignored.toml")
# The platform's packages: those `make typecheck` checks (pyproject.toml [tool.mypy] files).
PACKAGES: tuple[str, ...] = tuple(tomllib.loads(PYPROJECT.read_text())["tool"]["mypy"]["files"])
IGNORE_KEYS = {"id": str, "package": str, "reason": str, "review": dt.date}
_NOQA = re.compile(r"#\s*noqa:\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)(?P<rest>.*)")


@dataclass(frozen=True)
class Ignored:
    """One accepted vulnerability of infra/audit/ignored.toml."""

    id: str
    package: str
    reason: str
    review: dt.date


@dataclass(frozen=True)
class Suppression:
    """One `# noqa` comment that silences a bandit (S) rule."""

    path: Path
    line: int
    codes: tuple[str, ...]
    reason: str


def load_ignored(text: str) -> list[Ignored]:
    """The entries of an ignore file; ValueError naming the entry and key when malformed."""
    entries = tomllib.loads(text).get("ignore", [])
    if not isinstance(entries, list):
        raise ValueError("'ignore' must be an array of tables ([[ignore]])")
    ignored = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ValueError(f"ignore entry {number}: not a table")
        unknown = sorted(set(entry) - set(IGNORE_KEYS))
        if unknown:
            raise ValueError(f"ignore entry {number}: unknown key(s) {unknown}")
        for key, kind in IGNORE_KEYS.items():
            value = entry.get(key)
            # a TOML datetime is a date too; the review is a plain date
            if not isinstance(value, kind) or isinstance(value, dt.datetime) or value == "":
                raise ValueError(
                    f"ignore entry {number}: '{key}' must be a non-empty {kind.__name__}"
                )
        ignored.append(Ignored(entry["id"], entry["package"], entry["reason"], entry["review"]))
    return ignored


def ignore_problems(ignored: Iterable[Ignored], pins: dict[str, str], today: dt.date) -> list[str]:
    """Entries that no longer hold: a package the lock does not pin, a review date passed."""
    problems = []
    for entry in ignored:
        if canonicalize_name(entry.package) not in pins:
            problems.append(f"{entry.id}: {entry.package} is not pinned in the lock (drop it)")
        if entry.review < today:
            problems.append(
                f"{entry.id}: review date {entry.review} passed: re-check {entry.package}"
            )
    return problems


def audit_requirements(pins: dict[str, str]) -> str:
    """The pins as a requirements file for pip-audit, local build labels dropped."""
    return "".join(f"{name}=={Version(version).public}\n" for name, version in sorted(pins.items()))


def pip_audit(requirements: str, ignore_ids: Iterable[str]) -> list[dict]:
    """pip-audit's JSON `dependencies` for the requirements (exact pins, no resolution)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, report = Path(tmp) / "requirements.txt", Path(tmp) / "report.json"
        path.write_text(requirements)
        cmd = [sys.executable, "-m", "pip_audit", "-r", str(path), "--no-deps", "--disable-pip",
               "--progress-spinner", "off", "--format", "json", "--output", str(report),
               "--aliases", "on", "--desc", "off"]  # fmt: skip
        for vuln in ignore_ids:
            cmd += ["--ignore-vuln", vuln]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - this interpreter's pip-audit, our own arguments
        if not report.is_file():
            raise RuntimeError(f"pip-audit failed (exit {done.returncode}): {done.stderr.strip()}")
        return json.loads(report.read_text())["dependencies"]


def suppressions(paths: Iterable[Path]) -> Iterator[Suppression]:
    """Every `# noqa` comment naming an S rule in the Python files under `paths`."""
    for root in paths:
        for path in sorted([root] if root.is_file() else root.rglob("*.py")):
            tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            for token in tokens:
                match = _NOQA.search(token.string) if token.type == tokenize.COMMENT else None
                if match is None:
                    continue
                codes = tuple(c.strip() for c in match["codes"].split(","))
                if any(code.startswith("S") for code in codes):
                    reason = match["rest"].strip().lstrip("-–:;").strip()
                    yield Suppression(path, token.start[0], codes, reason)


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(__doc__, prog="python -m pipelines.audit", make="make audit")
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help=f"where to check the noqa reasons (default: {' '.join(PACKAGES)})",
    )
    parser.add_argument("--lock-file", type=Path, default=LOCK_FILE, help=f"default: {LOCK_FILE}")
    parser.add_argument(
        "--ignore-file", type=Path, default=IGNORE_FILE, help=f"default: {IGNORE_FILE}"
    )
    parser.add_argument("--skip-dependencies", action="store_true", help="only the noqa reasons")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    findings: list[str] = []

    accepted = list(suppressions(args.paths or [Path(p) for p in PACKAGES]))
    for s in accepted:
        if not s.reason:
            findings.append(f"{s.path}:{s.line}: `# noqa: {', '.join(s.codes)}` without a reason")
    print(f"noqa: {len(accepted)} accepted bandit finding(s)")
    for s in accepted:
        print(f"  {s.path}:{s.line} {','.join(s.codes)} {s.reason or '(no reason)'}")

    if not args.skip_dependencies:
        pins = parse_lock(args.lock_file.read_text())
        try:
            ignored = load_ignored(args.ignore_file.read_text())
        except (OSError, ValueError) as exc:
            return fail(f"{args.ignore_file}: {exc}", code=1)
        findings += ignore_problems(ignored, pins, dt.date.today())
        try:
            results = pip_audit(audit_requirements(pins), [e.id for e in ignored])
        except (RuntimeError, ValueError) as exc:
            return fail(exc, "check that pip-audit is installed: make install")
        skipped = [d for d in results if "skip_reason" in d]
        if skipped:
            return fail(
                f"{len(skipped)} of {len(results)} pins of {args.lock_file} could not be audited, "
                f"e.g. {skipped[0]['skip_reason']}",
                "run `make audit` where https://pypi.org/pypi/<name>/<version>/json answers",
            )
        for dep in results:
            for vuln in dep["vulns"]:
                fixed = ", ".join(vuln["fix_versions"]) or "no fixed release"
                aliases = f" ({', '.join(vuln['aliases'])})" if vuln.get("aliases") else ""
                findings.append(
                    f"{dep['name']}=={dep['version']}: {vuln['id']}{aliases}; fixed in: {fixed}"
                )
        print(
            f"pip-audit: {len(results)} pins of {args.lock_file}, "
            f"{len(ignored)} accepted in {args.ignore_file}"
        )

    if findings:
        return fail(
            "the audit found:\n  " + "\n  ".join(findings),
            f"raise the pin (make image-lock); where no fix fits, justify it in {args.ignore_file}",
            code=1,
        )
    print("audit: no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
