#!/usr/bin/env bash
# One prepared check of the GPU path (issue 16), for a bare GPU machine without network:
#   packaging/device_check.sh [--device cuda|cpu] [--out DIR] [--fixtures D1:D2] [--steps a,b]
#                             [--budget SECONDS] [--quick] [--python PY] [--no-install]
# Installs the project (pip --no-deps) and the wheels prepared in .whl/ (packaging/device_wheels.sh)
# into a throwaway venv .devenv/ that also sees the interpreter's own packages (torch, numpy, ...),
# then runs packaging/device_check.py: fixture tests on the device (float32, TF32 off), bf16/fp16
# autocast agreement, bench latency, bench annotate (when it exists), the worker's out-of-memory
# fallback, Whisper. Writes DIR/device_check.json and DIR/device_check.log. Fixtures: .devfix/
# (copied there by device_wheels.sh) and ../shared/seem/fixtures, unless --fixtures says otherwise.
# Exit status: 0 all steps passed or skipped, 1 a step failed, 2 bad arguments, 3 no usable Python.
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda
OUT=bench-results/device_check
PY=${PYTHON:-python3}
INSTALL=1
PASS=()
usage() { sed -n 2,12p "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --device) [ $# -ge 2 ] || { echo "device_check: --device needs cuda or cpu" >&2; exit 2; }
              DEVICE=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || { echo "device_check: --out needs a folder" >&2; exit 2; }; OUT=$2; shift 2 ;;
    --python) [ $# -ge 2 ] || { echo "device_check: --python needs an interpreter" >&2; exit 2; }; PY=$2; shift 2 ;;
    --fixtures|--steps|--budget) [ $# -ge 2 ] || { echo "device_check: $1 needs a value" >&2; exit 2; }
              PASS+=("$1" "$2"); shift 2 ;;
    --quick) PASS+=(--quick); shift ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "device_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "device_check: --device must be cuda or cpu, not '$DEVICE'" >&2; exit 2 ;; esac
command -v "$PY" >/dev/null 2>&1 || { echo "device_check: no Python at '$PY' (use --python)" >&2; exit 3; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/device_check.log"
: > "$LOG"
say() { printf 'device_check: %s\n' "$*" | tee -a "$LOG" >&2; }
START=$(date +%s)
say "device $DEVICE, output $OUT, $("$PY" --version 2>&1) at $(command -v "$PY")"

RUN_PY="$PY"
INSTALL_NOTE="not installed (--no-install): running from the source tree"
if [ "$INSTALL" = 1 ]; then
  ENV="$PWD/.devenv"  # not under OUT: the device copies OUT back
  rm -rf "$ENV"
  # --without-pip: a bare interpreter may lack ensurepip; pip comes from the parent's packages.
  if "$PY" -m venv --without-pip --system-site-packages "$ENV" >>"$LOG" 2>&1; then
    site=$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # When $PY is itself a venv, --system-site-packages reaches the base interpreter only: list
    # the parent's site folders explicitly (their own .pth files, e.g. editable installs, are not run).
    "$PY" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' \
      > "$site/_device_check_parent.pth"
    wheels=()
    [ -d .whl ] && for w in .whl/*.whl; do [ -e "$w" ] && wheels+=("$w"); done
    ok=0
    if [ ${#wheels[@]} -gt 0 ]; then
      # One at a time: a wheel for another interpreter (the CPU rehearsal here) fails alone.
      for w in "${wheels[@]}"; do
        if "$ENV/bin/python" -m pip install -q --no-deps --no-index "$w" >>"$LOG" 2>&1; then
          ok=$((ok + 1))
        else
          say "wheel not installed: $(basename "$w") (see log)"
        fi
      done
    else
      say "no wheels in .whl/ (run packaging/device_wheels.sh beforehand); using what is installed"
    fi
    if "$ENV/bin/python" -m pip install -q --no-deps --no-index --no-build-isolation -e . >>"$LOG" 2>&1; then
      RUN_PY="$ENV/bin/python"
      INSTALL_NOTE="pip install --no-deps -e . into $ENV with $ok of ${#wheels[@]} wheels from .whl"
    else
      INSTALL_NOTE="pip install -e . failed (see log): running from the source tree with PYTHONPATH"
      RUN_PY="$ENV/bin/python"
    fi
  else
    INSTALL_NOTE="could not create a venv (see log): running from the source tree with PYTHONPATH"
  fi
fi
say "install: $INSTALL_NOTE ($(( $(date +%s) - START )) s)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # harmless after an editable install; needed without one
export DEVICE_CHECK_INSTALL="$INSTALL_NOTE"

"$RUN_PY" packaging/device_check.py --device "$DEVICE" --out "$OUT" "${PASS[@]}" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
say "finished with status $rc in $(( $(date +%s) - START )) s; results in $OUT/device_check.json"
exit "$rc"
