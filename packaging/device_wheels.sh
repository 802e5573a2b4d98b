#!/usr/bin/env bash
# Prepare what packaging/device_check.sh needs on a bare GPU machine without network, here, with
# network: the wheels the project needs that such a machine lacks (Python 3.12, manylinux x86_64)
# in .whl/, and the Focal-T fixture copied into .devfix/ (both git-ignored, small enough to carry).
# Usage: packaging/device_wheels.sh [--python-version 3.12] [--fixture DIR]   (also `make device-wheels`)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
PYVER=3.12
FIXTURE=../shared/seem/fixtures/tiny_focalt_v1
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYVER=$2; shift 2 ;;
    --fixture) FIXTURE=$2; shift 2 ;;
    -h|--help) sed -n 2,5p "$0"; exit 0 ;;
    *) echo "device_wheels: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'device_wheels: %s\n' "$*" >&2; }
mkdir -p .whl
# Binary wheels for the target interpreter (not this one): pip resolves no dependencies here, so
# the list is complete on its own (sounddevice needs cffi, which needs pycparser; whisper needs
# more-itertools; ftfy needs wcwidth). setuptools/wheel let `pip install -e .` build offline.
BINARY=(pycocotools shapely PyMaxflow more-itertools sounddevice cffi pycparser ftfy wcwidth setuptools wheel)
"$PY" -m pip download -q --only-binary=:all: --python-version "$PYVER" --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --implementation cp --no-deps \
  -d .whl "${BINARY[@]}"
# openai-whisper is published as an sdist only: build its (pure-Python) wheel here.
if ! ls .whl/openai_whisper-*.whl >/dev/null 2>&1; then
  if ! "$PY" -m pip download -q --only-binary=:all: --python-version "$PYVER" --no-deps -d .whl openai-whisper \
      2>/dev/null; then
    say "openai-whisper has no wheel: building one from its sdist"
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl openai-whisper \
      || "$PY" -m pip wheel -q --no-deps -w .whl openai-whisper
  fi
fi
ls .whl/openai_whisper-*.whl >/dev/null 2>&1 || { say "ERROR: no openai-whisper wheel in .whl"; exit 1; }

if [ -d "$FIXTURE" ]; then
  mkdir -p .devfix
  name=$(basename "$FIXTURE")
  rm -rf ".devfix/$name"
  mkdir ".devfix/$name"
  for f in config.yaml state_dict.pt inputs.pt outputs.pt manifest.json run_log.json; do
    [ -f "$FIXTURE/$f" ] && cp "$FIXTURE/$f" ".devfix/$name/"
  done
  say "fixture copied to .devfix/$name"
else
  say "no fixture at $FIXTURE: the device check will skip the fixture steps unless ../shared is there"
fi
say "wheels in .whl ($(du -sh .whl | cut -f1)), fixtures in .devfix ($(du -sh .devfix 2>/dev/null | cut -f1))"
ls -1 .whl >&2
