"""``gpubp evaluate`` and ``gpubp predict``: a saved model (with its preprocessing) on a data file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from .._io import atomic_write, to_json
from ..data import load_data, scored_rows
from ..labels import as_labels, class_index
from ..metrics import accuracy, confusion_matrix, precision_recall, r2_score
from ..model import Model
from ._common import UsageError, add_data_options, check_output


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="accuracy (or R²), per-class precision/recall, confusion matrix")
    e.add_argument("model")
    add_data_options(e, default=None)
    e.add_argument("--split", choices=("test", "all"), default=None,
                   help="rows to use (default: the data's own test files; else, on the model's own data, the rows "
                        "held out from training; else every row)")  # fmt: skip
    e.add_argument("--device", default=None)
    e.add_argument("--plot", default=None, metavar="PNG", help="write the confusion matrix here")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="write predictions for a data file to CSV")
    pr.add_argument("model")
    add_data_options(pr, default=None)
    pr.add_argument("--split", choices=("test", "all"), default=None, help="rows to predict (as for evaluate)")
    pr.add_argument("--out", required=True, metavar="CSV", help="the CSV to write, or - for standard output")
    pr.add_argument("--device", default=None)
    pr.set_defaults(func=cmd_predict)


def load_model(path: str, device: str | None) -> Model:
    try:
        return Model.from_file(path, device=device)
    except ValueError as exc:
        if "bare network" in str(exc):
            raise UsageError(
                f"{path} was not written by 'gpubp train' (no scaler or classes): use the Python API"
            ) from None
        raise


def _rows(model: Model, args: argparse.Namespace) -> tuple[Any, Any, np.ndarray, str, str, str]:
    """(X, y, row numbers, "test" or "all", why, source) for the model's data or --data, by the one test-set rule."""
    s = model.settings
    d = model.net.sizes[0]
    label_column = args.label_column if args.label_column is not None else s.get("label_column")
    raw = load_data(args.data or s["data"], label_column, n_features=d)
    if raw.X.shape[1] != d:
        raise UsageError(f"{raw.source} has {raw.X.shape[1]} features per row, the model expects {d}")
    X, y, rows, split, why = scored_rows(raw, s, model.labels, args.split)
    if len(rows) == 0:
        raise UsageError(f"{raw.source}: no rows to use ({why})")
    return X, y, rows, split, why, raw.source


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.device)
    if args.plot and model.labels is None:
        raise UsageError("--plot draws a confusion matrix, and a regression model has none")
    check_output("--plot", args.plot, png=True)
    X, y, _, split, why, source = _rows(model, args)
    if y is None:
        raise UsageError(f"{source}: no labels or targets found: evaluate needs them (predict does not)")
    result: dict[str, Any] = {"model": args.model, "data": source, "rows": len(y), "split": split, "which_rows": why}
    if model.labels is None:
        r2 = r2_score(np.asarray(y, dtype=np.float64), model.predict(X))
        result["r2"] = r2
        print(to_json(result, strict=True) if args.json else f"R²: {r2:.4f} on {why} of {source}")
        return 0
    classes = model.labels.classes
    truth = model.labels.encode(as_labels(y, source), source)
    pred = class_index(model.outputs(X))
    cm = confusion_matrix(truth, pred, len(classes))
    acc = accuracy(truth, pred)
    precision, recall = precision_recall(cm)
    result.update(accuracy=acc, classes=classes.tolist(), precision=precision.tolist(), recall=recall.tolist(),
                  confusion=cm.tolist())  # fmt: skip
    if args.json:
        print(to_json(result, strict=True))
    else:
        print(f"accuracy: {100 * acc:.2f}% on {why} of {source}\n")
        width = max(5, *(len(str(c)) for c in classes.tolist()))
        print(f"{'class':>{width}}  precision  recall  support")
        for c, p, r, n in zip(classes.tolist(), precision, recall, cm.sum(axis=1)):
            print(f"{c!s:>{width}}  {p:9.3f}  {r:6.3f}  {n:7d}")
        print("\nconfusion matrix (rows: true class, columns: predicted)")
        cell = max(4, len(str(cm.max())), width) + 1  # a space before every column, also the widest label
        print(" " * width + "".join(f"{c!s:>{cell}}" for c in classes.tolist()))
        for c, row in zip(classes.tolist(), cm):
            print(f"{c!s:>{width}}" + "".join(f"{v:>{cell}d}" for v in row))
    if args.plot:
        from ..plots import confusion_matrix as draw

        draw(cm, [str(c) for c in classes.tolist()], args.plot)
        if not args.json:
            print(f"\nconfusion matrix image: {args.plot}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    to_stdout = args.out == "-"
    if not to_stdout:
        check_output("--out", args.out)
    model = load_model(args.model, args.device)
    if args.data is None:
        raise UsageError("predict needs --data PATH (the rows to predict)")
    X, _, rows, _, why, source = _rows(model, args)
    lines = []
    if model.labels is None:
        values = model.predict(X)
        lines.append("row,prediction")
        lines += [f"{i},{v:.9g}" for i, v in zip(rows.tolist(), values)]
    else:
        A = model.outputs(X)
        pred = model.labels.decode(class_index(A))  # the rule Model.predict uses
        probs = np.column_stack([1 - A[:, 0], A[:, 0]]) if A.shape[1] == 1 else A
        names = [str(c) for c in model.labels.classes.tolist()]
        lines.append(",".join(["row", "prediction", *(f"p_{n}" for n in names)]))
        for i, p, row in zip(rows.tolist(), pred.tolist(), probs):
            lines.append(",".join([str(i), str(p), *(f"{v:.6g}" for v in row)]))
    text = "\n".join(lines) + "\n"
    if to_stdout:  # the table alone on standard output; what was scored goes to standard error
        sys.stdout.write(text)
        print(f"wrote {len(rows)} predictions for {why} of {source} to standard output", file=sys.stderr)
        return 0
    atomic_write(args.out, lambda f: f.write(text.encode()))
    print(f"wrote {len(rows)} predictions for {why} of {source} to {args.out}")
    return 0
