#!/usr/bin/env bash
# Everything a CUDA machine must prove, in one go, most important first, within one device command (600 s) on
# an H200 (CuPy, PyTorch, scikit-learn, pandas, onnx, onnxruntime, tensorboard, pytest, pytest-benchmark and
# matplotlib already there, no network; skl2onnx and tensorboardX are not: bring their wheels, or the export and
# TensorBoard tests, their gpu-marked ones included, skip):
#
#     GPUBP_COMMIT=$(git rev-parse --short HEAD) bash scripts/gpu_run.sh      # the commit: .git does not travel
#     bash scripts/gpu_run.sh --dry-run      # the steps, their limits and the files it returns; runs nothing
#
# Each step has its own time limit, computed below from what the step selects (pytest counts its tests first),
# so one hang costs that step, not the run; the limits add up to at most GPUBP_RUN_TOTAL_S (560 s: a remote
# command may run 600 s, the rest is start-up and packing). A plan over that total is refused before
# anything runs. Every step's status is its own command's: a crash in `gpubp info`, a missing CuPy wheel, a
# skipped GPU test, a benchmark row that did not run or measured nonsense each fail the run.
#
# At most 8 files come back from the remote run's $OUT, so this leaves 5 there: summary.txt (every step's
# tail and exit status), logs.tgz (every step's whole log), results.json, RESULTS.md and throughput.png.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
case "${1:-}" in
    --dry-run) DRY=1 ;;
    "") ;;
    *) echo "usage: bash scripts/gpu_run.sh [--dry-run]" >&2; exit 2 ;;
esac
OUT=${OUT:-gpu-run}
LOGS="$OUT/logs"
TOTAL_S=${GPUBP_RUN_TOTAL_S:-560}
FILES="summary.txt logs.tgz results.json RESULTS.md throughput.png"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
BENCH_K="gpu- or cpu-large or cpu-batch-sweep or sklearn"

collect() {  # collect ARGS...: pytest's list of the tests ARGS select (nothing runs); a collection error fails
    local listing
    if ! listing=$($PY -m pytest "$@" --collect-only -q -p no:cacheprovider -p no:randomly 2>&1); then
        echo "gpu_run: pytest cannot collect $*:" >&2
        tail -n 5 <<< "$listing" >&2
        return 2
    fi
    grep '::' <<< "$listing" || true
}
count() { grep -c -- "$1" <<< "$2" || true; }  # count PATTERN LISTING: matching lines (0 when none)

t_plan=$SECONDS
gpu_tests=$(collect tests -m gpu) || exit 2
bench=$(collect benchmarks -k "$BENCH_K") || exit 2
# the estimator tests, and the README's and the estimators page's examples (tests/test_docs.py runs them)
SK_ARGS=(tests/test_sklearn.py tests/test_docs.py -k "test_sklearn or (test_every_block and (README or estimators))")
sk_tests=$(collect "${SK_ARGS[@]}") || exit 2
N_GPU_TESTS=$(count '::' "$gpu_tests")
N_KERNEL_TESTS=$(count 'test_cupy_kernel_matches_numpy_twin' "$gpu_tests")  # one kernel, one small launch each
N_BENCH_GPU=$(count 'test_gpubp_step\[gpu-.*float32' "$bench")  # float64 rows skip on a GPU
N_BENCH_CPU=$(count 'test_gpubp_step\[cpu-' "$bench")
N_BENCH_TORCH=$(count 'test_torch_step\[' "$bench")
N_BENCH_SK=$(count 'bench_sklearn' "$bench")
N_SK_TESTS=$(count '::' "$sk_tests")
N_DOC_PAGES=$(count 'test_docs.py::' "$sk_tests")

# Seconds per selected item, estimated for the H200 host (16 cores) and rounded up; summary.txt records each
# step's actual time, so a run shows where an estimate was wrong. A GPU row: calibration, 15 timed rounds of
# >= 2 ms, then 7 alternating rounds of gpubp, its GEMMs and PyTorch at 0.1 s each, with no rest between them
# (the rest is for CPU thread pools, which a GPU row does not use): ~3 s. A CPU row rests 0.3 s before each of
# its 21 alternating rounds: ~10 s. The scikit-learn fit row times 5 alternating 200-epoch fits of 3 fitters.
PLAN_S=15  # the three collections above
LIMIT_INFO=20
# a kernel comparison is one launch over 37×23 elements plus, the first time per kernel and dtype, an NVRTC
# compile (~0.5 s, and the random and extreme cases share it): half a second each; every other test one second
LIMIT_GPU_TESTS=$((45 + 1 * (N_GPU_TESTS - N_KERNEL_TESTS) + N_KERNEL_TESTS / 2))
LIMIT_TRAIN_GPU=30  # the default run: CuPy import, kernels compiled, ~2 s of epochs
LIMIT_BENCH=$((15 + 4 * N_BENCH_GPU + 2 * N_BENCH_TORCH + 10 * N_BENCH_CPU + 20 * N_BENCH_SK))
LIMIT_BENCH_CHECK=15
LIMIT_REPORT=20
LIMIT_SKLEARN=$((20 + N_SK_TESTS * 3 / 10 + 8 * N_DOC_PAGES))  # a page: a training run, a grid search
SUM=$((PLAN_S + LIMIT_INFO + LIMIT_GPU_TESTS + LIMIT_TRAIN_GPU + LIMIT_BENCH + LIMIT_BENCH_CHECK + LIMIT_REPORT
       + LIMIT_SKLEARN))

