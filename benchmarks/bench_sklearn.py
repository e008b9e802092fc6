"""``fit`` time of gpubp.sklearn.MLPClassifier against scikit-learn's on the embedded digits.

scikit-learn's default settings for both (hidden (100,), relu, adam, batch 200, tol 1e-4, up to 200
epochs); gpubp in its default float32 on the CPU, scikit-learn in float64 (what it computes in for
float64 input). Fits alternate gpubp, scikit-learn, round by round, so noise on this shared machine
hits both alike; the medians are compared, as whole fits and per epoch (the two may stop at
different epochs). ``python -m benchmarks.bench_sklearn [rounds]`` prints the table.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from functools import partial

import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.preprocessing import StandardScaler

from benchmarks.peers import SETTLE_S
from gpubp.data import load_digits
from gpubp.sklearn import MLPClassifier


def digits():
    d = load_digits()
    X_tr, X_te, y_tr, y_te = train_test_split(d.X, d.y, test_size=0.2, random_state=0, stratify=d.y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def timed_fit(cls, X, y, seed: int, **kw) -> tuple[float, int, object]:
    est = cls(random_state=seed, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0, est.n_iter_, est


def compare(rounds: int = 5, **kw) -> dict[str, dict[str, float]]:
    """Median fit seconds, epochs and ms per epoch of each, over ``rounds`` alternating fits: gpubp on
    the CPU, on the GPU where one answers ("gpubp gpu"), and scikit-learn."""
    from gpubp.backend import gpu_unavailable_reason

    X_tr, X_te, y_tr, y_te = digits()
    fitters = {"gpubp": partial(MLPClassifier, device="cpu")}
    if gpu_unavailable_reason() is None:
        fitters["gpubp gpu"] = partial(MLPClassifier, device="gpu")
    fitters["scikit-learn"] = SkClassifier
    runs: dict[str, list] = {name: [] for name in fitters}
    for name, cls in fitters.items():
        if name != "scikit-learn":
            timed_fit(cls, X_tr, y_tr, 0, max_iter=2, **kw)  # warm-up: imports, kernels, first allocations
    for seed in range(rounds):
        for name, cls in fitters.items():
            if name != "gpubp gpu":  # a CPU fit: scikit-learn's 2-thread BLAS pool spins on after its fit
                time.sleep(SETTLE_S)
            seconds, epochs, est = timed_fit(cls, X_tr, y_tr, seed, **kw)
            runs[name].append((seconds, epochs, seconds / epochs, est.score(X_te, y_te)))
    return {name: {"fit_s": statistics.median(r[0] for r in rs), "epochs": statistics.median(r[1] for r in rs),
                   "ms_per_epoch": 1e3 * statistics.median(r[2] for r in rs),
                   "accuracy": statistics.mean(r[3] for r in rs),
                   "fit_s_spread": max(r[0] for r in rs) / min(r[0] for r in rs)}
            for name, rs in runs.items()}  # fmt: skip


@pytest.mark.benchmark(group="sklearn-fit-digits")
def test_fit_digits_gpubp(benchmark):
    """One gpubp fit timed; in ``make bench`` also the alternating comparison the report prints."""
    X_tr, _, y_tr, _ = digits()
    if benchmark.disabled:  # make test: a smoke test of a short fit
        benchmark(lambda: timed_fit(MLPClassifier, X_tr, y_tr, 0, max_iter=5))
        return
    benchmark.pedantic(lambda: timed_fit(MLPClassifier, X_tr, y_tr, 0), rounds=3, warmup_rounds=1)
    benchmark.extra_info["sklearn_fit"] = compare(5)


@pytest.mark.benchmark(group="sklearn-fit-digits")
def test_fit_digits_sklearn(benchmark):
    X_tr, _, y_tr, _ = digits()
    max_iter = 5 if benchmark.disabled else 200
    benchmark.pedantic(lambda: timed_fit(SkClassifier, X_tr, y_tr, 0, max_iter=max_iter),
                       rounds=1 if benchmark.disabled else 3)  # fmt: skip


def table(result: dict[str, dict[str, float]]) -> list[str]:
    """Markdown lines for ``compare``'s result (also written into RESULTS.md by the report)."""
    g, s = result["gpubp"], result["scikit-learn"]
    lines = ["| estimator | fit s | epochs | ms/epoch | test accuracy (mean) | slowest/fastest fit |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in result.items():
        lines.append(f"| {name} | {r['fit_s']:.3f} | {r['epochs']:.0f} | {r['ms_per_epoch']:.2f} | "
                     f"{r['accuracy']:.4f} | {r['fit_s_spread']:.2f} |")  # fmt: skip
    lines.append(f"\nSpeed-up of gpubp: fit {s['fit_s'] / g['fit_s']:.2f}×, per epoch "
                 f"{s['ms_per_epoch'] / g['ms_per_epoch']:.2f}×.")  # fmt: skip
    if "gpubp gpu" in result:
        gg = result["gpubp gpu"]
        lines.append(f"On the GPU: fit {s['fit_s'] / gg['fit_s']:.2f}× scikit-learn's, per epoch "
                     f"{s['ms_per_epoch'] / gg['ms_per_epoch']:.2f}×.")  # fmt: skip
    return lines


def main(rounds: int = 5) -> None:
    from benchmarks.conftest import others_cpu_load  # starts counting the machine's busy time here

    print(f"digits, 1437 training rows, scikit-learn's defaults, {rounds} alternating rounds (medians)")
    print("\n".join(table(compare(rounds))))
    load = others_cpu_load()
    print(f"other processes: {'unknown' if load is None else f'{load:.2f}'} cores busy on average during the run")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
