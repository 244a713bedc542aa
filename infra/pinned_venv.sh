#!/usr/bin/env bash
# Source this, then call `pinned_venv VENV REQUIREMENTS`: create VENV with $PYTHON (default
# python3.11) if it does not run, and install REQUIREMENTS only when the file changed since the
# last success (its sha256 is kept in VENV/.requirements.sha256). The caller defines say/die.
# Used by serving/triton/setup_env.sh (.venv-triton) and infra/k8s/setup_tools.sh (.venv-k8s).

pinned_venv() {
    local venv="$1" requirements="$2" python="${PYTHON:-python3.11}"
    local stamp="$venv/.requirements.sha256" want
    command -v "$python" >/dev/null 2>&1 || die "'$python' not found (set PYTHON=/path/to/python3.11)"
    [ -f "$requirements" ] || die "missing $requirements"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "" 2>/dev/null; then
        say "reusing $venv"
    else
        rm -rf "$venv"
        "$python" -m venv "$venv" || die "'$python -m venv $venv' failed (Debian: apt-get install python3.11-venv)"
        say "created $venv with $("$venv/bin/python" --version 2>&1)"
    fi
    want="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "packages up to date ($requirements unchanged)"
    else
        rm -f "$stamp"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" ||
            die "pip install -r $requirements into $venv failed"
        echo "$want" >"$stamp"
        say "installed $requirements"
    fi
}
