"""`make audit`'s offline parts: the accepted-vulnerability list is well formed and current,
every `# noqa: S...` says why, and pip-audit's answers become findings (pip-audit stubbed:
the real one needs PyPI's advisory feed, so `make audit` stays out of `make test`)."""

import datetime as dt
from pathlib import Path

import pytest

from pipelines import audit
from pipelines.image import LOCK_FILE, parse_lock
from tests.conftest import REPO

GOOD = """
[[ignore]]
id = "GHSA-aaaa-bbbb-cccc"
package = "Some_Package"
reason = "the fix needs pandas 3, which evidently 0.7 does not import with"
review = 2027-03-01
"""


def test_the_ignore_list_is_well_formed_and_names_pinned_packages() -> None:
    ignored = audit.load_ignored((REPO / audit.IGNORE_FILE).read_text())
    pins = parse_lock((REPO / LOCK_FILE).read_text())
    for entry in ignored:
        assert entry.id and entry.package and entry.reason, entry
    # the review date is checked by `make audit` itself: a date here would make CI time-bound
    assert audit.ignore_problems(ignored, pins, today=dt.date.min) == []


def test_load_ignored_reads_an_entry() -> None:
    (entry,) = audit.load_ignored(GOOD)
    assert entry == audit.Ignored(
        "GHSA-aaaa-bbbb-cccc",
        "Some_Package",
        "the fix needs pandas 3, which evidently 0.7 does not import with",
        dt.date(2027, 3, 1),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace('reason = "the fix', 'because = "the fix'), "unknown key"),
        ("\n".join(line for line in GOOD.splitlines() if "reason" not in line), "'reason'"),
        (GOOD.replace("review = 2027-03-01", 'review = "soon"'), "'review'"),
        (GOOD.replace("review = 2027-03-01", "review = 2027-03-01T00:00:00"), "'review'"),
        (GOOD.replace('package = "Some_Package"', 'package = ""'), "'package'"),
        ('ignore = "GHSA-1"', "array of tables"),
    ],
)
def test_load_ignored_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        audit.load_ignored(text)


def test_ignore_problems_flags_unpinned_packages_and_passed_reviews() -> None:
    ignored = audit.load_ignored(GOOD)
    assert audit.ignore_problems(ignored, {"some-package": "1.0"}, dt.date(2027, 3, 1)) == []
    (late,) = audit.ignore_problems(ignored, {"some-package": "1.0"}, dt.date(2027, 3, 2))
    assert "review date 2027-03-01 passed" in late
    (gone,) = audit.ignore_problems(ignored, {"other": "1.0"}, dt.date(2027, 1, 1))
    assert "not pinned" in gone


def test_audit_requirements_drop_local_build_labels() -> None:
    text = audit.audit_requirements({"torch": "2.13.0+cpu", "numpy": "2.4.6"})
    assert text == "numpy==2.4.6\ntorch==2.13.0\n"


def test_every_bandit_noqa_in_the_packages_says_why() -> None:
    found = list(audit.suppressions(REPO / p for p in audit.PACKAGES))
    assert found, "the scan sees the existing suppressions"
    unexplained = [f"{s.path}:{s.line}" for s in found if not s.reason]
    assert not unexplained, f"# noqa: S... without a reason: {unexplained}"


def test_suppressions_reads_comments_only(tmp_path: Path) -> None:
    code = tmp_path / "code.py"
    code.write_text(
        "import subprocess\n"
        "subprocess.run(cmd)  # noqa: S603\n"
        "HOST = '0.0.0.0'  # noqa: E501, S104 - compared, never bound\n"
        "x = 1  # noqa: BLE001 - not a bandit rule\n"
        "TEXT = '# noqa: S105'\n"
    )
    found = list(audit.suppressions([code]))
    assert [(s.line, s.codes, s.reason) for s in found] == [
        (2, ("S603",), ""),
        (3, ("E501", "S104"), "compared, never bound"),
    ]


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: list[dict]) -> int:
    lock = tmp_path / "requirements.lock"
    lock.write_text("torch==2.13.0+cpu\nsome-package==1.0\n")
    ignore_file = tmp_path / "ignored.toml"
    ignore_file.write_text(GOOD.replace("2027-03-01", "2999-01-01"))
    code = tmp_path / "code.py"
    code.write_text("x = 1\n")
    asked = {}

    def fake_pip_audit(requirements: str, ignore_ids: list[str]) -> list[dict]:
        asked.update(requirements=requirements, ignore_ids=list(ignore_ids))
        return answer

    monkeypatch.setattr(audit, "pip_audit", fake_pip_audit)
    status = audit.main([str(code), "--lock-file", str(lock), "--ignore-file", str(ignore_file)])
    assert asked == {
        "requirements": "some-package==1.0\ntorch==2.13.0\n",
        "ignore_ids": ["GHSA-aaaa-bbbb-cccc"],
    }
    return status


def test_main_is_clean_without_vulnerabilities(tmp_path, monkeypatch, capsys) -> None:
    answer = [{"name": "torch", "version": "2.13.0", "vulns": []}]
    assert _run(tmp_path, monkeypatch, answer) == 0
    assert "audit: no finding" in capsys.readouterr().out


def test_main_reports_each_vulnerability(tmp_path, monkeypatch, capsys) -> None:
    vuln = {"id": "PYSEC-2099-1", "fix_versions": ["2.14.0"], "aliases": ["CVE-2099-1"]}
    answer = [{"name": "torch", "version": "2.13.0", "vulns": [vuln]}]
    assert _run(tmp_path, monkeypatch, answer) == 1
    err = capsys.readouterr().err
    assert "torch==2.13.0: PYSEC-2099-1 (CVE-2099-1); fixed in: 2.14.0" in err


def test_main_refuses_a_partial_audit(tmp_path, monkeypatch, capsys) -> None:
    answer = [
        {"name": "torch", "version": "2.13.0", "vulns": []},
        {"name": "some-package", "skip_reason": "Dependency not found on PyPI"},
    ]
    assert _run(tmp_path, monkeypatch, answer) == 2
    assert "1 of 2 pins" in capsys.readouterr().err
