"""The ``gpubp`` command: train, evaluate, predict, gradcheck, info, bench.

Every user mistake ends in one line on stderr and exit status 2; Ctrl-C during training stops at
the end of the current batch, writes the checkpoint (with ``--save``) and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__
from .activations import HIDDEN, OUTPUTS
from .backend import get_device
from .checkpoint import read_file, save_model
from .data import DataError, Dataset, Scaler, load_data, stratified_split
from .initializers import INITS
from .losses import LOSSES
from .network import MLP
from .optim import OPTIMIZERS
from .training import Trainer, TrainingDivergedError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_SAVE = "gpubp-model.npz"


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- options ------------------------------------------------------------------------------------


def _hidden(text: str) -> list[int]:
    if text.strip() in ("", "none"):
        return []
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 128,64, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be >= 1, got {text!r}")
    return sizes


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _add_data_options(p: argparse.ArgumentParser, default: str | None = "digits") -> None:
    p.add_argument("--data", default=default, metavar="PATH",
                   help="'digits' (embedded), a folder of MNIST IDX files, IMAGES,LABELS, X.npy,y.npy, "
                        ".npz (X, y) or .csv (default: %(default)s)")  # fmt: skip
    p.add_argument("--label-column", default=None, metavar="NAME|INDEX",
                   help="CSV label column (default: a column named label/class/target/y, else the last)")


def _add_network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hidden", type=_hidden, default=[256], metavar="N,N",
                   help="hidden layer widths, 'none' for none (default: 256)")
    p.add_argument("--activation", choices=HIDDEN, default="relu", help="hidden activation (default: relu)")
    p.add_argument("--output", choices=OUTPUTS, default=None, help="output activation (default: the loss's match)")
    p.add_argument("--loss", choices=tuple(LOSSES), default="cross_entropy", help="(default: cross_entropy)")
    p.add_argument("--init", choices=INITS, default=None, help="(default: he for relu, xavier otherwise)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0, help="seeds weights and shuffling (default: 0)")
    p.add_argument("--device", default=None, help="auto, cpu, gpu or gpu:N (default: $GPUBP_DEVICE or auto)")
    p.add_argument("--scale", choices=Scaler.KINDS, default="standard",
                   help="feature scaling fitted on the training split (default: standard)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gpubp", description="Train feed-forward networks by hand-written batched backprop "
                     "on a CUDA GPU (CuPy) or the CPU (NumPy).")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"gpubp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a network (default: on the embedded digits)",
                       description="Train a network. With no options: the embedded UCI digits, 64-256-10 relu.")
    _add_data_options(t)
    _add_network_options(t)
    t.add_argument("--task", choices=("classify", "regress"), default="classify",
                   help="regress: one numeric target, loss mse (default: classify)")
    t.add_argument("--epochs", type=_positive(int), default=30, help="(default: 30)")
    t.add_argument("--batch-size", type=_positive(int), default=32, help="(default: 32)")
    t.add_argument("--lr", type=_positive(float), default=0.05, help="learning rate η (default: 0.05)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    t.add_argument("--momentum", type=float, default=0.9, help="(default: 0.9; sgd only)")
    t.add_argument("--nesterov", action="store_true")
    t.add_argument("--weight-decay", type=float, default=0.0, help="λ, on weights only (default: 0)")
    t.add_argument("--patience", type=_positive(int), default=None,
                   help="stop after this many epochs without a better validation loss; keep the best")
    t.add_argument("--no-shuffle", action="store_true", help="keep the row order each epoch")
    t.add_argument("--split-seed", type=int, default=0,
                   help="seed of the fixed stratified train/validation/test split (default: 0)")
    t.add_argument("--val-fraction", type=_fraction, default=0.1, help="(default: 0.1)")
    t.add_argument("--test-fraction", type=_fraction, default=0.2,
                   help="(default: 0.2; ignored when the data has its own test files)")
    t.add_argument("--save", default=None, metavar="PATH",
                   help=f"checkpoint written every epoch and at the end (default: the --resume file, "
                        f"else {DEFAULT_SAVE})")
    t.add_argument("--no-save", action="store_true", help="write no model file")
    t.add_argument("--resume", default=None, metavar="PATH",
                   help="continue the run saved in this checkpoint, with its data and settings "
                        "(only --epochs, --device, --save and the output options apply)")
    t.add_argument("--plot", default=None, metavar="PNG", help="write the learning curves here")
    t.add_argument("--json", action="store_true", help="print metrics as JSON on stdout (tables go to stderr)")
    t.add_argument("--quiet", action="store_true", help="print only the final result")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy (or R²), per-class precision/recall, confusion matrix")
    e.add_argument("model")
    _add_data_options(e, default=None)
    e.add_argument("--split", choices=("test", "all"), default=None,
                   help="rows to use (default: the model's test split for its own data, all rows otherwise)")
    e.add_argument("--device", default=None)
    e.add_argument("--plot", default=None, metavar="PNG", help="write the confusion matrix here")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="write predictions for a data file to CSV")
    pr.add_argument("model")
    _add_data_options(pr, default=None)
    pr.add_argument("--out", required=True, metavar="CSV")
    pr.add_argument("--device", default=None)
    pr.set_defaults(func=cmd_predict)

    g = sub.add_parser("gradcheck", help="backprop's gradients against central differences, layer by layer")
    _add_data_options(g)
    _add_network_options(g)
    g.add_argument("--rows", type=_positive(int), default=8, help="examples in the checked batch (default: 8)")
    g.add_argument("--eps", type=_positive(float), default=1e-5, help="central-difference step (default: 1e-5)")
    g.set_defaults(func=cmd_gradcheck)

    i = sub.add_parser("info", help="versions, array backend, BLAS, CUDA and GPUs")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    b = sub.add_parser("bench", help="a quick training-throughput table for the device at hand (< 1 minute)")
    b.add_argument("--device", default=None)
    b.add_argument("--seconds", type=_positive(float), default=0.5, help="time per measurement (default: 0.5)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (UsageError, DataError, ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"gpubp {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDivergedError as exc:
        print(f"gpubp {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gpubp {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"gpubp {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- preparing data -----------------------------------------------------------------------------


@dataclass
class Prepared:
    """Data made ready for a model: scaled features, class indices, the three splits."""

    X: np.ndarray
    y: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    X_test: np.ndarray | None  # a separate test set (MNIST t10k), else rows of X
    y_test: np.ndarray | None


def _test_part(ds: Dataset) -> Dataset:
    """The data's own test files (MNIST's t10k pair) as a data set of their own."""
    return Dataset(ds.X_test, ds.y_test, ds.source)


def _class_indices(y: np.ndarray, classes: np.ndarray, source: str) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    try:
        return np.array([lookup[c] for c in y.tolist()], dtype=np.int64)
    except KeyError as exc:
        raise UsageError(f"{source}: label {exc.args[0]!r} was not among the model's classes "
                         f"{classes.tolist()}") from None  # fmt: skip


def _labels_of(ds: Dataset) -> np.ndarray:
    if ds.y is None:
        raise UsageError(f"{ds.source}: no labels found: training and evaluation need a label column")
    y = ds.y
    if y.ndim == 2 and y.shape[1] > 1:
        one_hot = y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        if not one_hot:
            raise UsageError(f"{ds.source}: expected one label per row (or one-hot rows), got shape {y.shape}")
        y = y.argmax(axis=1)
    elif y.ndim == 2:
        y = y[:, 0]
    if y.dtype.kind == "f" and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return y


def _targets(y_idx: np.ndarray, n_out: int, loss: str, regress: bool) -> np.ndarray:
    """What the network is trained against: labels for cross_entropy, one-hot (or 0/1) otherwise."""
    if regress or loss == "cross_entropy":
        return y_idx
    if n_out == 1:
        return y_idx.astype(np.float64)
    return np.eye(n_out)[y_idx]


def _split(y: np.ndarray, has_test: bool, val_fraction: float, test_fraction: float, seed: int,
           regress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    strata = np.zeros(len(y), dtype=np.int64) if regress else y
    if has_test:
        val, train = stratified_split(strata, (val_fraction,), seed)
        return train, val, np.empty(0, dtype=np.int64)
    test, val, train = stratified_split(strata, (test_fraction, val_fraction), seed)
    return train, val, test


# -- train --------------------------------------------------------------------------------------


class _Interrupt:
    """SIGINT sets a flag; the training loop stops at the end of the current batch."""

    def __init__(self) -> None:
        self.flag = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.flag:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.flag = True

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self._previous)


class _Progress:
    """A tqdm bar per epoch over the batches (when tqdm is installed and stderr is a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        self.tqdm = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            self.tqdm = tqdm

    def batch(self, i: int, n: int, epoch: int, epochs: int) -> None:
        if self.tqdm is None:
            return
        if self.bar is None:
            self.bar = self.tqdm(total=n, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                                 file=sys.stderr, dynamic_ncols=True, disable=None)  # fmt: skip
            self.bar.update(i - 1)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _row_format(metric: str | None) -> tuple[str, str]:
    cols = (f"{'epoch':>5}  {'train loss':>10}  {'val loss':>9}  {metric or '':>8}  "
            f"{'samples/s':>10}  {'seconds':>7}  device")  # fmt: skip
    return cols, "-" * len(cols)


def _format_row(row: dict[str, float], metric_key: str | None, device: str) -> str:
    val = f"{row['val_loss']:9.4f}" if "val_loss" in row else f"{'':>9}"
    if metric_key == "val_accuracy":
        metric = f"{100 * row[metric_key]:7.2f}%"
    elif metric_key == "val_r2":
        metric = f"{row[metric_key]:8.4f}"
    else:
        metric = f"{'':>8}"
    return (f"{row['epoch']:5d}  {row['train_loss']:10.4f}  {val}  {metric}  "
            f"{row['samples_per_s']:10,.0f}  {row['seconds']:7.3f}  {device}")  # fmt: skip


def _checkpoint(path: str, net: MLP, trainer: Trainer, scaler: Scaler, classes: np.ndarray | None,
                settings: dict[str, Any]) -> None:  # fmt: skip
    state = trainer.state_dict()
    arrays: dict[str, np.ndarray] = dict(scaler.arrays())
    if classes is not None:
        arrays["classes"] = classes
    if state["order"] is not None:
        arrays["order"] = state.pop("order")
    else:
        state.pop("order")
    for slot in trainer.optimizer.slots:
        for i, buf in enumerate(state["optimizer"].pop(slot)):
            arrays[f"opt_{slot}_{i}"] = buf
    for name in ("best", "live"):
        bufs = state.pop(name)
        if bufs is not None:
            for i, buf in enumerate(bufs):
                arrays[f"{name}_{i}"] = buf
            state[f"has_{name}"] = True
    save_model(net, path, meta={"cli": settings, "trainer": state}, arrays=arrays)


def _restore_trainer_state(trainer: Trainer, meta: dict[str, Any], extra: dict[str, np.ndarray]) -> None:
    state = dict(meta["trainer"])
    state["order"] = extra.get("order")
    n_params = len(trainer.params)
    for slot in trainer.optimizer.slots:
        state["optimizer"][slot] = [extra[f"opt_{slot}_{i}"] for i in range(n_params)]
    for name in ("best", "live"):
        state[name] = [extra[f"{name}_{i}"] for i in range(n_params)] if state.get(f"has_{name}") else None
    trainer.load_state_dict(state)


def _training_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """(settings, checkpoint meta, checkpoint arrays): from the command line, or from --resume."""
    if args.resume:
        _, _, meta, extra = read_file(args.resume)
        if "trainer" not in meta or "cli" not in meta:
            raise UsageError(f"{args.resume} is a model but not a training checkpoint (no training state)")
        settings = dict(meta["cli"])
        settings["epochs"] = args.epochs  # the one thing a resume may change: how far to go
        if args.data != "digits" and args.data != settings["data"]:
            raise UsageError(f"--resume continues on the checkpoint's data {settings['data']!r}, not {args.data!r}")
        return settings, meta, extra
    if args.task == "regress" and args.loss != "mse":
        if args.loss != "cross_entropy":  # the default is fine to replace; an explicit choice is not
            raise UsageError(f"--task regress needs --loss mse, got --loss {args.loss}")
        args.loss = "mse"
    if args.optimizer == "adam" and args.momentum == 0.9 and not args.nesterov:
        args.momentum = 0.0  # the sgd default does not apply to Adam
    settings = {k: getattr(args, k) for k in (
        "data", "label_column", "hidden", "activation", "output", "loss", "init", "dtype", "seed", "scale",
        "task", "epochs", "batch_size", "lr", "optimizer", "momentum", "nesterov", "weight_decay", "patience",
        "val_fraction", "test_fraction", "split_seed")}  # fmt: skip
    settings["shuffle"] = not args.no_shuffle
    return settings, {}, {}


@dataclass
class TrainingData:
    """Scaled features, targets (class indices, or values when regressing) and the fixed split."""

    source: str
    X: np.ndarray
    y: np.ndarray
    train: np.ndarray
    val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray | None
    n_out: int
    scaler: Scaler


def _training_data(settings: dict[str, Any], extra: dict[str, np.ndarray]) -> TrainingData:
    """Load the data, turn labels into class indices, split, and scale (fitted on training rows,
    or the checkpoint's scaler when resuming)."""
    ds = load_data(settings["data"], settings["label_column"])
    regress = settings["task"] == "regress"
    if regress:
        if ds.y is None:
            raise UsageError(f"{ds.source}: no target column found")
        if np.asarray(ds.y).dtype.kind not in "biuf":
            raise UsageError(f"{ds.source}: regression targets must be numbers")
        y = np.asarray(ds.y, dtype=np.float64).reshape(len(ds.X), -1)
        if y.shape[1] != 1:
            raise UsageError(f"{ds.source}: --task regress expects one target per row, got {y.shape[1]}")
        y, classes, n_out = y[:, 0], None, 1
        y_test = None if ds.y_test is None else np.asarray(ds.y_test, dtype=np.float64)
    else:
        labels = _labels_of(ds)
        test_labels = None if ds.y_test is None else _labels_of(_test_part(ds))
        classes = extra["classes"] if "classes" in extra else np.unique(
            labels if test_labels is None else np.concatenate([labels, test_labels]))  # fmt: skip
        if len(classes) < 2:
            raise UsageError(f"{ds.source}: only one class ({classes[0]!r}) in the labels: nothing to learn")
        y = _class_indices(labels, classes, ds.source)
        y_test = None if test_labels is None else _class_indices(test_labels, classes, ds.source)
        n_out = 1 if (settings["loss"] == "bce" and len(classes) == 2) else len(classes)
    train, val, test = _split(y, ds.X_test is not None, settings["val_fraction"], settings["test_fraction"],
                              settings["split_seed"], regress)  # fmt: skip
    if len(train) == 0:
        raise UsageError(f"{ds.source}: no rows left for training after the validation and test splits")
    if "scaler_shift" in extra:
        scaler = Scaler.from_arrays(settings["scale"], extra)
    else:
        scaler = Scaler(settings["scale"]).fit(ds.X[train])
    X = scaler.transform(ds.X)
    if ds.X_test is None:
        X_test, y_test = X[test], y[test]
    else:
        X_test = scaler.transform(ds.X_test)
    return TrainingData(ds.source, X, y, train, val, X_test, y_test, classes, n_out, scaler)


def _save_path(args: argparse.Namespace) -> str | None:
    """--save, else the checkpoint being resumed (so a resumed run keeps one file), else the default."""
    if args.no_save:
        return None
    return args.save or args.resume or DEFAULT_SAVE


def _check_outputs_writable(args: argparse.Namespace) -> None:
    """Refuse before training, not after it, what would fail when writing the results."""
    for option, path in (("--save", _save_path(args)), ("--plot", args.plot)):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"{option} {path}: folder {os.path.dirname(os.path.abspath(path))} does not exist")
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()


