#!/usr/bin/env bash
# Create .venv-k8s, the static checkers for infra/k8s (checkov, kubernetes-validate), idempotently:
#   infra/k8s/setup_tools.sh           (make k8s-tools)
# Kept apart from .venv: checkov's pins would downgrade packages the platform depends on.
# Packages are reinstalled only when tools-requirements.txt changed since the last success.
# Environment: PYTHON (default python3.11), K8S_VENV (default <repo>/.venv-k8s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
VENV="${K8S_VENV:-$ROOT/.venv-k8s}"
REQUIREMENTS="$ROOT/infra/k8s/tools-requirements.txt"
STAMP="$VENV/.requirements.sha256"
started=$SECONDS

say() { echo "setup_tools.sh: $*"; }
die() {
    echo "setup_tools.sh: ERROR: $*" >&2
    exit 1
}

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found (set PYTHON=/path/to/python3.11)"
[ -f "$REQUIREMENTS" ] || die "missing $REQUIREMENTS"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "" 2>/dev/null; then
    say "reusing $VENV"
else
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv $VENV' failed (Debian: apt-get install python3.11-venv)"
    say "created $VENV with $("$VENV/bin/python" --version 2>&1)"
fi

want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    say "packages up to date ($REQUIREMENTS unchanged)"
else
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" ||
        die "pip install -r $REQUIREMENTS into $VENV failed"
    echo "$want" >"$STAMP"
    say "installed $REQUIREMENTS"
fi

checkov="$("$VENV/bin/checkov" --version)" || die "checkov in $VENV does not run (delete $VENV and rerun)"
validate="$("$VENV/bin/kubernetes-validate" --version)" ||
    die "kubernetes-validate in $VENV does not run (delete $VENV and rerun)"
say "checkov $checkov, kubernetes-validate $validate"
say "size: $(du -sh "$VENV" | cut -f1); took $((SECONDS - started)) s"
