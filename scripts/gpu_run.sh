#!/usr/bin/env bash
# Everything a CUDA machine must prove, in one go, most important first, within 9 minutes (the step limits
# add up to 525 s; the device tool allows 600 s a command) on the lent
# H200 (CuPy, PyTorch, scikit-learn, pytest, pytest-benchmark and matplotlib already there, no network):
#
#     GPUBP_COMMIT=$(git rev-parse --short HEAD) bash scripts/gpu_run.sh      # the commit: .git does not travel
#
# At most 8 files come back from the device tool's $OUT, so this leaves 5 there: summary.txt (every step's
# tail and exit status), logs.tgz (every step's whole log), results.json, RESULTS.md and throughput.png.
# Each step has its own time limit, so one hang costs that step, not the run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-run}
LOGS="$OUT/logs"
mkdir -p "$LOGS"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0
echo "commit ${GPUBP_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}" | tee "$OUT/summary.txt"

step() {  # step NAME SECONDS CMD...: run with a time limit, log to $LOGS/NAME.txt, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
    local t0=$SECONDS
    timeout "$limit" "$@" > "$LOGS/$name.txt" 2>&1
    local rc=$?
    tail -n 6 "$LOGS/$name.txt" | tee -a "$OUT/summary.txt"
    echo "-- $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    [ $rc -eq 0 ] || status=1
}

step info 20 bash -c "$PY -m gpubp info; nvidia-smi; $PY -m pip list 2>/dev/null | grep -iE '^(numpy|cupy|scikit-learn|pandas|pytest|torch|numba|mpi4py) '"
# the GPU tests demand a GPU: a skip for want of one is a failure here
step gpu-tests 150 env GPUBP_REQUIRE_GPU=1 $PY -m pytest tests -m gpu -ra -p no:cacheprovider
step train-gpu 40 $PY -m gpubp train --device gpu --no-save --json
step train-cpu 25 $PY -m gpubp train --device cpu --no-save --json
# GPU rows, and the CPU rows the report sets them against (same host)
step bench 170 $PY -m pytest benchmarks --benchmark-only -p no:cacheprovider -p no:randomly \
    -k "gpu- or cpu-large or cpu-batch-sweep or sklearn" --benchmark-json="$OUT/results.json"
step report 20 $PY -m benchmarks.report "$OUT/results.json"
# the estimators with a GPU visible: their device="auto" takes it (scikit-learn's checks on a GPU, the README's
# example); the rest of the CPU suite is CI's
step sklearn-on-gpu 100 $PY -m pytest tests/test_sklearn.py tests/test_readme.py -q -x -p no:cacheprovider
cp benchmarks/RESULTS.md benchmarks/throughput.png "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$OUT" logs && rm -rf "$LOGS"
echo "gpu_run: exit $status" | tee -a "$OUT/summary.txt"
exit $status
