#!/usr/bin/env bash
# Everything a CUDA machine must prove, in one go, most important first, within one device command (600 s) on
# an H200 (CuPy, PyTorch, scikit-learn, pandas, onnx, onnxruntime, tensorboard, pytest, pytest-benchmark and
# matplotlib already there, no network; skl2onnx and tensorboardX are not: bring their wheels, or the export and
# TensorBoard tests, their gpu-marked ones included, skip):
#
#     GPUBP_COMMIT=$(git rev-parse --short HEAD) bash scripts/gpu_run.sh      # the commit: .git does not travel
#     bash scripts/gpu_run.sh --dry-run      # the steps, their limits and the files it returns; runs nothing
#     bash scripts/gpu_run.sh --rehearse     # this script, first line to last, on a CPU against the fake CuPy
#     GPUBP_RUN_STEPS=sklearn-checks,bench-sklearn bash scripts/gpu_run.sh   # the second command, time allowing
#     GPUBP_RUN_STEPS=bench,report bash scripts/gpu_run.sh     # only these steps (a second run after fixes)
#
# The device gives a session 15 minutes in all, start-up (1-2 min) included, and 600 s a command, so the run is
# two commands. The default one (these limits add up to 554 s of 560) holds what must be proven first: info,
# gpu-tests, train-gpu, bench (the GPU rows, PyTorch's beside them, the CPU rows the report sets them against),
# bench-check, report, and sklearn-on-gpu: the estimators' own tests and scikit-learn's checks of the float32
# (default) estimators, whose expectations are the ones a GPU changes. The second command, run when device time
# remains, holds the rest: sklearn-checks (the float64 estimators' checks, the docs' estimator pages) and
# bench-sklearn (the two scikit-learn fit rows, checked). Why, by the rehearsal's prices on the GPU machine
# (docs/gpu.md): everything in one command needed 566 s of limits, and bench (~170 s priced of 195) and the
# estimator step (231 s of 139) left less than 25 % of their limits. The two scikit-learn rows alone price ~70 s
# (14 CPU fits) and prove nothing the GPU rows and the estimator tests do not: out of bench, it prices ~115 s of
# its 167 s. Of the estimator step, the 94 own tests price ~56 s and 252 checks ~44 s, the two docs pages ~26 s:
# the own tests and the 126 float32 checks price ~55-82 s of 151 s. Every limit is at least 4/3 of its price;
# `headroom.py --plan` checks that from a dry run's counts, and the rehearsal after each step from what it did.
#
# What comes back from the remote run's $OUT is, at every moment, at most two files: summary.txt (written
# first, then after every step: each step's tail and exit status) and run.tgz (every step's whole log,
# results.json, RESULTS.md and throughput.png), packed again after every step beside $OUT and moved in whole;
# a run killed at any point returns what it had.
#
# --rehearse: the same steps, commands, limits, logs, summary and packing, with the fake CuPy of
# tests/fake_gpu.py installed as `cupy` in every Python process (tests/rehearsal/sitecustomize.py; nothing
# of it reaches gpubp/) and a stand-in nvidia-smi. After each step it checks the plan against what the step
# did (tests/rehearsal/headroom.py): kernels compiled, estimator fits and rests, priced at a GPU machine's
# costs, must leave 25 % of the step's limit. GPUBP_RUN_K adds a pytest -k expression to every pytest step
# (a reduced selection of the same script: the test in `make test` uses one).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

collect() {  # collect ARGS...: pytest's list of the tests ARGS select (nothing runs); a collection error fails
    local listing
    if ! listing=$($PY -m pytest "$@" "${PYTEST_W[@]}" --collect-only -q -p no:cacheprovider -p no:randomly 2>&1)
    then
        echo "gpu_run: pytest cannot collect $*:" >&2
        tail -n 8 <<< "$listing" >&2
        return 2
    fi
    grep '::' <<< "$listing" || true
}
count() { grep -c -- "$1" <<< "$2" || true; }  # count PATTERN LISTING: matching lines (0 when none)
selected() { [[ ",$ONLY," == *",$1,"* ]]; }  # selected STEP: the run runs it

say() {  # a line for the terminal and, in a real run, for summary.txt
    if [ "$DRY" -eq 1 ]; then echo "$*"; else echo "$*" | tee -a "$OUT/summary.txt"; fi
}

pack() {  # run.tgz anew beside $OUT, then moved in whole: $OUT never holds a half-written archive
    [ "$DRY" -eq 1 ] && return
    local part="$WORK/run.tgz.part"
    if tar czf "$part" -C "$WORK" run 2> "$WORK/tar.err"; then
        mv -f "$part" "$OUT/run.tgz"
    else
        say "gpu_run: packing failed: $(tail -n 1 "$WORK/tar.err")"
    fi
}

