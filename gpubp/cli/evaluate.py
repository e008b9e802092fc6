"""``gpubp evaluate`` and ``gpubp predict``: a saved model (with its preprocessing) on a data file."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Any

import numpy as np

from .._io import atomic_write, to_json
from ..data import RawData, load_data, scored_rows
from ..labels import as_labels, class_index
from ..loaders import SAME_NUMBERS, is_csv
from ..metrics import classification_report, majority_warning, number, regression_report, summary
from ..model import BareNetworkError, Model
from ._common import UsageError, add_data_options, check_output, data_files, read_options


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="accuracy (or R²), per-class precision/recall, confusion matrix")
    e.add_argument("model", help="a model file written by gpubp train")
    add_data_options(e, default=None)
    e.add_argument("--split", choices=("test", "all"), default=None,
                   help="rows to use (default: the data's own test files; else, on the model's own data, the rows "
                        "held out from training; else every row)")  # fmt: skip
    e.add_argument("--device", default=None, help="auto, cpu, gpu or gpu:N (default: $GPUBP_DEVICE or auto)")
    e.add_argument("--plot", default=None, metavar="PNG", help="write the confusion matrix here")
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")
    e.add_argument("--quiet", action="store_true", help="print the accuracy (or R²) line alone, and no notices")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="write a prediction for every row of a data file to CSV, in order")
    pr.add_argument("model", help="a model file written by gpubp train")
    add_data_options(pr, default=None)
    pr.add_argument("--out", required=True, metavar="CSV", help="the CSV to write, or - for standard output")
    pr.add_argument("--device", default=None, help="auto, cpu, gpu or gpu:N (default: $GPUBP_DEVICE or auto)")
    pr.add_argument("--quiet", action="store_true", help="write the predictions and print nothing else")
    pr.set_defaults(func=cmd_predict)


def load_model(path: str, device: str | None) -> Model:
    try:
        return Model.from_file(path, device=device)
    except BareNetworkError:
        raise UsageError(
            f"{path} was not written by 'gpubp train' (no scaler or classes): use the Python API"
        ) from None


def check_outputs(args: argparse.Namespace, *outputs: tuple[str, str | None]) -> None:
    """Refuse, before any work, an output that would replace the model or the data being read."""
    inputs = [("the model", args.model), *(("the data", f) for f in data_files(args.data))]
    for option, path in outputs:
        check_output(option, path, png=option == "--plot", inputs=inputs)


def read(model: Model, args: argparse.Namespace, labels: bool = True) -> RawData:
    """--data (else the model's own data), its columns matched to the model's and made the network's
    inputs by the model's rules (``raw.X``); what was decided is logged. ``labels``: read the label
    column (evaluate), or not (predict)."""
    s = model.settings
    given, stored = read_options(args), read_options(s)
    # the model's own file is read as it was; another CSV with the numbers written as the model's were
    # (its delimiter and header detected), unless the options say otherwise
    same_numbers = SAME_NUMBERS if args.data and is_csv(args.data) else ()
    options = {k: v if v is not None or (args.data and k not in same_numbers) else stored[k]
               for k, v in given.items()}  # fmt: skip
    label = args.label_column
    if label is not None and model.columns.named and str(label).strip() in model.columns.features:
        known = f"; the model's label column is {model.columns.label!r}" if model.columns.label else ""
        raise UsageError(f"--label-column {label!r} is one of the features the model reads, not its label{known}")
    if label is None and not args.data and model.columns.label_index is not None and not model.columns.named:
        label = model.columns.label_index  # the model's own headerless file: its label is where it was
    raw = load_data(args.data or s["data"], label, columns=model.columns, labels=labels, table=model.table,
                    **options)  # fmt: skip
    notes = list(raw.notes)
    if raw.frame is not None:  # the model's own rules: its categories, its medians
        try:
            raw.X, more = model.encode(raw.frame, raw.source, raw.first_line)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        raw.frame = None
        notes.extend(more)
    if not model.columns.named and raw.feature_names is not None:
        notes.append("the model was trained on a file without a header, so it has no column names: the columns "
                     "are taken by position (the header's names are not matched)")  # fmt: skip
    for note in [] if args.quiet else notes:
        print(f"{raw.source}: {note}", file=sys.stderr)
    return raw


IGNORED = "columns not in the model, ignored: "  # the note the loader writes for a model's extra columns


def _label_advice(model: Model, raw: RawData) -> str:
    """Advice that works when a file's labels were not found: the column to name with --label-column
    (the one column the model does not know, when there is one), else predict."""
    label = model.columns.label
    extra = [c for note in raw.notes if note.startswith(IGNORED) for c in note[len(IGNORED) :].split(", ")]
    theirs = f"the model's label column is {label!r}" if isinstance(label, str) else ""
    if len(extra) == 1:
        return f" ({theirs}{'; ' if theirs else ''}is it {extra[0]!r}? give --label-column {extra[0]})"
    named = f"{theirs}: " if theirs else ""
    return f" ({named}name the file's label column with --label-column NAME, or use predict, which needs none)"


def cmd_evaluate(args: argparse.Namespace) -> int:
    check_outputs(args, ("--plot", args.plot))
    model = load_model(args.model, args.device)
    if args.plot and model.labels is None:
        raise UsageError("--plot draws a confusion matrix, and a regression model has none")
    raw = read(model, args)
    X, y, rows, split, why = scored_rows(raw, args.split, model.row_hashes)
    source = raw.source
    if len(rows) == 0:
        raise UsageError(f"{source}: no rows to use ({why})")
    if y is None:
        raise UsageError(f"{source}: no labels or targets found: evaluate needs them{_label_advice(model, raw)}")
    result: dict[str, Any] = {"model": args.model, "data": source, "rows": len(y), "split": split, "which_rows": why}
    if model.labels is None:
        report = regression_report(np.asarray(y, dtype=np.float64), model.predict(X, encoded=True))
        result.update(report)
        line = (f"R²: {report['r2']:.4f}, MAE {report['mae']:.4g}, RMSE {report['rmse']:.4g} on {why} of "
                f"{source}")  # fmt: skip
        print(to_json(result, strict=True) if args.json else line)
        return 0
    classes = model.labels.classes
    truth = model.labels.encode(as_labels(y, source), source)
    A = model.outputs(X, encoded=True)
    proba = model.labels.proba(A) if model.gives_probabilities and len(classes) == 2 else None
    report = classification_report(truth, class_index(A), len(classes), proba)
    cm = np.asarray(report["confusion"])
    result.update(report, majority_class=classes[report["majority_class"]].item(), classes=classes.tolist())
    weighted = model.settings.get("class_weight") is not None
    advice = ("the model's --class-weight trades accuracy for the rare classes" if weighted
              else "retrain with --class-weight balanced for the rare classes")  # fmt: skip
    warning = majority_warning(report, classes.tolist(), advice)
    if args.json:
        print(to_json(result, strict=True))
    else:
        print(f"accuracy: {100 * report['accuracy']:.2f}% (majority rate {100 * report['majority_rate']:.2f}%) on "
              f"{why} of {source}")  # fmt: skip
        if not args.quiet:
            print(summary(report))
    if warning and not args.quiet:
        print(warning, file=sys.stderr if args.json else sys.stdout)
    if not args.json and not args.quiet:
        print()
    if not args.json and not args.quiet:
        width = max(5, *(len(str(c)) for c in classes.tolist()))
        print(f"{'class':>{width}}  precision  recall     F1  support")
        for c, p, r, f, n in zip(classes.tolist(), report["precision"], report["recall"], report["f1"],
                                 report["support"]):  # fmt: skip
            print(f"{c!s:>{width}}  {number(p):>9}  {number(r):>6}  {number(f):>5}  {n:7d}")
        print("\nconfusion matrix (rows: true class, columns: predicted)")
        cell = max(4, len(str(cm.max())), width) + 1  # a space before every column, also the widest label
        print(" " * width + "".join(f"{c!s:>{cell}}" for c in classes.tolist()))
        for c, row in zip(classes.tolist(), cm):
            print(f"{c!s:>{width}}" + "".join(f"{v:>{cell}d}" for v in row))
    if args.plot:
        from ..plots import confusion_matrix as draw

        draw(cm, [str(c) for c in classes.tolist()], args.plot)
        if not args.json and not args.quiet:
            print(f"\nconfusion matrix image: {args.plot}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    to_stdout = args.out == "-"
    if args.data is None:
        raise UsageError("predict needs --data PATH (the rows to predict)")
    check_outputs(args, ("--out", None if to_stdout else args.out))
    model = load_model(args.model, args.device)
    raw = read(model, args, labels=False)
    text = predictions_csv(model, raw.X)
    n = len(raw.X)
    what = f"{n} prediction{'s' if n != 1 else ''}, one per row of {raw.source} in its order,"
    if to_stdout:  # the table alone on standard output; what was done goes to standard error
        sys.stdout.write(text)
        if not args.quiet:
            print(f"wrote {what} to standard output", file=sys.stderr)
        return 0
    atomic_write(args.out, lambda f: f.write(text.encode()))
    if not args.quiet:
        print(f"wrote {what} to {args.out}")
    return 0


def predictions_csv(model: Model, X: Any) -> str:
    """The predictions for ``X`` (the network's inputs, :meth:`Model.encode`'s) as CSV text
    (the csv module quotes what needs it): ``row``, ``prediction``
    and, for a classifier, ``p_<class>`` columns when its outputs are probabilities (softmax,
    sigmoid), else the raw ``output_<k>``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if model.labels is None:
        w.writerow(["row", "prediction"])
        values = np.asarray(model.predict(X, encoded=True)).reshape(len(X), -1)[:, 0]
        w.writerows([i, f"{v:.9g}"] for i, v in enumerate(values))
        return out.getvalue()
    A = model.outputs(X, encoded=True)
    pred = model.labels.predict(A)  # the rule Model.predict uses
    if model.gives_probabilities:
        values = model.labels.proba(A)
        names = [f"p_{c}" for c in model.labels.classes.tolist()]
    else:
        values, names = A, [f"output_{k}" for k in range(A.shape[1])]
    w.writerow(["row", "prediction", *names])
    w.writerows([i, p, *(f"{v:.6g}" for v in row)] for i, (p, row) in enumerate(zip(pred.tolist(), values)))
    return out.getvalue()
