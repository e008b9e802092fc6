"""CSV readers on a ~100 MB numeric file: wall time and peak memory, each in a fresh process.

    python benchmarks/bench_csv.py [ROWS] [--before COMMIT]

Readers: ``gpubp`` (gpubp.loaders.load_csv, pandas' C parser), ``pandas`` (read_csv alone),
``pyarrow`` (pyarrow.csv.read_csv to NumPy, when installed) and, with ``--before COMMIT``, the
loader as it was at that commit (taken from git, never kept in the tree). Peak memory is the
resident set's highest sample (every millisecond) above its level after the imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import json, sys, time
kind, path, extra = sys.argv[1], sys.argv[2], sys.argv[3]
import numpy as np
if kind == "pandas":
    import pandas as pd
    read = lambda p: pd.read_csv(p).to_numpy(np.float64)
elif kind == "pyarrow":
    import pyarrow.csv as pv
    read = lambda p: np.column_stack([c.to_numpy() for c in pv.read_csv(p).columns])
elif kind == "gpubp":
    from gpubp.loaders import load_csv
    read = lambda p: load_csv(p).X
else:  # the loader of an earlier commit, imported as a module of the package
    import importlib.util
    import gpubp
    spec = importlib.util.spec_from_file_location("gpubp._loaders_before", extra)
    mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    read = lambda p: mod.load_csv(p).X
import os, threading
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
base, top, done = rss(), [0], threading.Event()
def watch():  # the resident set sampled every millisecond: its peak above the level after the imports
    while not done.is_set():
        top[0] = max(top[0], rss())
        time.sleep(0.001)
thread = threading.Thread(target=watch)
thread.start()
t = time.perf_counter()
X = read(path)
seconds = time.perf_counter() - t
done.set()
thread.join()
peak = (max(top[0], rss()) - base) / 2**20
print(json.dumps({"seconds": seconds, "peak_mib": peak, "shape": list(X.shape)}))
"""


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 190_000
    before = sys.argv[sys.argv.index("--before") + 1] if "--before" in sys.argv else None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.csv")
        rng = np.random.default_rng(0)
        X = rng.normal(size=(rows, 50))
        y = rng.integers(0, 10, rows)
        header = ",".join([*(f"f{j}" for j in range(50)), "label"])
        np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt=["%.6f"] * 50 + ["%d"], header=header, comments="")
        print(f"{path}: {os.path.getsize(path) / 2**20:.0f} MiB, {rows} rows x 51 columns")
        kinds = ["gpubp", "pandas", "pyarrow"]
        old = ""
        if before:
            old = os.path.join(tmp, "loaders_before.py")
            with open(old, "w") as f:
                f.write(
                    subprocess.run(
                        ["git", "show", f"{before}:gpubp/loaders.py"], capture_output=True, text=True, check=True
                    ).stdout
                )
            kinds.insert(0, "before")
        for kind in kinds:
            best = None
            for _ in range(3):
                out = subprocess.run([sys.executable, "-c", CHILD, kind, path, old], capture_output=True, text=True)
                if out.returncode:
                    print(f"{kind:8s} not measured: {out.stderr.strip().splitlines()[-1]}")
                    break
                got = json.loads(out.stdout)
                best = got if best is None or got["seconds"] < best["seconds"] else best
            if best:
                print(f"{kind:8s} {best['seconds']:6.2f} s  peak {best['peak_mib']:7.0f} MiB  {tuple(best['shape'])}")


if __name__ == "__main__":
    main()