step() {  # step NAME SECONDS CMD...: run with a time limit, log to run/logs/NAME.txt, remember a failure
    local name=$1 limit=$2 planned=$2
    shift 2
    if [ -n "${ONLY:-}" ] && ! selected "$name"; then  # (ONLY unset: step() sourced on its own, by the tests)
        if [ -n "${GPUBP_RUN_STEPS:-}" ]; then say "== $name: not selected (GPUBP_RUN_STEPS=$ONLY)"
        else say "== $name: not in the default run (the second command: GPUBP_RUN_STEPS=$SECOND_STEPS)"; fi
        return
    fi
    say "== $name (limit ${limit}s): $*"
    [ "$DRY" -eq 1 ] && return
    local t0=$SECONDS log="$LOGS/$name.txt" pid rc
    # a rehearsal's host is not the GPU machine: GPUBP_REHEARSE_SLOWER=N gives its steps N times the time
    # (the plan is judged by the counts below, at the GPU machine's prices, against the limit itself)
    [ "$REHEARSE" -eq 1 ] && limit=$((limit * ${GPUBP_REHEARSE_SLOWER:-1}))
    # timeout makes a process group of its own and signals it whole; -k: KILL what ignores TERM 5 s on
    GPUBP_RUN_STEP=$name timeout -k 5 "$limit" "$@" > "$log" 2>&1 < /dev/null &
    pid=$!
    wait "$pid"
    rc=$?
    kill -KILL -- "-$pid" 2> /dev/null  # what of the step's group outlived it (its pgid is timeout's pid)
    tail -n 6 "$log" | cut -c 1-400 | tee -a "$OUT/summary.txt"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && say "-- $name: killed at its limit of $limit s"
    say "-- $name: exit $rc after $((SECONDS - t0)) s"
    [ $rc -eq 0 ] || status=1
    if [ "$REHEARSE" -eq 1 ]; then  # the plan against what the step did, at a GPU machine's prices
        $PY tests/rehearsal/headroom.py "$COUNTS" "$name" "$planned" >> "$log" 2>&1 || status=1
        tail -n 1 "$log" | tee -a "$OUT/summary.txt"
    fi
    pack
}