say() {  # a line for the terminal and, in a real run, for summary.txt
    if [ $DRY -eq 1 ]; then echo "$*"; else echo "$*" | tee -a "$OUT/summary.txt"; fi
}
if [ $DRY -eq 0 ]; then
    mkdir -p "$LOGS"
    : > "$OUT/summary.txt"
    say "commit ${GPUBP_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    say "plan: $((SECONDS - t_plan)) s (budgeted $PLAN_S s)"
fi
say "selected: $N_GPU_TESTS gpu tests ($N_KERNEL_TESTS kernel comparisons); bench rows: $N_BENCH_GPU gpu, $N_BENCH_TORCH PyTorch, $N_BENCH_CPU cpu," \
    "$N_BENCH_SK scikit-learn; $N_SK_TESTS estimator tests"
status=0

step() {  # step NAME SECONDS CMD...: run with a time limit, log to $LOGS/NAME.txt, remember a failure
    local name=$1 limit=$2
    shift 2
    say "== $name (limit ${limit}s): $*"
    [ $DRY -eq 1 ] && return
    local t0=$SECONDS
    timeout "$limit" "$@" > "$LOGS/$name.txt" 2>&1
    local rc=$?
    tail -n 6 "$LOGS/$name.txt" | tee -a "$OUT/summary.txt"
    [ $rc -eq 124 ] && say "-- $name: killed at its limit of $limit s"
    say "-- $name: exit $rc after $((SECONDS - t0)) s"
    [ $rc -eq 0 ] || status=1
}

if [ $SUM -gt "$TOTAL_S" ]; then
    echo "gpu_run: the step limits add up to $SUM s, over the $TOTAL_S s a run may take: select fewer tests or" \
         "benchmark rows (nothing was run)" >&2
    exit 2
fi

# gpubp info's own status (a crash fails); a GPU must answer; the CuPy wheel is cupy-cuda12x or cupy-cuda13x
step info $LIMIT_INFO bash -c "set -eo pipefail; $PY -m gpubp info
    $PY -c 'import sys; from gpubp.backend import gpu_unavailable_reason as why; sys.exit(why())'
    nvidia-smi
    $PY -m pip list 2>/dev/null | grep -iE '^(numpy|cupy-cuda1[23]x|scikit-learn|pandas|pytest|torch|numba|mpi4py) '
    $PY -m pip list 2>/dev/null | grep -qiE '^cupy-cuda1[23]x '"
# the GPU tests demand a GPU: a skip for want of one is a failure here
step gpu-tests $LIMIT_GPU_TESTS env GPUBP_REQUIRE_GPU=1 $PY -m pytest tests -m gpu -ra -p no:cacheprovider
step train-gpu $LIMIT_TRAIN_GPU $PY -m gpubp train --device gpu --no-save --json
# GPU rows, and the CPU rows the report sets them against (same host)
step bench $LIMIT_BENCH $PY -m pytest benchmarks --benchmark-only -p no:cacheprovider -p no:randomly \
    -k "$BENCH_K" --benchmark-json="$OUT/results.json"
# every selected row ran (none skipped for want of a GPU) and measured something plausible
step bench-check $LIMIT_BENCH_CHECK $PY scripts/check_bench.py "$OUT/results.json"
step report $LIMIT_REPORT $PY -m benchmarks.report "$OUT/results.json"
# the estimators with a GPU visible: their device="auto" takes it (scikit-learn's checks on a GPU, the docs'
# examples); the rest of the CPU suite is CI's
step sklearn-on-gpu $LIMIT_SKLEARN $PY -m pytest "${SK_ARGS[@]}" -q -p no:cacheprovider

if [ $DRY -eq 1 ]; then
    echo "plan (collecting the tests above): $PLAN_S s"
    echo "total: $SUM s of $TOTAL_S s"
    echo "files returned in \$OUT ($OUT): $FILES"
    exit 0
fi
cp benchmarks/RESULTS.md benchmarks/throughput.png "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$OUT" logs && rm -rf "$LOGS"
say "gpu_run: exit $status"
exit $status
