"""`make help` is the index of the platform: it lists every target the Makefile defines."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_help_lists_every_target_with_its_description():
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z0-9-]*):(?!=)", makefile, re.M)
    undocumented = [t for t in targets if not re.search(rf"^{t}:.*## \S", makefile, re.M)]
    assert not undocumented, f"targets without a '## description': {undocumented}"
    shown = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = re.findall(r"^  make (\S+)", shown, re.M)
    assert listed == targets
    assert "LOG_LEVEL=" in shown


def make(*args: str, cwd: Path = ROOT, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def workspace(tmp_path: Path) -> Path:
    for folder in ("mlruns/artifacts", "reports/fraud/latest", "local_outputs"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "mlruns" / "mlflow.db").write_text("registry")
    return tmp_path


def test_make_clean_keeps_the_tracking_store_and_registry(tmp_path):
    work = workspace(tmp_path)
    assert make("clean", cwd=work).returncode == 0
    assert not (work / "reports").exists() and not (work / "local_outputs").exists()
    assert (work / "mlruns" / "mlflow.db").read_text() == "registry"


def test_make_clean_store_asks_before_deleting_mlruns(tmp_path):
    work = workspace(tmp_path)
    refused = make("clean-store", cwd=work, stdin="no\n")
    assert refused.returncode != 0 and "kept mlruns/" in refused.stdout
    assert (work / "mlruns" / "mlflow.db").exists()
    assert make("clean-store", cwd=work, stdin="yes\n").returncode == 0
    assert not (work / "mlruns").exists()
    workspace(tmp_path / "again")
    assert make("clean-store", "CONFIRM=1", cwd=tmp_path / "again").returncode == 0
    assert not (tmp_path / "again" / "mlruns").exists()


def kpi_command(*args: str) -> str:
    dry = make("-n", "report", *args).stdout
    return " ".join(
        line for line in dry.replace("\\\n", " ").splitlines() if "monitoring.kpi" in line
    )


def test_make_report_honours_project():
    assert "--projects churn" in kpi_command("PROJECT=churn")
    assert "--projects" not in kpi_command()  # every config and registered model
