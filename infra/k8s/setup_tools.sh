#!/usr/bin/env bash
# Create .venv-k8s, the static checkers for infra/k8s (checkov, kubernetes-validate), idempotently:
#   infra/k8s/setup_tools.sh           (make k8s-tools)
# Kept apart from .venv: checkov's pins would downgrade packages the platform depends on.
# Packages are reinstalled only when tools-requirements.txt changed since the last success.
# Environment: PYTHON (default python3.11), K8S_VENV (default <repo>/.venv-k8s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${K8S_VENV:-$ROOT/.venv-k8s}"
REQUIREMENTS="$ROOT/infra/k8s/tools-requirements.txt"
started=$SECONDS

say() { echo "setup_tools.sh: $*"; }
die() {
    echo "setup_tools.sh: ERROR: $*" >&2
    exit 1
}

# shellcheck source=../pinned_venv.sh
source "$ROOT/infra/pinned_venv.sh"
pinned_venv "$VENV" "$REQUIREMENTS"

checkov="$("$VENV/bin/checkov" --version)" || die "checkov in $VENV does not run (delete $VENV and rerun)"
validate="$("$VENV/bin/kubernetes-validate" --version)" ||
    die "kubernetes-validate in $VENV does not run (delete $VENV and rerun)"
say "checkov $checkov, kubernetes-validate $validate"
say "size: $(du -sh "$VENV" | cut -f1); took $((SECONDS - started)) s"