main() {
    DRY=0 REHEARSE=0
    case "${1:-}" in
        --dry-run) DRY=1 ;;
        --rehearse) REHEARSE=1 ;;
        "") ;;
        *) echo "usage: bash scripts/gpu_run.sh [--dry-run | --rehearse]" >&2; exit 2 ;;
    esac
    if [ "$REHEARSE" -eq 1 ]; then OUT=${OUT:-gpu-rehearsal}; else OUT=${OUT:-gpu-run}; fi
    TOTAL_S=${GPUBP_RUN_TOTAL_S:-560}
    # the default run: what must be proven first; the second command (GPUBP_RUN_STEPS=$SECOND_STEPS) the rest
    DEFAULT_STEPS=info,gpu-tests,train-gpu,bench,bench-check,report,sklearn-on-gpu
    SECOND_STEPS=sklearn-checks,bench-sklearn
    ONLY=${GPUBP_RUN_STEPS:-$DEFAULT_STEPS}
    FILES="summary.txt run.tgz"
    export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
    PY=${PYTHON:-python3}
    PYTEST_W=()
    status=0
    if [ "$DRY" -eq 0 ]; then  # summary.txt before anything else: a run killed in its plan still says so
        mkdir -p "$OUT"
        rm -f "$OUT/summary.txt" "$OUT/run.tgz"
        : > "$OUT/summary.txt"
        say "commit ${GPUBP_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
        # the archive is packed beside $OUT where it can be (a rename into $OUT is then whole at once)
        WORK=$(mktemp -d "$(dirname "$OUT")/.gpu_run.XXXXXX" 2>/dev/null || mktemp -d "${TMPDIR:-/tmp}/gpu_run.XXXXXX")
        trap 'rm -rf "$WORK"' EXIT
        LOGS="$WORK/run/logs"
        mkdir -p "$LOGS"
    fi
    if [ "$REHEARSE" -eq 1 ]; then
        say "rehearsal: the fake CuPy (tests/fake_gpu.py) in every Python process; no GPU is used"
        COUNTS="$WORK/counts"
        mkdir -p "$COUNTS"
        export GPUBP_REHEARSE=1 GPUBP_REHEARSE_COUNTS=$COUNTS PYTHONPATH=$PWD/tests/rehearsal:$PWD
        export PATH=$PWD/tests/rehearsal/bin:$PATH
    fi
    # bench: the GPU rows, PyTorch's beside them and the CPU rows the report sets them against; bench-sklearn: the
    # scikit-learn fit rows. sklearn-on-gpu: the estimators' own tests and scikit-learn's checks of the float32
    # (default) estimators; sklearn-checks: the float64 estimators' checks and the docs' estimator examples.
    local K_ARGS=() BENCH_K="gpu- or cpu-large or cpu-batch-sweep" BENCH_SK_K="sklearn"
    local SK_K="not (test_sklearn_estimator_checks and float64)"
    local SK2_K="(test_sklearn_estimator_checks and float64) or (test_every_block and (README or estimators))"
    if [ -n "${GPUBP_RUN_K:-}" ]; then
        K_ARGS=(-k "$GPUBP_RUN_K")
        BENCH_K="($BENCH_K) and ($GPUBP_RUN_K)"
        BENCH_SK_K="($BENCH_SK_K) and ($GPUBP_RUN_K)"
        SK_K="($SK_K) and ($GPUBP_RUN_K)"
        SK2_K="($SK2_K) and ($GPUBP_RUN_K)"
    fi

    local t_plan=$SECONDS plan_log
    if [ "$DRY" -eq 0 ]; then plan_log="$LOGS/plan.txt"; else plan_log=$(mktemp); fi
    # Collection runs under the project's filterwarnings = error: an import-time warning of the GPU machine's
    # versions (onnx, protobuf, pandas...) would fail every pytest step. Then the steps show such warnings
    # instead of failing on them, and the summary says so.
    if ! gpu_tests=$(collect tests -m gpu "${K_ARGS[@]}" 2>> "$plan_log"); then
        gpu_tests=COLLECTION-FAILED
        if grep -q 'Warning' "$plan_log"; then
            PYTEST_W=(-W default::DeprecationWarning -W default::PendingDeprecationWarning
                      -W default::FutureWarning)
            say "plan: collection failed on a warning ($(grep -m 1 -o '[A-Za-z]*Warning[^ ]*' "$plan_log")):" \
                "the pytest steps run with ${PYTEST_W[*]}"
            gpu_tests=$(collect tests -m gpu "${K_ARGS[@]}" 2>> "$plan_log") || gpu_tests=COLLECTION-FAILED
        fi
    fi
    bench=$(collect benchmarks -k "$BENCH_K" 2>> "$plan_log") || bench=COLLECTION-FAILED
    bench_sk=$(collect benchmarks -k "$BENCH_SK_K" 2>> "$plan_log") || bench_sk=COLLECTION-FAILED
    # the estimator tests; the README's and the estimators page's examples (tests/test_docs.py runs them)
    local SK_ARGS=(tests/test_sklearn.py -k "$SK_K") SK2_ARGS=(tests/test_sklearn.py tests/test_docs.py -k "$SK2_K")
    sk_tests=$(collect "${SK_ARGS[@]}" 2>> "$plan_log") || sk_tests=COLLECTION-FAILED
    sk_checks=$(collect "${SK2_ARGS[@]}" 2>> "$plan_log") || sk_checks=COLLECTION-FAILED
    local failed=""  # a selection that cannot be collected fails its step where the step is to run
    for pair in gpu_tests:gpu-tests bench:bench bench_sk:bench-sklearn sk_tests:sklearn-on-gpu \
                sk_checks:sklearn-checks; do
        what=${pair%%:*}
        [ "${!what}" = COLLECTION-FAILED ] && selected "${pair##*:}" && failed="$failed $what"
    done
    if [ -n "$failed" ]; then
        [ "$DRY" -eq 1 ] && { cat "$plan_log" >&2; rm -f "$plan_log"; exit 2; }
        say "gpu_run: pytest could not collect:$failed (run/logs/plan.txt); those steps fail, the others run"
        tail -n 8 "$plan_log" | tee -a "$OUT/summary.txt"
        status=1
    fi
    N_GPU_TESTS=$(count '::' "$gpu_tests")
    N_BENCH_GPU=$(count 'test_gpubp_step\[gpu-.*float32' "$bench")  # float64 rows skip on a GPU
    N_BENCH_CPU=$(count 'test_gpubp_step\[cpu-' "$bench")
    N_BENCH_TORCH=$(count 'test_torch_step\[' "$bench")
    N_BENCH_SK=$(count 'bench_sklearn' "$bench_sk")
    N_SK_TESTS=$(count '::' "$sk_tests")
    N_SK_CHECKS=$(count '::test_sklearn_estimator_checks\[' "$sk_tests")
    N_SK2_CHECKS=$(count '::test_sklearn_estimator_checks\[' "$sk_checks")
    N_DOC_PAGES=$(count 'test_docs.py::' "$sk_checks")

    # Seconds per selected item on the GPU machine (16 host cores), each limit at least 4/3 of the item's price by
    # the rehearsal's counts (tests/rehearsal/headroom.py; their measured prices are in docs/gpu.md and
    # headroom.py's PLAN_PRICES, which `headroom.py --plan` holds these limits to). A GPU test: ~0.9 s. A GPU
    # row: calibration, then 7 alternating rounds of gpubp, its GEMMs and PyTorch at 0.1 s each, with no rest
    # (the rest is for CPU thread pools, which a GPU row does not use): ~2.7 s and its kernels. A CPU row rests
    # 0.3 s before each of its 21 rounds: ~9 s. A scikit-learn fit row: 5 alternating 200-epoch fits of 3
    # fitters (~35 s). An estimator test of our own: ~0.6 s (CPU fits beside the GPU's); one of scikit-learn's
    # checks: ~0.2 s (small fits on the GPU); a docs page: a training run, a grid search (~13 s).
    PLAN_S=20  # the five collections above
    LIMIT_INFO=20
    LIMIT_GPU_TESTS=$((45 + 1 * N_GPU_TESTS))
    LIMIT_TRAIN_GPU=30  # the default run: CuPy import, kernels compiled, ~2 s of epochs
    LIMIT_BENCH=$((15 + 4 * N_BENCH_GPU + 2 * N_BENCH_TORCH + 12 * N_BENCH_CPU))
    LIMIT_BENCH_CHECK=15
    LIMIT_REPORT=20
    LIMIT_SKLEARN=$((20 + (N_SK_TESTS - N_SK_CHECKS) + N_SK_CHECKS * 3 / 10))
    LIMIT_SKLEARN_CHECKS=$((20 + N_SK2_CHECKS * 3 / 10 + 20 * N_DOC_PAGES))
    LIMIT_BENCH_SK=$((20 + 40 * N_BENCH_SK))  # the rows, then scripts/check_bench.py on them
    # the total counts the steps that run (the default run's, or those GPUBP_RUN_STEPS names)
    SUM=$PLAN_S
    for pair in info:$LIMIT_INFO gpu-tests:$LIMIT_GPU_TESTS train-gpu:$LIMIT_TRAIN_GPU bench:$LIMIT_BENCH \
                bench-check:$LIMIT_BENCH_CHECK report:$LIMIT_REPORT sklearn-on-gpu:$LIMIT_SKLEARN \
                sklearn-checks:$LIMIT_SKLEARN_CHECKS bench-sklearn:$LIMIT_BENCH_SK; do
        if selected "${pair%%:*}"; then SUM=$((SUM + ${pair##*:})); fi
    done

    [ "$DRY" -eq 0 ] && say "plan: $((SECONDS - t_plan)) s (budgeted $PLAN_S s)"
    say "selected: $N_GPU_TESTS gpu tests; bench rows: $N_BENCH_GPU gpu, $N_BENCH_TORCH PyTorch," \
        "$N_BENCH_CPU cpu, $N_BENCH_SK scikit-learn; $N_SK_TESTS estimator tests ($N_SK_CHECKS of them" \
        "scikit-learn's checks); second command: $N_SK2_CHECKS checks, $N_DOC_PAGES docs pages"
    if [ $SUM -gt "$TOTAL_S" ]; then
        say "gpu_run: the step limits add up to $SUM s, over the $TOTAL_S s a run may take: select fewer tests" \
            "or benchmark rows (nothing was run)" >&2
        pack
        exit 2
    fi
    pack

    local RESULTS='$OUT/results.json' ROWS='$OUT/bench-rows.txt'
    local RESULTS_SK='$OUT/results-sklearn.json' ROWS_SK='$OUT/bench-sklearn-rows.txt'
    if [ "$DRY" -eq 1 ]; then
        rm -f "$plan_log"
    else
        RESULTS="$WORK/run/results.json" ROWS="$WORK/run/bench-rows.txt"
        RESULTS_SK="$WORK/run/results-sklearn.json" ROWS_SK="$WORK/run/bench-sklearn-rows.txt"
        echo "$bench" > "$ROWS"
        echo "$bench_sk" > "$ROWS_SK"
    fi
    # gpubp info's own status (a crash fails); a GPU must answer; the CuPy wheel is cupy-cuda12x or cupy-cuda13x
    # (pip's list read whole first: `pip list | grep -q` ends grep at the match, pip dies of the closed pipe)
    step info $LIMIT_INFO bash -c "set -eo pipefail; $PY -m gpubp info
        $PY -c 'import sys; from gpubp.backend import gpu_unavailable_reason as why; sys.exit(why())'
        nvidia-smi
        packages=\$($PY -m pip list 2>/dev/null)
        grep -iE '^(numpy|cupy-cuda1[23]x|scikit-learn|pandas|pytest|torch|numba|mpi4py) ' <<< \"\$packages\"
        grep -qiE '^cupy-cuda1[23]x ' <<< \"\$packages\""
    # the GPU tests demand a GPU: a skip for want of one is a failure here
    [ "$gpu_tests" = COLLECTION-FAILED ] && selected gpu-tests &&
        say "== gpu-tests: not run, its tests could not be collected" ||
        step gpu-tests $LIMIT_GPU_TESTS env GPUBP_REQUIRE_GPU=1 $PY -m pytest tests -m gpu "${K_ARGS[@]}" -ra \
            -p no:cacheprovider "${PYTEST_W[@]}"
    step train-gpu $LIMIT_TRAIN_GPU $PY -m gpubp train --device gpu --no-save --json
    # GPU rows, and the CPU rows the report sets them against (same host)
    [ "$bench" = COLLECTION-FAILED ] && selected bench &&
        say "== bench: not run, its rows could not be collected" ||
        step bench $LIMIT_BENCH $PY -m pytest benchmarks --benchmark-only -p no:cacheprovider -p no:randomly \
            -k "$BENCH_K" --benchmark-json="$RESULTS" "${PYTEST_W[@]}"
    # every selected row ran (none skipped for want of a GPU) and measured something plausible
    step bench-check $LIMIT_BENCH_CHECK $PY scripts/check_bench.py "$RESULTS" --selected "$ROWS"
    # RESULTS.md and throughput.png written into the run's archive (the hand-measured sections of the
    # repository's RESULTS.md kept), not over the checkout's
    [ "$DRY" -eq 0 ] && cp benchmarks/RESULTS.md "$WORK/run/"
    step report $LIMIT_REPORT $PY -m benchmarks.report "$RESULTS" "$(dirname "$RESULTS")"
    # the estimators with a GPU visible: their device="auto" takes it (their own tests, scikit-learn's checks of
    # the float32 estimators on a GPU); the rest of the CPU suite is CI's
    [ "$sk_tests" = COLLECTION-FAILED ] && selected sklearn-on-gpu &&
        say "== sklearn-on-gpu: not run, its tests could not be collected" ||
        step sklearn-on-gpu $LIMIT_SKLEARN $PY -m pytest "${SK_ARGS[@]}" -q -p no:cacheprovider "${PYTEST_W[@]}"

    # The second command (GPUBP_RUN_STEPS=sklearn-checks,bench-sklearn), when device time remains: the float64
    # estimators' checks and the docs' examples on a GPU; the scikit-learn fit rows, checked
    [ "$sk_checks" = COLLECTION-FAILED ] && selected sklearn-checks &&
        say "== sklearn-checks: not run, its tests could not be collected" ||
        step sklearn-checks $LIMIT_SKLEARN_CHECKS $PY -m pytest "${SK2_ARGS[@]}" -q -p no:cacheprovider \
            "${PYTEST_W[@]}"
    [ "$bench_sk" = COLLECTION-FAILED ] && selected bench-sklearn &&
        say "== bench-sklearn: not run, its rows could not be collected" ||
        step bench-sklearn $LIMIT_BENCH_SK bash -c "set -e
            $PY -m pytest benchmarks --benchmark-only -p no:cacheprovider -p no:randomly -k '$BENCH_SK_K' \
--benchmark-json='$RESULTS_SK' ${PYTEST_W[*]}
            $PY scripts/check_bench.py '$RESULTS_SK' --selected '$ROWS_SK'"

    if [ "$DRY" -eq 1 ]; then
        echo "plan (collecting the tests above): $PLAN_S s"
        echo "total: $SUM s of $TOTAL_S s"
        echo "files returned in \$OUT ($OUT): $FILES"
        exit 0
    fi
    say "gpu_run: exit $status"
    pack
    exit $status
}

# sourced (the tests of step and pack): the functions only
[ "${BASH_SOURCE[0]}" = "$0" ] && main "$@"
