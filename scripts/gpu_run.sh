#!/usr/bin/env bash
# Everything a CUDA machine must prove for issue #5, in one go, with the logs in $OUT (default:
# ./gpu-run). Made for the lent device machine (CuPy, PyTorch, pytest, pytest-benchmark and
# matplotlib already installed there, no network), so it installs nothing and runs from the tree:
#     bash scripts/gpu_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-run}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 GPUBP_REQUIRE_GPU=1
PY=${PYTHON:-python3}
status=0

step() {  # step NAME CMD...: run, log to $OUT/NAME.txt, remember a failure
    echo "== $1: ${*:2}"
    "${@:2}" > "$OUT/$1.txt" 2>&1
    local rc=$?
    tail -n 5 "$OUT/$1.txt"
    [ $rc -eq 0 ] || { echo "!! $1 exited $rc"; status=1; }
}

step info $PY -m gpubp info
step nvidia-smi nvidia-smi
step gpu-tests $PY -m pytest -m gpu -ra -p no:cacheprovider
step all-tests $PY -m pytest -ra -p no:cacheprovider --benchmark-disable
step train-gpu $PY -m gpubp train --device gpu --no-save --json
step train-cpu $PY -m gpubp train --device cpu --no-save --json
step bench $PY -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-json="$OUT/results.json"
step report $PY -m benchmarks.report "$OUT/results.json"
cp benchmarks/RESULTS.md benchmarks/throughput.png "$OUT/" 2>/dev/null
git rev-parse HEAD > "$OUT/commit.txt" 2>/dev/null
exit $status