def cmd_train(args: argparse.Namespace) -> int:
    out = sys.stderr if args.json else sys.stdout
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=out, flush=True))
    _check_outputs_writable(args)
    settings, meta, extra = _training_settings(args)
    data = _training_data(settings, extra)
    regress = settings["task"] == "regress"
    X, y, val = data.X, data.y, data.val

    if args.resume:
        from .checkpoint import load

        net = load(args.resume, device=args.device)
        if net.sizes[0] != X.shape[1]:
            raise UsageError(f"the checkpoint expects {net.sizes[0]} features, the data has {X.shape[1]}")
    else:
        sizes = [X.shape[1], *settings["hidden"], data.n_out]
        net = MLP(sizes, settings["activation"], settings["output"], settings["loss"], settings["init"],
                  device=args.device, dtype=settings["dtype"], seed=settings["seed"])  # fmt: skip

    def targets(rows_y: np.ndarray) -> np.ndarray:
        return _targets(rows_y, net.sizes[-1], net.loss, regress)

    validation = (X[val], targets(y[val])) if len(val) else None
    trainer = Trainer(net, X[data.train], targets(y[data.train]), batch_size=settings["batch_size"],
                      lr=settings["lr"], optimizer=settings["optimizer"], momentum=settings["momentum"],
                      nesterov=settings["nesterov"], weight_decay=settings["weight_decay"],
                      shuffle=settings["shuffle"], validation_data=validation,
                      patience=settings["patience"] if validation else None)  # fmt: skip
    if args.resume:
        _restore_trainer_state(trainer, meta, extra)
        net.history = trainer.history

    save_path = _save_path(args)
    epochs = settings["epochs"]
    say(f"gpubp {__version__}: {net!r}")
    say(f"data: {data.source}: {len(data.train)} train / {len(val)} validation / {len(data.y_test)} test rows, "
        f"{X.shape[1]} features" + (f", {len(data.classes)} classes" if data.classes is not None else ""))  # fmt: skip
    if args.resume:
        say(f"resuming {args.resume} at epoch {trainer.epoch}"
            + (f", batch {trainer.position // trainer.batch}" if trainer.position else ""))  # fmt: skip
    # a classifier trained with mse (the lecture's sigmoid + squared error) still reports accuracy
    metric_key = None if validation is None else ("val_r2" if regress else "val_accuracy")
    extra_accuracy = validation is not None and not regress and not net.is_classifier
    header, rule = _row_format({"val_accuracy": "val acc", "val_r2": "val R²"}.get(metric_key or ""))
    say(header)
    say(rule)
    for i in range(len(trainer.history.get("epoch", []))):  # the epochs before a resume
        row = {k: v[i] for k, v in trainer.history.items()}
        say(_format_row(row, metric_key if metric_key in row else None, net.device.name))

    def save() -> None:
        if save_path:
            _checkpoint(save_path, net, trainer, data.scaler, data.classes, settings)

    progress = _Progress(enabled=not args.quiet)
    current = {"epoch": trainer.epoch + 1}

    def on_epoch(model: MLP, row: dict[str, float]) -> bool:
        progress.close()
        if extra_accuracy:
            row = {**row, "val_accuracy": _accuracy(model, X[val], y[val])}
        say(_format_row(row, metric_key, model.device.name))
        current["epoch"] = int(row["epoch"]) + 1
        save()
        return False

    t0 = time.perf_counter()
    with _Interrupt() as interrupt:
        def on_batch(i: int, n: int) -> bool:
            progress.batch(i, n, current["epoch"], epochs)
            return interrupt.flag

        try:
            trainer.run(epochs, callback=on_epoch, on_batch=on_batch)
        finally:
            progress.close()
    wall = time.perf_counter() - t0
    save()
    if trainer.interrupted:
        if trainer.position:
            where = f"in epoch {trainer.epoch + 1}, batch {-(-trainer.position // trainer.batch)}"
        else:
            where = f"after epoch {trainer.epoch}"
        if save_path:
            print(f"gpubp train: interrupted {where}; checkpoint saved to {save_path} "
                  f"(continue with --resume {save_path})", file=sys.stderr)  # fmt: skip
        else:
            print(f"gpubp train: interrupted {where}; nothing saved (no --save)", file=sys.stderr)
        return EXIT_INTERRUPTED

    result: dict[str, Any] = {"device": net.device.name, "epochs": trainer.epoch, "seconds": wall,
                              "history": trainer.history, "model": save_path}  # fmt: skip
    if trainer.stopped_early and settings["patience"]:
        say(f"early stop: no better validation loss for {settings['patience']} epochs; "
            f"kept the weights of epoch {trainer.best_epoch}")  # fmt: skip
    if len(data.y_test):
        scores = net.evaluate(data.X_test, targets(data.y_test))
        result["test_loss"] = scores["loss"]
        if regress:
            result["test_r2"] = scores["r2"]
            say(f"test R²: {scores['r2']:.4f} ({len(data.y_test)} rows)")
        else:
            acc = result["test_accuracy"] = _accuracy(net, data.X_test, data.y_test)
            say(f"test accuracy: {100 * acc:.2f}% ({len(data.y_test)} rows) after {trainer.epoch} epochs, "
                f"{wall:.1f} s")  # fmt: skip
    if args.plot:
        from .plots import learning_curves

        learning_curves(trainer.history, args.plot)
        say(f"learning curves: {args.plot}")
    if save_path:
        say(f"model saved to {save_path}")
    if args.json:
        print(json.dumps(result, default=_json_default))
    elif args.quiet:
        if "test_accuracy" in result:
            print(f"test accuracy: {100 * result['test_accuracy']:.2f}%")
        elif "test_r2" in result:
            print(f"test R²: {result['test_r2']:.4f}")
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _decide(net: MLP, X: np.ndarray) -> np.ndarray:
    """Class indices for the rows of X."""
    return _classes_of(net.device.to_host(net.forward(X)))


