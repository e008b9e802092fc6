"""ONNX Runtime's CPU inference of an exported model against ``Model.predict``, on 100,000 rows.

``python -m benchmarks.onnx_inference [rounds]`` (needs the ``onnx`` extra) exports two models with
``Model.to_onnx`` and times, in rounds that alternate the two runtimes, one ``predict`` over 100,000 raw
rows: the digits model (64-256-10 relu, trained briefly on the embedded digits, the rows tiled to
100,000) and 784-1024-1024-10 relu (random weights, random rows). Both runtimes get every core
(ONNX Runtime's intra-op threads and NumPy's BLAS threads), and both answer with labels; the labels
are checked equal before anything is timed. It prints one Markdown table row per model: medians of
the rounds, rows/s, and the ratio.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import numpy as np

from gpubp import MLP, Model
from gpubp.blas import blas_threads
from gpubp.data import Scaler, load_digits
from gpubp.labels import Labels

ROWS = 100_000


def digits_model() -> tuple[Model, np.ndarray]:
    raw = load_digits()
    scaler = Scaler("standard").fit(raw.X)
    labels = Labels.of(raw.y)
    net = MLP([raw.X.shape[1], 256, len(labels)], "relu", device="cpu", seed=0)
    net.fit(scaler.transform(raw.X), labels.encode(raw.y), epochs=5, batch_size=32, lr=0.05, momentum=0.9)
    return Model(net, scaler, labels), np.resize(raw.X, (ROWS, raw.X.shape[1])).astype(np.float32)


def wide_model() -> tuple[Model, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(0.5, 0.3, size=(ROWS, 784)).astype(np.float32)
    net = MLP([784, 1024, 1024, 10], "relu", device="cpu", seed=0)
    return Model(net, Scaler("standard").fit(X[:10_000]), Labels(np.arange(10))), X


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(rounds: int = 5) -> None:
    import onnxruntime as ort

    cores = os.cpu_count() or 1
    print(f"CPU: {cpu_name()}, {cores} logical cores; ONNX Runtime {ort.__version__}, NumPy {np.__version__}; "
          f"load average at the start {os.getloadavg()}", file=sys.stderr)  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = cores
    print("| model | rows | Model.predict rows/s | ONNX Runtime rows/s | ORT / predict |")
    print("|---|---|---|---|---|")
    for name, make in (("digits 64-256-10 relu", digits_model), ("784-1024-1024-10 relu", wide_model)):
        model, X = make()
        session = ort.InferenceSession(model.to_onnx().SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])  # fmt: skip
        with blas_threads(cores):
            runners = {
                "predict": lambda model=model, X=X: model.predict(X),
                "onnx": lambda session=session, X=X: session.run(["label"], {"X": X})[0],
            }
            answers = {k: run() for k, run in runners.items()}  # also the warm-up
            if not np.array_equal(answers["predict"], answers["onnx"]):
                raise AssertionError(f"{name}: ONNX Runtime's labels differ from Model.predict's")
            times: dict[str, list[float]] = {k: [] for k in runners}
            for _ in range(rounds):
                for key, run in runners.items():
                    time.sleep(0.3)  # let the other runtime's thread pool go quiet
                    t0 = time.perf_counter()
                    run()
                    times[key].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        spread = {k: f"{min(v):.3f}-{max(v):.3f} s" for k, v in times.items()}
        print(f"| {name} float32 | {ROWS:,} | {ROWS / med['predict']:,.0f} | {ROWS / med['onnx']:,.0f} | "
              f"{med['predict'] / med['onnx']:.2f}× |")  # fmt: skip
        print(f"{name}: seconds per call, range over {rounds} rounds: {spread}", file=sys.stderr)
    print(f"load average at the end {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
