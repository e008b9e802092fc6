"""``gpubp train``: options, resolving them (or the checkpoint's), the epoch table, the result."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

from .. import __version__
from .._io import to_json
from ..checkpoint import read_file
from ..columns import Columns
from ..data import Dataset, fingerprint, load_data, row_hashes
from ..labels import Labels, class_index
from ..limits import check_dtype
from ..loaders import is_csv
from ..metrics import REPORTED, accuracy, classification_report, majority_warning, regression_report, summary
from ..model import Model, preprocessing
from ..monitor import GradientStats, TensorBoard, require_tensorboardx
from ..network import MLP
from ..network import load as load_network
from ..optim import OPTIMIZERS
from ..parallel import StopOnInterrupt
from ..settings import COMMAND_EPOCHS, COMMAND_LR, COMMAND_MOMENTUM, COMMAND_REGRESS, COMMAND_TABLE, TrainSettings
from ..tables import Table
from ..training import TrainingDivergedError, make_trainer
from ._common import (
    EXIT_INTERRUPTED,
    NETWORK_DEFAULTS,
    TABLE_DEFAULTS,
    Renamed,
    UsageError,
    absolute,
    add_data_options,
    add_network_options,  # fmt: skip
    add_table_options,
    check_output,
    data_files,
    fraction,
    limited,
    non_negative,
    positive,
    printer,
    read_options,
    resolve_network,
    same_file,
    seed,
)
from ._ranks import Ranks

DEFAULT_SAVE = "gpubp-model.npz"
NOTHING_SCORED = "no test rows held out (--test-fraction 0): nothing scored"

# the library's training defaults, except where the command differs on purpose (gpubp.settings says why);
# lr and momentum: None here, decided by the task and the optimiser in resolve()
_LIBRARY = TrainSettings()
TRAIN_DEFAULTS: dict[str, Any] = {"epochs": COMMAND_EPOCHS, "batch_size": _LIBRARY.batch_size, "lr": None,
                                  "optimizer": _LIBRARY.optimizer, "momentum": None, "nesterov": _LIBRARY.nesterov,
                                  "weight_decay": _LIBRARY.weight_decay, "patience": _LIBRARY.patience,
                                  "shuffle": _LIBRARY.shuffle, "val_fraction": 0.1, "test_fraction": 0.2,
                                  "split_seed": 0, "keep_best": True, "class_weight": None}  # fmt: skip


def add_parser(sub: Any) -> None:
    """The train subcommand's options (a long function: one add_argument per option, in --help's order)."""
    t = sub.add_parser(
        "train",
        help="train a network (default: on the embedded digits)",
        description="Train a network. With no options: the embedded UCI digits, 64-256-10 relu.",
    )
    add_data_options(t)
    add_table_options(t)
    add_network_options(t)
    t.add_argument("--epochs", type=positive(int), default=None,
                   help=f"(default: {COMMAND_EPOCHS}; with --task regress {COMMAND_REGRESS['epochs']})")  # fmt: skip
    t.add_argument("--batch-size", type=positive(int), default=None, help=f"(default: {_LIBRARY.batch_size})")
    t.add_argument(
        "--lr",
        type=positive(float),
        default=None,
        help=f"learning rate η (default: {COMMAND_LR['classify']}; with loss mse {COMMAND_LR['classify-mse']}, "
        f"with adam {COMMAND_LR['classify-adam']}, with --task regress {COMMAND_LR['regress-adam']} (adam), "
        f"{COMMAND_LR['regress']} (sgd))",
    )
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help=f"(default: {_LIBRARY.optimizer}; {COMMAND_TABLE['optimizer']} for a CSV classified with "
                        f"cross_entropy or bce; with --task regress {COMMAND_REGRESS['optimizer']})")  # fmt: skip
    t.add_argument("--momentum", type=limited("momentum"), default=None,
                   help=f"(sgd only; default: {COMMAND_MOMENTUM})")  # fmt: skip
    t.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum (sgd only)")
    t.add_argument("--weight-decay", type=non_negative, default=None,
                   help=f"λ, on weights only (default: {_LIBRARY.weight_decay:g}; with --task regress "
                        f"{COMMAND_REGRESS['weight_decay']})")  # fmt: skip
    t.add_argument(
        "--patience",
        type=positive(int),
        default=None,
        help="stop after this many epochs without a better validation loss; keep the best",
    )
    t.add_argument("--class-weight", choices=("balanced",), default=None,
                   help="weigh each training row by n / (classes × rows of its class), scikit-learn's 'balanced', "
                        "so that rare classes count as much as common ones (default: every row weighs 1)")  # fmt: skip
    t.add_argument(
        "--no-shuffle", dest="shuffle", action="store_false", default=None, help="keep the row order each epoch"
    )
    t.add_argument(
        "--split-seed",
        type=seed,
        default=None,
        help="seed of the fixed stratified train/validation/test split (default: 0)",
    )
    t.add_argument("--val-fraction", type=fraction, default=None, help="(default: 0.1)")
    t.add_argument(
        "--test-fraction",
        type=fraction,
        default=None,
        help="(default: 0.2; not used when the data has its own test files)",
    )
    t.add_argument("--save", default=None, metavar="PATH",
                   help=f"checkpoint written every epoch and at the end (default: the --resume file, "
                        f"else {DEFAULT_SAVE})")  # fmt: skip
    t.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=None,
                   help="with validation rows, save the best validation epoch's weights (the default); "
                        "--no-keep-best saves the last epoch's (the library's keep_best=False)")  # fmt: skip
    t.add_argument("--keep-last", action=Renamed, new="--no-keep-best", help="the old spelling of --no-keep-best",
                   why="one polarity, keep_best, in the library and the command")  # fmt: skip
    t.add_argument("--no-save", action="store_true", help="write no model file")
    t.add_argument(
        "--resume",
        default=None,
        metavar="PATH",
        help="continue the run saved in this checkpoint, with its data and settings "
        "(only --epochs, --device, --save and the output options may be given)",
    )
    t.add_argument("--plot", default=None, metavar="PNG", help="write the learning curves here")
    t.add_argument("--logdir", default=None, metavar="DIR",
                   help="write TensorBoard logs of every epoch here (tensorboard --logdir DIR; needs "
                        "pip install 'gpubp[tensorboard]'); a --resume run continues the same log")  # fmt: skip
    t.add_argument("--log-gradients", action="store_true",
                   help="also log, per layer, the gradient norms, the mean |Δ_l| and histograms of W_l "
                        "(to --logdir and as a panel of --plot)")  # fmt: skip
    t.add_argument("--json", action="store_true", help="print metrics as JSON on stdout (tables go to stderr)")
    t.add_argument("--quiet", action="store_true", help="print only the final result")
    t.set_defaults(func=cmd_train)


# -- settings -----------------------------------------------------------------------------------

SETTING_KEYS = (*NETWORK_DEFAULTS, *TRAIN_DEFAULTS, *TABLE_DEFAULTS)


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings from the options given: defaults in one place, contradictions refused."""
    given = {k: getattr(args, k) for k in SETTING_KEYS}
    s = resolve_network(given)
    table = s["task"] == "classify" and s["loss"] != "mse" and is_csv(s["data"])
    defaults = {**TRAIN_DEFAULTS, **(COMMAND_REGRESS if s["task"] == "regress" else COMMAND_TABLE if table else {})}
    s.update({k: (given[k] if given[k] is not None else v) for k, v in {**defaults, **TABLE_DEFAULTS}.items()})
    if s["lr"] is None:
        kind = "regress" if s["task"] == "regress" else "classify-mse" if s["loss"] == "mse" else "classify"
        s["lr"] = COMMAND_LR.get(f"{kind}-{s['optimizer']}", COMMAND_LR[kind])
    if s["optimizer"] == "adam":
        why = "--task regress" if s["task"] == "regress" else "a CSV table classified"
        chosen = "" if given["optimizer"] else f" ({why} trains with adam unless --optimizer sgd is given)"
        for option, value in (("--momentum", given["momentum"]), ("--nesterov", given["nesterov"])):
            if value is not None:
                raise UsageError(f"{option} applies to --optimizer sgd; adam keeps its own moment estimates{chosen}")
        s["momentum"] = 0.0
    elif s["momentum"] is None:
        s["momentum"] = COMMAND_MOMENTUM
    if s["nesterov"] and s["momentum"] == 0:
        raise UsageError("--nesterov needs --momentum > 0")
    if s["class_weight"] is not None and s["task"] == "regress":
        raise UsageError("--class-weight weighs classes, and --task regress has none")
    if given["patience"] is not None and s["val_fraction"] == 0:
        raise UsageError("--patience needs validation rows: --val-fraction > 0")
    if given["split_seed"] is not None and s["val_fraction"] == 0 and s["test_fraction"] == 0:
        raise UsageError("--split-seed seeds the train/validation/test split, and --val-fraction 0 --test-fraction 0 "
                         "splits nothing")  # fmt: skip
    if given["patience"] is not None and not s["keep_best"]:
        raise UsageError("--no-keep-best contradicts --patience, which keeps the best validation epoch's weights")
    s["data"] = absolute(s["data"])
    return s


