#!/usr/bin/env bash
# Create the local Triton runtime environment, idempotently:
#   .venv-triton/                      python -m venv + serving/triton/requirements.txt
#   .venv-triton/triton-backends/      Triton's --backend-directory, prepared here:
#     python/libtriton_python.so       copied from the nvidia-pytriton wheel
#     python/triton_python_backend_utils.py
#     python/triton_python_backend_stub  the stub built for this venv's Python (3.X)
# The wheel itself is left untouched: the stub is copied into a backend directory of our own,
# which serving.launcher passes to tritonserver. Its RPATH ($ORIGIN/../../../..) then no longer
# reaches nvidia_pytriton.libs, so the launcher puts that directory on LD_LIBRARY_PATH.
#
# Environment: PYTHON (default python3.11), TRITON_VENV (default <repo>/.venv-triton).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${TRITON_VENV:-$ROOT/.venv-triton}"
REQUIREMENTS="$ROOT/serving/triton/requirements.txt"
BACKENDS="$VENV/triton-backends"
started=$SECONDS

say() { echo "setup_env.sh: $*"; }
die() {
    echo "setup_env.sh: ERROR: $*" >&2
    exit 1
}

# 1-2. The venv and its pinned packages.
# shellcheck source=../../infra/pinned_venv.sh
source "$ROOT/infra/pinned_venv.sh"
pinned_venv "$VENV" "$REQUIREMENTS"
VPY="$VENV/bin/python"
"$VPY" -c 'import numpy, onnxruntime, sys
if int(numpy.__version__.split(".")[0]) >= 2:
    sys.exit(f"numpy {numpy.__version__}: the Triton python backend needs numpy<2")' ||
    die "the packages in $VENV do not import or are wrong (delete $VENV and rerun)"

# 3. Where things are, as this venv's Python sees it.
read -r PYVER SITE LIBDIR SONAME < <("$VPY" -c 'import sys, sysconfig
print(f"{sys.version_info[0]}.{sys.version_info[1]}", sysconfig.get_paths()["purelib"],
      sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME"))') ||
    die "cannot query $VPY"
TS="$SITE/pytriton/tritonserver"
LIBS="$SITE/nvidia_pytriton.libs"
SERVER="$TS/bin/tritonserver"
STUB="$TS/python_backend_stubs/$PYVER/triton_python_backend_stub"
[ -x "$SERVER" ] || die "no tritonserver binary at $SERVER (is nvidia-pytriton==0.7.0 installed?)"
[ -f "$STUB" ] || die "no python backend stub for Python $PYVER at $STUB"
# The stub links libpython; the interpreter's own copy must exist (a system libpython of an
# older patch release breaks models with "_thread.RLock ... _recursion_count").
[ -f "$LIBDIR/$SONAME" ] || die "no shared $SONAME in $LIBDIR: this Python was built without \
--enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.11; Debian's \
python3.11: apt-get install libpython3.11)"

# 4. The backend stub embeds Python with an isolated config (PYTHON* variables are ignored):
# this .pth keeps it from writing __pycache__ into the model repository, which a polling
# Triton would take for a change and reload the model for.
PTH="$SITE/triton_no_bytecode.pth"
echo "import sys; sys.dont_write_bytecode = True" >"$PTH"
say "wrote $PTH"

# 5. The backend directory, rebuilt whole under a temporary name and swapped in.
tmp="$VENV/.triton-backends.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/python"
cp "$TS/backends/python/libtriton_python.so" "$TS/backends/python/triton_python_backend_utils.py" \
    "$tmp/python/"
cp "$STUB" "$tmp/python/triton_python_backend_stub"
chmod 755 "$tmp/python/triton_python_backend_stub"
if [ -d "$BACKENDS" ] && diff -rq -x __pycache__ "$tmp" "$BACKENDS" >/dev/null 2>&1; then
    rm -rf "$tmp"  # unchanged: leave the directory a running server may be using alone
    say "backend directory up to date: $BACKENDS"
else
    rm -rf "$BACKENDS"
    mv "$tmp" "$BACKENDS"
    say "prepared $BACKENDS (python backend + stub for Python $PYVER)"
fi

# 6. Every shared library resolves the way serving.launcher will run them.
if command -v ldd >/dev/null 2>&1; then
    for binary in "$SERVER" "$BACKENDS/python/libtriton_python.so" \
        "$BACKENDS/python/triton_python_backend_stub"; do
        missing="$(LD_LIBRARY_PATH="$LIBDIR:$LIBS" ldd "$binary" | grep 'not found' || true)"
        [ -z "$missing" ] || die "$binary: unresolved libraries:
$missing"
    done
    say "shared libraries resolve (LD_LIBRARY_PATH=$LIBDIR:$LIBS)"
fi

say "tritonserver: $SERVER"
say "size: $(du -sh "$VENV" | cut -f1); took $((SECONDS - started)) s"
