#!/usr/bin/env bash
# Make a working environment in .venv: system libraries (Debian/Ubuntu, when we can install them),
# then seem-annotator itself (editable) with its test, bench and ray extras (the Ray engine tests run for real). Safe to run again: it only installs
# what changed. Used by `make app` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# --- 1. system libraries ---------------------------------------------------------------------
if command -v dpkg-query >/dev/null 2>&1; then
  wanted=$(grep -v '^\s*#' packaging/system-packages.txt | tr -s ' \n' ' ')
  missing=""
  for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing system packages:$missing"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >/dev/null || die "apt-get update failed"
      # shellcheck disable=SC2086
      apt-get install -y -q --no-install-recommends $missing >/dev/null || die "apt-get install failed for:$missing"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      say "installing system packages with sudo:$missing"
      sudo apt-get update -q >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null \
        || die "sudo apt-get install failed for:$missing"
    else
      die "missing system packages:$missing
  install them with:  sudo apt-get install$missing"
    fi
  fi
else
  say "not a Debian-like system: make sure PortAudio and Qt's xcb libraries are installed"
fi

# --- 2. virtual environment ------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV" || die "could not create a virtual environment (Debian: apt-get install python3-venv)"
fi

# --- 3. python packages (skipped when setup.cfg and the constraints are unchanged) ------------
stamp="$VENV/.seem-annotator-installed"
digest=$(cat setup.cfg pyproject.toml packaging/constraints-cpu.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
  exit 0
fi
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel || die "could not upgrade pip"
constraints=()
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  say "no NVIDIA GPU: installing the CPU build of torch"
  constraints=(-c packaging/constraints-cpu.txt)
fi
if ! "$VENV/bin/python" -m pip install -q "${constraints[@]}" -e ".[test,bench,ray]"; then
  if [ ${#constraints[@]} -gt 0 ]; then
    say "the pinned CPU torch is not available from your package index; installing the default torch build"
    "$VENV/bin/python" -m pip install -q -e ".[test,bench,ray]" || die "pip install failed (see above)"
  else
    die "pip install failed (see above)"
  fi
fi
# GrabCut's per-pixel loops are compiled on first use (numba, several seconds); do it now, not
# at the user's first click. A failure here only moves that cost to the first click.
"$VENV/bin/python" -c "from seem_annotator.engine.grabcut_kernels import warm_up; warm_up()" \
  || say "could not compile the classical backend's loops now; the first click will"
echo "$digest" > "$stamp"
say "environment ready in $VENV"