def from_checkpoint(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """(settings, meta, arrays) of the run in ``--resume``; any option given that differs is refused."""
    _, _, meta, extra = read_file(args.resume)
    if "trainer" not in meta or "cli" not in meta:
        raise UsageError(f"{args.resume} is a model but not a training checkpoint (no training state)")
    settings = dict(meta["cli"])
    if "keep_last" in settings:  # a checkpoint of the command before --keep-best: one polarity since
        settings["keep_best"] = not settings.pop("keep_last")
    for key in SETTING_KEYS:
        value = getattr(args, key)
        if key == "epochs" or value is None:
            continue
        stored = settings.get(key)
        if key == "data":
            continue  # compared by content below, whatever the spelling of the path
        if value != stored:
            option = "--" + key.replace("_", "-")
            raise UsageError(f"{option} {_show(value)} differs from the checkpoint's {_show(stored)}: --resume "
                             "continues that run as it was (leave the option out, or start a new run)")  # fmt: skip
    done = int(meta["trainer"]["epoch"])
    epochs = args.epochs if args.epochs is not None else settings["epochs"]
    if epochs <= done:  # mid-epoch too: epoch done + 1 is the one to finish
        part = f" and part of epoch {done + 1}" if meta["trainer"].get("position") else ""
        raise UsageError(f"{args.resume} has done {done} epochs{part} already: --epochs {epochs} adds none "
                         f"(give --epochs > {done})")  # fmt: skip
    settings["epochs"] = epochs
    return settings, meta, extra


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def prepare(settings: dict[str, Any], extra: dict[str, np.ndarray], resume: str | None,
            data_option: str | None, task_chosen: bool = True) -> Dataset:  # fmt: skip
    """The data set of the run: a new split and scaling, or (resuming) the checkpoint's preprocessing
    on the same rows. ``task_chosen`` False: --task was not given (an ambiguous target is refused)."""
    spec = data_option or settings["data"]
    # a resumed CSV run's label column and delimiter are its file's: the same rows in another format have none
    csv_file = is_csv(spec) or not resume  # a new run's options are checked against the format, never dropped
    options = read_options(settings) if csv_file else {}
    raw = load_data(spec, settings["label_column"] if csv_file else None, **options)
    if not resume:
        choose = {k: settings.get(k) for k in TABLE_DEFAULTS}
        if not is_csv(spec) and any(settings.get(k) for k in ("drop", "features")):
            raise UsageError(f"{spec}: --drop and --features choose a CSV's columns by name, and this is not a CSV")
        return Dataset.prepare(raw, task=settings["task"], val_fraction=settings["val_fraction"],
                               test_fraction=settings["test_fraction"], split_seed=settings["split_seed"],
                               scale=settings["scale"], task_chosen=task_chosen, choose=choose)  # fmt: skip
    scaler, labels, target = preprocessing(settings, extra)
    table = Table.from_dict(settings["table"]) if "table" in settings else None
    differ = UsageError(f"{raw.source} is not the data {resume} was trained on ({settings['data']}: rows "
                        "differ): --resume continues on the same rows or the test rows would leak")  # fmt: skip
    stored = settings.get("fingerprint")
    if stored is not None and "table" not in settings and (raw.X is None or fingerprint(raw.X, raw.y) != stored):
        raise differ
    # a checkpoint from before column rules were stored read every column as a number and refused a
    # missing cell: the same reading now, not a table fitted anew (it could leave out an ID-like column)
    keep_all = None
    if table is None and raw.frame is not None:
        keep_all = {"features": [str(c) for c in raw.frame.columns], "missing": "refuse"}
    try:
        ds = Dataset.prepare(raw, task=settings["task"], val_fraction=settings["val_fraction"],
                             test_fraction=settings["test_fraction"], split_seed=settings["split_seed"],
                             scale=settings["scale"], labels=labels, scaler=scaler, target=target,
                             table=table, choose=keep_all)  # fmt: skip
    except ValueError as exc:  # another file's columns or classes: not the rows of the run, and why
        raise UsageError(f"{raw.source} is not the data {resume} was trained on ({exc}): --resume continues on "
                         "the same rows or the test rows would leak") from None  # fmt: skip
    if stored is not None and ds.fingerprint != stored:  # the rows as the model's table reads them
        raise differ
    return ds


# -- the run ------------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar per epoch over the batches (when tqdm is installed and stderr is a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        self.tqdm: Any = None
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
    cols = (f"{'epoch':>5}  {'train loss':>10}  {'val loss' if metric else '':>9}  {metric or '':>8}  "
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


def _save_path(args: argparse.Namespace) -> str | None:
    """--save, else the checkpoint being resumed (so a resumed run keeps one file), else the default."""
    if args.no_save:
        if args.save is not None:
            raise UsageError(f"--no-save contradicts --save {args.save}: give one of them")
        return None
    if args.save == "":
        raise UsageError("--save: empty file name (give a path, or --no-save to write no model)")
    return args.save or args.resume or DEFAULT_SAVE


def _label_note(ds: Dataset) -> str:
    if ds.label_column is None:
        return ""
    column = f"{ds.label_column!r}" if isinstance(ds.label_column, str) else f"column {ds.label_column}"
    return f", label: {column}"


def check_logdir(logdir: str | None) -> None:
    """Refuse, before any work, a --logdir that cannot be a folder, or any --logdir without tensorboardX."""
    if logdir is None:
        return
    if not logdir or (os.path.exists(logdir) and not os.path.isdir(logdir)):
        raise UsageError(f"--logdir {logdir!r}: not a folder (give a folder for the TensorBoard event files)")
    try:
        require_tensorboardx()
    except RuntimeError as exc:
        raise UsageError(f"--logdir: {exc}") from None


def setup(args: argparse.Namespace, writes: bool) -> tuple[dict[str, Any], Dataset, MLP]:
    """(settings, data set, network) of the run: a new one from the options, or the checkpoint's.
    Output paths are checked first (by the rank that ``writes``), before any work."""
    if args.log_gradients and not (args.logdir or args.plot):
        raise UsageError("--log-gradients needs somewhere to show them: --logdir DIR and/or --plot PNG")
    if writes:
        check_outputs(args)
        check_logdir(args.logdir)
    if args.resume:
        settings, _, extra = from_checkpoint(args)
        if writes and args.data is None:  # the data it names is an input too, which no output may replace
            check_outputs(args, settings.get("data"))
    else:
        settings, extra = resolve(args), {}
    ds = prepare(settings, extra, args.resume, args.data, task_chosen=args.task is not None)
    check_dtype(ds, settings["dtype"])  # a value the network cannot hold: refused now, not after training
    if args.test_fraction is not None and ds.X_test is not None:
        raise UsageError(f"--test-fraction: {ds.source} has its own test files, which are the test rows")
    if args.resume and args.data:
        settings["data"] = absolute(args.data)  # the same rows found elsewhere: remember where
    settings.update(
        fingerprint=ds.fingerprint,
        label_column=ds.label_column,
        label_index=ds.label_index,
        columns=_columns(ds).to_dict(),
    )
    if ds.table is not None:
        settings["table"] = ds.table.to_dict()
    if args.resume:
        net = load_network(args.resume, device=args.device)
        if net.sizes[0] != ds.X.shape[1]:
            raise UsageError(f"the checkpoint expects {net.sizes[0]} features, the data has {ds.X.shape[1]}")
    else:
        sizes = [ds.X.shape[1], *settings["hidden"], ds.n_outputs(settings["loss"])]
        net = MLP(sizes, settings["activation"], settings["output"], settings["loss"], settings["init"],
                  device=args.device, dtype=settings["dtype"], seed=settings["seed"])  # fmt: skip
    return settings, ds, net


def _columns(ds: Dataset) -> Columns:
    """The raw columns the model reads: a table's inputs (a CSV), else the data's features."""
    if ds.table is None:
        return Columns.of(ds.feature_names, ds.X.shape[1], ds.label_column, ds.label_index)
    names = ds.table.inputs if ds.feature_names is not None else None
    return Columns.of(names, len(ds.table.inputs), ds.label_column, ds.label_index)


def trained_rows(ds: Dataset) -> dict[str, np.ndarray]:
    """The row hashes the model stores: of the rows held out for testing (none when the data has its
    own test files) and, sorted, of the training and validation rows, so that evaluate finds them by content."""
    own_test = ds.X_test is not None
    heldout = np.empty(0, np.uint64) if own_test else np.sort(row_hashes(ds.X, ds.test))
    return {"heldout": heldout, "trained": np.sort(row_hashes(ds.X, np.concatenate([ds.train, ds.val])))}


def check_outputs(args: argparse.Namespace, stored_data: str | None = None) -> None:
    """Refuse, before any work, a model or picture path that cannot be written or would replace the
    data or a model being read (a resumed run saves to its own checkpoint unless --save says otherwise).
    ``stored_data``: the data a resumed checkpoint names (read when --data is not given)."""
    data = args.data if args.data is not None else (stored_data if args.resume else "digits")
    inputs = [("the data", f) for f in data_files(data)]
    save = _save_path(args)
    if args.resume and not (save and same_file(save, args.resume)):
        inputs.append(("the checkpoint", args.resume))
    check_output("--save" if args.save is not None or not args.resume else "--resume", save, inputs=inputs)
    check_output("--plot", args.plot, png=True, inputs=[*inputs, ("the checkpoint", args.resume), ("--save", save)])


def build_trainer(args: argparse.Namespace, settings: dict[str, Any], ds: Dataset, net: MLP, ranks: Ranks) -> Any:
    """The trainer over the training rows (validation rows, when there are any, choose the epoch
    whose weights are kept), restored from --resume when given."""
    comm = ranks.together(ranks.attach, net)
    has_val = ds.size("val") > 0
    validation = (ds.features("val"), ds.targets("val", net.sizes[-1], net.loss)) if has_val else None
    options = {k: settings[k] for k in TRAIN_DEFAULTS if k in TrainSettings.__dataclass_fields__}
    options["patience"] = settings["patience"] if validation else None
    options["keep_best"] = has_val and settings["keep_best"]
    trainer = make_trainer(net, ds.features("train"), ds.targets("train", net.sizes[-1], net.loss), comm,
                           TrainSettings(**options), validation_data=validation)  # fmt: skip
    if args.resume:  # every rank reads it; the first epoch starts from rank 0's copy
        ranks.together(trainer.restore, args.resume)
    return trainer


def describe(say: Any, args: argparse.Namespace, settings: dict[str, Any], ds: Dataset, net: MLP, ranks: Ranks,
             trainer: Any) -> None:  # fmt: skip
    """The run's opening lines: the network, the data (and what reading it decided), the ranks."""
    say(f"gpubp {__version__}: {net!r}")
    say(f"data: {ds.source}: {ds.size('train')} train / {ds.size('val')} validation / {ds.size('test')} test rows, "
        f"{ds.X.shape[1]} features" + (f", {len(ds.labels)} classes" if ds.labels is not None else "")
        + _label_note(ds) + (f" ({ds.note})" if ds.note else ""))  # fmt: skip
    for note in ds.notes:
        say(f"data: {note}")
    if ranks.distributed:
        say(f"ranks: {ranks.size} ({type(trainer.comm).__name__}), each batch of {settings['batch_size']} rows split "
            "across them")  # fmt: skip
    if settings["task"] == "regress" and ds.target is not None:
        say(f"target standardised on the training rows (mean {ds.target.shift[0]:.4g}, sd {ds.target.scale[0]:.4g}); "
            "predictions are mapped back")  # fmt: skip
    if args.resume:
        say(f"resuming {args.resume} at epoch {trainer.epoch}"
            + (f", batch {trainer.position // trainer.batch}" if trainer.position else ""))  # fmt: skip


class EpochTable:
    """The epoch table: its header, the epochs of an earlier run (when resuming) and a row per epoch.
    A classifier trained with mse (the lecture's sigmoid + squared error) still shows accuracy."""

    def __init__(self, say: Any, ds: Dataset, net: MLP, trainer: Any) -> None:
        self.say, self.ds, self.device = say, ds, net.device.name
        has_val = trainer.validation is not None
        regress = ds.task == "regress"
        self.metric = None if not has_val else ("val_r2" if regress else "val_accuracy")
        self.extra_accuracy = has_val and not regress and not net.is_classifier
        header, rule = _row_format({"val_accuracy": "val acc", "val_r2": "val R²"}.get(self.metric or ""))
        say(header)
        say(rule)
        earlier = len(trainer.history.get("epoch", []))
        for i in range(earlier):  # the epochs before a resume, marked as such
            row = {k: v[i] for k, v in trainer.history.items()}
            say(_format_row(row, self.metric if self.metric in row else None, self.device) + "  (earlier run)")
        if earlier:
            say(rule)

    def row(self, net: MLP, row: dict[str, float]) -> None:
        if self.extra_accuracy:
            A = net.device.to_host(net.forward(self.ds.features("val")))
            row = {**row, "val_accuracy": accuracy(self.ds.targets("val"), class_index(A))}
        self.say(_format_row(row, self.metric, net.device.name))


def watchers(args: argparse.Namespace, trainer: Any, ranks: Ranks) -> tuple[GradientStats | None, TensorBoard | None]:
    """--log-gradients and --logdir: per-layer gradient statistics and TensorBoard logs, attached to the
    trainer; rank 0 alone watches (its trainer's probe) and writes."""
    stats = GradientStats() if args.log_gradients and ranks.root else None
    board = TensorBoard(args.logdir, gradients=stats or False) if args.logdir and ranks.root else None
    watcher = board or stats
    if watcher is not None:
        watcher.attach(trainer)
    return stats, board


def run_epochs(args: argparse.Namespace, settings: dict[str, Any], trainer: Any, table: EpochTable,
               save: Any, result: dict[str, Any], ranks: Ranks, watcher: Any = None) -> float:  # fmt: skip
    """Train to the last epoch (or Ctrl-C), a table row and a checkpoint per epoch (and ``watcher(net,
    row)``: the TensorBoard log or gradient statistics); the seconds taken."""
    progress = _Progress(enabled=not args.quiet and ranks.root)
    current = {"epoch": trainer.epoch + 1}

    def on_epoch(m: MLP, row: dict[str, float]) -> bool:
        progress.close()
        table.row(m, row)
        if watcher is not None:
            watcher(m, row)
        current["epoch"] = int(row["epoch"]) + 1
        save()
        return False

    t0 = time.perf_counter()
    with StopOnInterrupt() as interrupt:  # under mpiexec every rank gets the Ctrl-C; rank 0 decides

        def on_batch(i: int, n: int) -> bool:
            progress.batch(i, n, current["epoch"], settings["epochs"])
            return interrupt.requested

        try:
            trainer.run(settings["epochs"], callback=on_epoch, on_batch=on_batch)
        except TrainingDivergedError as exc:
            message = " ".join(str(exc).split())
            if trainer.best_epoch and trainer.stopping.best is not None:
                # the model the docs promise: the best validation epoch's weights, not the last checkpoint's
                trainer.stopping.finish()
                save()
                result.update(kept_epoch=trainer.best_epoch, kept="best validation loss")
                message = message.split("; the weights from")[0] + (
                    f"; {result.get('model') or 'the model'} holds the weights of epoch {trainer.best_epoch}, the "
                    "best validation loss (try a smaller lr)"
                )
                exc.args = (message,)  # the same error (every rank raised it), saying what was kept
            result.update(status="diverged", error=message, epochs=trainer.epoch, history=trainer.history)
            if args.json and ranks.root:
                print(to_json(result, strict=True))
            raise
        finally:
            progress.close()
    return time.perf_counter() - t0


def report_interrupt(args: argparse.Namespace, trainer: Any, save_path: str | None, result: dict[str, Any]) -> int:
    if trainer.position:
        where = f"in epoch {trainer.epoch + 1}, batch {-(-trainer.position // trainer.batch)}"
    else:
        where = f"after epoch {trainer.epoch}"
    if save_path:
        print(f"gpubp train: interrupted {where}; checkpoint saved to {save_path} "
              f"(continue with --resume {save_path})", file=sys.stderr)  # fmt: skip
    else:
        print(f"gpubp train: interrupted {where}; nothing saved (no --save)", file=sys.stderr)
    if args.json:
        print(to_json({**result, "status": "interrupted"}, strict=True))
    return EXIT_INTERRUPTED


def kept_weights(say: Any, settings: dict[str, Any], trainer: Any, result: dict[str, Any]) -> None:
    """Say which epoch's weights the model holds: the best validation epoch's, or the last."""
    if trainer.stopped_early and settings["patience"]:
        say(f"early stop: no better validation loss for {settings['patience']} epochs; "
            f"kept the weights of epoch {trainer.best_epoch}")  # fmt: skip
    if trainer.validation is not None and settings["keep_best"] and trainer.best_epoch:
        result.update(kept_epoch=trainer.best_epoch, kept="best validation loss")
        if not trainer.stopped_early:
            say(f"kept the weights of epoch {trainer.best_epoch} of {trainer.epoch}, the best validation loss "
                f"({trainer.best_val:.4f}; --no-keep-best keeps the last epoch's)")  # fmt: skip
    else:
        result.update(kept_epoch=trainer.epoch, kept="last epoch")


def test_score(say: Any, ds: Dataset, net: MLP, trainer: Any, wall: float, result: dict[str, Any]) -> None:
    """The kept weights scored on the test rows (the one test score of the run): gpubp.metrics' figures,
    with the majority rate beside the accuracy and a warning when the accuracy does not beat it."""
    if not ds.size("test"):
        say(NOTHING_SCORED)
        return
    X_test = ds.features("test")
    scores = net.evaluate(X_test, ds.targets("test", net.sizes[-1], net.loss))
    result["test_loss"] = scores["loss"]
    result["test_rows"] = ds.test_rule
    A = net.device.to_host(net.forward(X_test))
    if ds.task == "regress":
        truth, pred = ds.targets("test").reshape(len(A), -1), A
        if ds.target is not None:  # the target's own units: MAE and RMSE mean something to the user
            truth, pred = ds.target.inverse(truth), ds.target.inverse(pred)
        report = regression_report(truth, pred)
        result.update({f"test_{k}": v for k, v in report.items()})
        say(f"test R²: {report['r2']:.4f}, MAE {report['mae']:.4g}, RMSE {report['rmse']:.4g} on {ds.test_rule}")
        return
    assert ds.labels is not None  # a classifier's data has labels (mypy)
    classes = ds.labels.classes.tolist()
    proba = Labels.proba(A) if net.output in ("softmax", "sigmoid") and len(classes) == 2 else None
    report = classification_report(ds.targets("test"), class_index(A), len(classes), proba)
    result.update({f"test_{k}": report[k] for k in REPORTED if k in report})
    say(f"test accuracy: {100 * report['accuracy']:.2f}% (majority rate {100 * report['majority_rate']:.2f}%) on "
        f"{ds.test_rule}, after {trainer.epoch} epochs, {wall:.1f} s")  # fmt: skip
    say(f"test {summary(report)}")
    advice = ("--class-weight balanced trades accuracy for the rare classes" if trainer.settings.class_weight
              else "--class-weight balanced trains for the rare classes")  # fmt: skip
    warning = majority_warning(report, classes, advice)
    if warning:
        say(warning)


def print_result(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        print(to_json(result, strict=True))
    elif args.quiet:
        if "test_accuracy" in result:
            print(
                f"test accuracy: {100 * result['test_accuracy']:.2f}% (majority rate "
                f"{100 * result['test_majority_rate']:.2f}%), {summary(_unprefixed(result))}"
            )
        elif "test_r2" in result:
            print(f"test R²: {result['test_r2']:.4f}")
        else:
            print(NOTHING_SCORED)


def _unprefixed(result: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix("test_"): v for k, v in result.items()}


def cmd_train(args: argparse.Namespace) -> int:
    """A run: set up (options or checkpoint, data, network), build the trainer, describe the run,
    train the epochs, then (rank 0) save, say which weights were kept, score the test rows, report."""
    ranks = Ranks()  # one process, or the ranks mpiexec started: rank 0 alone prints and writes
    say = printer(args.quiet or not ranks.root, args.json)
    save_path = _save_path(args) if ranks.root else None
    args.device = ranks.device(args.device)  # each rank's own GPU, before anything is built
    replaces = bool(save_path) and save_path == DEFAULT_SAVE and os.path.exists(save_path) and not args.resume
    settings, ds, net = ranks.together(setup, args, ranks.root)
    trainer = build_trainer(args, settings, ds, net, ranks)
    model = Model(net, ds.scaler, ds.labels, ds.target, settings, trained_rows(ds))
    describe(say, args, settings, ds, net, ranks, trainer)
    table = EpochTable(say, ds, net, trainer)

    def save() -> None:
        if save_path:
            trainer.save(save_path, meta={"cli": settings}, arrays=model.arrays())

    result: dict[str, Any] = {"status": "running", "device": net.device.name, "model": save_path}
    stats, board = watchers(args, trainer, ranks)
    try:
        wall = run_epochs(args, settings, trainer, table, save, result, ranks, watcher=board or stats)
    finally:
        if board is not None:
            board.close()

    def finish() -> int:
        """Rank 0: the last checkpoint, the test score, plots and the result; the exit status."""
        if not ranks.root:
            return EXIT_INTERRUPTED if trainer.interrupted else 0
        save()
        result.update(epochs=trainer.epoch, seconds=wall, history=trainer.history)
        if trainer.interrupted:
            return report_interrupt(args, trainer, save_path, result)
        result["status"] = "stopped early" if trainer.stopped_early else "done"
        kept_weights(say, settings, trainer, result)
        test_score(say, ds, net, trainer, wall, result)
        if args.plot:
            from ..plots import learning_curves

            learning_curves(trainer.history, args.plot, gradients=None if stats is None else stats.history)
            say(f"learning curves: {args.plot}")
        if save_path:
            say(f"model saved to {save_path}" + (" (replacing the file of an earlier run)" if replaces else ""))
        print_result(args, result)
        return 0

    return ranks.status(ranks.together(finish))  # every rank exits with the same status