def _classes_of(A: np.ndarray) -> np.ndarray:
    """Class indices from outputs: argmax, or output > 0.5 for a single sigmoid unit."""
    if A.shape[1] == 1:
        return (A[:, 0] > 0.5).astype(np.int64)
    return A.argmax(axis=1)


def _accuracy(net: MLP, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(_decide(net, X) == y))


# -- evaluate / predict -------------------------------------------------------------------------


def _load_for_inference(path: str, device: str | None):
    from .checkpoint import load

    _config, _, meta, extra = read_file(path)
    settings = meta.get("cli")
    if settings is None or "scaler_shift" not in extra:
        raise UsageError(f"{path} was not written by 'gpubp train' (no scaler or classes): use the Python API")
    net = load(path, device=device)
    scaler = Scaler.from_arrays(settings["scale"], extra)
    return net, settings, scaler, extra.get("classes")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    net, settings, scaler, classes = _load_for_inference(args.model, args.device)
    regress = settings["task"] == "regress"
    own = args.data is None or args.data == settings["data"]
    split = args.split or ("test" if own else "all")
    ds = load_data(args.data or settings["data"], args.label_column or settings["label_column"])
    separate_test = split == "test" and ds.X_test is not None
    if separate_test:
        ds = _test_part(ds)
    if ds.X.shape[1] != net.sizes[0]:
        raise UsageError(f"{ds.source} has {ds.X.shape[1]} features per row, the model expects {net.sizes[0]}")
    if regress:
        y = np.asarray(ds.y, dtype=np.float64).reshape(-1)
    else:
        y = _class_indices(_labels_of(ds), classes, ds.source)
    X = ds.X
    if split == "test" and not separate_test:
        _, _, test = _split(y, False, settings["val_fraction"], settings["test_fraction"],
                            settings["split_seed"], regress)  # fmt: skip
        X, y = X[test], y[test]
    if len(y) == 0:
        raise UsageError("no rows to evaluate")
    X = scaler.transform(X)
    result: dict[str, Any] = {"model": args.model, "data": ds.source, "split": split, "rows": len(y)}
    if regress:
        r2 = net.score(X, y)
        result["r2"] = r2
        print(json.dumps(result) if args.json else f"R²: {r2:.4f} on {len(y)} rows of {ds.source} ({split})")
        return 0
    pred = _decide(net, X)
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    acc = float(np.trace(cm) / cm.sum())
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, cm.sum(axis=0), out=np.zeros(k), where=cm.sum(axis=0) > 0)
    recall = np.divide(tp, cm.sum(axis=1), out=np.zeros(k), where=cm.sum(axis=1) > 0)
    result.update(accuracy=acc, classes=classes.tolist(), precision=precision.tolist(), recall=recall.tolist(),
                  confusion=cm.tolist())  # fmt: skip
    if args.json:
        print(json.dumps(result, default=_json_default))
    else:
        print(f"accuracy: {100 * acc:.2f}% on {len(y)} rows of {ds.source} ({split})\n")
        width = max(5, *(len(str(c)) for c in classes.tolist()))
        print(f"{'class':>{width}}  precision  recall  support")
        for c, p, r, s in zip(classes.tolist(), precision, recall, cm.sum(axis=1)):
            print(f"{c!s:>{width}}  {p:9.3f}  {r:6.3f}  {s:7d}")
        print("\nconfusion matrix (rows: true class, columns: predicted)")
        cell = max(4, len(str(cm.max())) + 1, width)
        print(" " * width + "".join(f"{c!s:>{cell}}" for c in classes.tolist()))
        for c, row in zip(classes.tolist(), cm):
            print(f"{c!s:>{width}}" + "".join(f"{v:>{cell}d}" for v in row))
    if args.plot:
        from .plots import confusion_matrix

        confusion_matrix(cm, [str(c) for c in classes.tolist()], args.plot)
        if not args.json:
            print(f"\nconfusion matrix image: {args.plot}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .checkpoint import atomic_write

    net, settings, scaler, classes = _load_for_inference(args.model, args.device)
    if args.data is None:
        raise UsageError("predict needs --data PATH (the rows to predict)")
    ds = load_data(args.data, args.label_column, n_features=net.sizes[0])
    X = ds.X_test if ds.X_test is not None else ds.X
    if X.shape[1] != net.sizes[0]:
        raise UsageError(f"{ds.source} has {X.shape[1]} features per row, the model expects {net.sizes[0]}")
    Xs = scaler.transform(X)
    A = net.device.to_host(net.forward(Xs)).astype(np.float64)
    lines = []
    if settings["task"] == "regress":
        lines.append("row,prediction")
        lines += [f"{i},{v:.9g}" for i, v in enumerate(A[:, 0])]
    else:
        pred = _classes_of(A)
        names = [str(c) for c in classes.tolist()]
        if A.shape[1] == 1:
            probs = np.column_stack([1 - A[:, 0], A[:, 0]])
        else:
            probs = A
        lines.append(",".join(["row", "prediction", *(f"p_{n}" for n in names)]))
        for i, (p, row) in enumerate(zip(pred, probs)):
            lines.append(",".join([str(i), names[p], *(f"{v:.6g}" for v in row)]))
    text = "\n".join(lines) + "\n"
    atomic_write(args.out, lambda f: f.write(text.encode()))
    print(f"wrote {len(A)} predictions to {args.out}")
    return 0


# -- gradcheck ----------------------------------------------------------------------------------


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import gradcheck_layers

    ds = load_data(args.data, args.label_column)
    y_lab = _labels_of(ds)
    classes = np.unique(y_lab)
    y = _class_indices(y_lab, classes, ds.source)
    rows = stratified_split(y, (min(1.0, args.rows / len(y)),), args.seed)[0][: args.rows]
    X = Scaler(args.scale).fit(ds.X).transform(ds.X[rows])
    n_out = 1 if (args.loss == "bce" and len(classes) == 2) else len(classes)
    if args.loss == "mse" and args.output is None:
        args.output = "identity"
    net = MLP([X.shape[1], *args.hidden, n_out], args.activation, args.output, args.loss, args.init,
              device="cpu", dtype="float64", seed=args.seed)  # fmt: skip
    Y = _targets(y[rows], n_out, args.loss, False)
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


# -- info and bench -----------------------------------------------------------------------------


def _blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "install threadpoolctl to see the BLAS library and its threads"}]
    return [{k: v for k, v in lib.items() if k in ("internal_api", "version", "num_threads", "architecture",
                                                    "filepath")} for lib in threadpool_info()]  # fmt: skip


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    from .backend import devices

    info: dict[str, Any] = {
        "gpubp": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "blas": _blas_info(),
    }
    info.update(devices())
    info["default_device"] = get_device(None).name
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"gpubp {info['gpubp']}  python {info['python']}  numpy {info['numpy']}  ({info['platform']})")
    print(f"default device: {info['default_device']}")
    print(f"cpu: {info['cpu_count']} cores")
    for lib in info["blas"]:
        if "note" in lib:
            print(f"  blas: {lib['note']}")
        else:
            print(f"  blas: {lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}), "
                  f"{lib.get('num_threads')} threads")  # fmt: skip
    gpu = info["gpu"]
    if not gpu["available"]:
        print(f"gpu: not usable: {gpu['reason']}")
        return 0
    print(f"gpu: cupy {gpu['cupy']}, CUDA runtime {gpu['cuda_runtime']}, driver {gpu['cuda_driver']}")
    for d in gpu["devices"]:
        print(f"  {d['device']}: {d['name']}, {d['memory_bytes'] / 2**30:.1f} GiB, "
              f"compute capability {d['compute_capability']}")  # fmt: skip
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import QUICK_CONFIGS, format_table, measure

    device = get_device(args.device)
    rows = []
    for cfg in QUICK_CONFIGS:
        rows.append(measure(cfg, device, seconds=args.seconds))
        if not args.json:
            print(format_table(rows[-1:], header=len(rows) == 1), flush=True)
    if args.json:
        print(json.dumps(rows, default=_json_default))
    return 0
