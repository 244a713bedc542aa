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
