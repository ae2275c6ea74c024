#!/usr/bin/env bash
# lem GPU acceptance: one prepared check on one NVIDIA GPU with PyTorch, transformers and
# nvidia-ml-py installed (no Docker, no network needed). Prints one table and writes
# gpu-acceptance.json into $OUT, or the directory given with --out (default ./gpu-acceptance).
# Finishes within 8 minutes (a 450 s budget for the measurements, a hard 470 s stop).
#
#   bench/gpu/acceptance.sh [--dry-run] [--out DIR]     (or: npm run gpu-acceptance -- [--dry-run])
#
# --dry-run: CPU, tiny sizes, no NVML (NVML figures null with their reasons); CI runs it.
# The lem campaign section needs node (>= 20.19) with dist/ built and node_modules; without node
# it is reported as not run, with that reason, and everything else still runs (LEM_NODE names a
# node binary that is not on PATH).
# LEM_PYTHON picks the interpreter (default: the first python3 that imports torch).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DRY=()
DIR="${OUT:-$PWD/gpu-acceptance}"
BUDGET=450
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=(--dry-run); BUDGET=60 ;;
    --out) DIR="$2"; shift ;;
    --out=*) DIR="${1#--out=}" ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "acceptance.sh: unknown argument '$1' (use --dry-run, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$DIR" || { echo "acceptance.sh: cannot create $DIR" >&2; exit 2; }
DIR="$(cd "$DIR" && pwd)"

PY="${LEM_PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3 /usr/bin/python3 /opt/torch/.venv/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch' >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
if [ -z "$PY" ]; then PY="$(command -v python3 || true)"; fi
if [ -z "$PY" ]; then
  printf '{"schema":"lem.gpu_acceptance/1","dry_run":%s,"figures":{},"error":"no python3 on this machine"}\n' "$([ ${#DRY[@]} -gt 0 ] && echo true || echo false)" > "$DIR/gpu-acceptance.json"
  echo "no python3 on this machine: nothing measured (wrote $DIR/gpu-acceptance.json)"
  exit 1
fi

NODE="${LEM_NODE:-$(command -v node || true)}"
if [ -n "$NODE" ] && [ ! -f "$ROOT/dist/src/cli/main.js" ] && [ -d "$ROOT/node_modules" ]; then
  (cd "$ROOT" && npm run build >"$DIR/build.log" 2>&1) || echo "note: npm run build failed (see $DIR/build.log); the campaign section will say so" >&2
fi

# No network: the hub libraries fail fast instead of retrying downloads.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec timeout -k 5 $((BUDGET + 20)) "$PY" "$ROOT/bench/gpu/acceptance.py" --out "$DIR" --node "$NODE" --budget-s "$BUDGET" "${DRY[@]}"
