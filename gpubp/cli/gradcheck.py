"""``gpubp gradcheck``: backprop's gradients against central differences on a few rows of real data."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..data import Dataset, load_data
from ..gradcheck import gradcheck_layers
from ..labels import targets
from ..network import MLP
from ._common import UsageError, add_data_options, add_network_options, positive, read_options, resolve_network


def add_parser(sub: Any) -> None:
    g = sub.add_parser("gradcheck", help="backprop's gradients against central differences, layer by layer")
    add_data_options(g)
    add_network_options(g)
    g.add_argument("--rows", type=positive(int), default=8, help="examples in the checked batch (default: 8)")
    g.add_argument("--eps", type=positive(float), default=1e-5, help="central-difference step (default: 1e-5)")
    g.set_defaults(func=cmd_gradcheck)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    s = resolve_network({k: getattr(args, k) for k in ("data", "label_column", "task", "hidden", "activation",
                                                        "output", "loss", "init", "seed", "scale")})  # fmt: skip
    if args.dtype not in (None, "float64"):
        raise UsageError("gradcheck runs in float64 (central differences need it); leave --dtype out")
    # every row is a candidate: no split is made, the scaler is fitted on all rows
    raw = load_data(s["data"], s["label_column"], **read_options(args))  # none ignored
    ds = Dataset.prepare(raw, task=s["task"], val_fraction=0.0, test_fraction=0.0, scale=s["scale"])
    rng = np.random.default_rng(s["seed"])
    rows = np.sort(rng.choice(len(ds), size=min(args.rows, len(ds)), replace=False))
    X = ds.scaler.transform(ds.X[rows])
    n_out = ds.n_outputs(s["loss"])
    net = MLP([X.shape[1], *s["hidden"], n_out], s["activation"], s["output"], s["loss"], s["init"],
              device="cpu", dtype="float64", seed=s["seed"])  # fmt: skip
    Y = ds.y[rows]
    if s["task"] == "classify" and s["loss"] != "cross_entropy":
        Y = targets(Y, n_out, s["loss"])
    elif s["task"] == "regress":
        Y = Y.reshape(-1, 1)
    print(f"gradcheck: {net!r}, {len(rows)} rows of {ds.source}, central differences with h = {args.eps:g} (float64)")
    print(f"{'layer':>5}  {'param':>5}  {'shape':>12}  {'relative error':>14}")
    worst = 0.0
    for r in gradcheck_layers(net, X, Y, eps=args.eps):
        for name in ("W", "b"):
            shape = "x".join(map(str, r[f"{name}_shape"]))
            print(f"{r['layer']:5d}  {name + '_' + str(r['layer']):>5}  {shape:>12}  {r[name]:14.3e}")
            worst = max(worst, r[name])
    ok = worst <= 1e-7
    print(f"largest relative error {worst:.3e}: {'PASS' if ok else 'FAIL'} (threshold 1e-7)")
    return 0 if ok else 1
