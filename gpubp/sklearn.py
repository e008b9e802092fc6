"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, trained by gpubp on the GPU or the CPU.

Same constructor parameters, defaults, stopping rules and fitted attributes as
``sklearn.neural_network``; ``coefs_[i]`` is (n_in, n_out) as there, the transpose of gpubp's W_l.
Differences: ``device`` and ``dtype`` (float32 by default) are added; ``solver='lbfgs'`` is not
offered (``max_fun`` is accepted and checked, unused); sparse X is refused (densify it first). Labels are
encoded, decoded and decided by gpubp.labels, as for the command. Updates, alpha (per batch, over the batch's size or
weight sum), initialisation, shuffling, validation split and stopping rules are scikit-learn's: in
float64 the fitted coefs_ equal its own to rounding. Two differences remain: SGD momentum keeps gpubp's form (see
``_sgd_note``), and ``loss_`` adds the L2 term with the weights at the end of each epoch, not per batch.

Importing this module imports scikit-learn; ``import gpubp`` does not.
"""

from __future__ import annotations

import itertools
import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

try:
    import sklearn  # noqa: F401  (the one extra this module needs: say which, in one line)
except ModuleNotFoundError as exc:
    if exc.name != "sklearn":
        raise
    hint = "gpubp.MLPClassifier and gpubp.MLPRegressor need scikit-learn: pip install 'gpubp[sklearn]'"
    raise ModuleNotFoundError(hint, name="sklearn") from None
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
)

from ._sklearn_checks import check_hidden, check_known_classes, labels_of, validate_X, validate_Xy
from .backend import to_numpy
from .kernels import ACTIVATIONS
from .labels import Labels
from .network import MLP
from .settings import LIMITS, TrainSettings
from .training import Trainer, TrainingDivergedError

__all__ = ["MLPClassifier", "MLPRegressor", "register_onnx_converters"]

# scikit-learn's activation names → gpubp's (logistic → sigmoid); an activation scikit-learn lacks is taken under
# gpubp's own name (such an estimator trains, predicts and exports with gpubp.export, but skl2onnx refuses it)
_ACTIVATIONS = {act.sklearn or name: name for name, act in ACTIVATIONS.items() if act.hidden}
_SOLVERS = ("sgd", "adam")


def _interval(setting: str) -> Interval:
    """A parameter's range: the training setting's own (gpubp.settings.LIMITS), never a copy."""
    low, high, closed = LIMITS[setting]
    return Interval(Real, low, high, closed=closed)


# scikit-learn 1.9's constraints for these parameters, less lbfgs, plus device and dtype; the training
# settings' ranges are the library's (they equal scikit-learn's)
_CONSTRAINTS: dict[str, list] = {
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [StrOptions(set(_ACTIVATIONS))],
    "solver": [StrOptions(set(_SOLVERS))],
    "alpha": [_interval("weight_decay")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
    "learning_rate_init": [_interval("lr")],
    "power_t": [Interval(Real, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "random_state": ["random_state"],
    "tol": [Interval(Real, 0, None, closed="left")],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
    "momentum": [_interval("momentum")],
    "nesterovs_momentum": ["boolean"],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "beta_1": [_interval("betas")],
    "beta_2": [_interval("betas")],
    "epsilon": [_interval("eps")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
    "max_fun": [Interval(Integral, 1, None, closed="left")],  # only lbfgs uses it: accepted, checked, unused
    "device": [str],
    "dtype": [StrOptions({"float32", "float64"})],
}

_sgd_note = """SGD momentum is kept in gpubp's form v ← μv + g, W ← W − ηv (scikit-learn: v ← μv − ηg, W ← W + v);
they are the same run at a constant η, and differ slightly after an invscaling or adaptive change of η
(scikit-learn's velocity carries the old η). Adam uses scikit-learn's placement of ε (before the bias
correction of √v)."""


class _ShuffleLikeSklearn:
    """The Trainer's shuffle: ``permutation(n)`` is scikit-learn's next epoch order, the previous
    order shuffled by its RandomState (``sklearn.utils.shuffle(sample_idx, random_state)``)."""

    def __init__(self, random_state: np.random.RandomState) -> None:
        self.random_state = random_state
        self.order: np.ndarray | None = None

    def permutation(self, n: int) -> np.ndarray:
        if self.order is None or self.order.shape[0] != n:
            self.order = np.arange(n)
        self.order = self.order[self.random_state.permutation(n)]
        return self.order


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, validation and the training loop."""

    _parameter_constraints: ClassVar[dict] = _CONSTRAINTS

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, device="auto",
                 dtype="float32"):  # fmt: skip
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype

    # -- checks ------------------------------------------------------------------------------------

    # -- training ----------------------------------------------------------------------------------

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> _BaseMLP:
        hidden = check_hidden(self)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y, Y, n_outputs = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X if isinstance(X, np.ndarray) else Y)
        sample_weight = self._weigh_classes(y, sample_weight, incremental)
        sizes = [X.shape[1], *hidden, n_outputs]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(sizes)
        elif self._net.sizes != sizes:
            raise ValueError(f"warm_start and partial_fit need the same layer sizes as the fitted network "
                             f"{self._net.sizes}, got {sizes}")  # fmt: skip
        self._fit_stochastic(X, y, Y, sample_weight, incremental)
        self._copy_out()
        return self

    def _weigh_classes(self, y: Any, sample_weight: Any, incremental: bool) -> Any:
        """The rows' weights with the classifier's class weights multiplied in (the regressor has none)."""
        return sample_weight

    def _initialize(self, sizes: list[int]) -> None:
        """Fresh network and fitted state, with scikit-learn's Glorot-uniform initialisation."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = sizes[-1]
        self.n_layers_ = len(sizes)
        loss = self._labels.loss if is_classifier(self) else "mse"
        self.out_activation_ = {"mse": "identity", "cross_entropy": "softmax", "bce": "logistic"}[loss]
        factor = 2.0 if self.activation == "logistic" else 6.0
        coefs, intercepts = [], []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(self._random_state.uniform(-bound, bound, fan_out))
        self._net = MLP(sizes, activation=_ACTIVATIONS[self.activation], loss=loss, device=self.device,
                        dtype=self.dtype, seed=0)  # fmt: skip
        # gpubp's W_l is (n_out, n_in), row-major: a transposed view would stay column-major and slow every GEMM
        self._net.set_parameters([np.ascontiguousarray(W.T) for W in coefs], intercepts)
        self._trainer: Trainer | None = None
        self._best_params = None
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        # a list and a float, or None where scikit-learn leaves them None (by early_stopping)
        self.validation_scores_: Any
        self.best_validation_score_: Any
        self.best_loss_: Any
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _make_trainer(self, X: Any, Y: Any, sample_weight: Any, batch: int) -> Trainer:
        sgd = self.solver == "sgd"
        settings = TrainSettings(batch_size=batch, lr=self.learning_rate_init, optimizer=self.solver,
                                 momentum=self.momentum if sgd else 0.0,
                                 nesterov=bool(sgd and self.nesterovs_momentum and self.momentum > 0),
                                 weight_decay=self.alpha, shuffle=self.shuffle, decay_mean=True,
                                 betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                                 eps_before_correction=True)  # scikit-learn's form of Adam's update  # fmt: skip
        return Trainer(self._net, X, Y, settings, sample_weight=sample_weight)

    def _fit_stochastic(self, X: Any, y: Any, Y: Any, sample_weight: Any, incremental: bool) -> None:
        """The epochs; ``y`` as given (validation scores compare with it), ``Y`` what the network trains against."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X_train, Y_train, sw_train, validation = self._split(X, Y, y, sample_weight)
        n = X_train.shape[0]
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              UserWarning, stacklevel=4)  # fmt: skip
            batch = int(np.clip(self.batch_size, 1, n))
        trainer = self._trainer_for(X_train, Y_train, sw_train, batch, incremental)
        self.n_iter_ = 0
        rules = _StoppingRules(self, trainer, n, validation)
        # one run over all epochs (not one call per epoch: entering a run has a cost per call)
        trainer.stopped_early = False
        try:
            trainer.run(trainer.epoch + (1 if incremental else self.max_iter), callback=rules)
        except TrainingDivergedError as exc:  # scikit-learn's error for this case, with gpubp's detail
            raise ValueError(
                f"Solver produced non-finite parameter weights. The input data may contain large "
                f"values and need to be preprocessed ({exc})"
            ) from exc
        if not incremental and not rules.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          f"optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)  # fmt: skip
        if self.early_stopping and self._best_params is not None:  # restore the best weights, in place, on their device
            with self._net.device.use():
                self._net.xp.copyto(self._net.params.theta, self._best_params)

    def _split(self, X: Any, Y: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any, tuple | None]:
        """(X, Y, sample_weight) to train on and, with early_stopping, (X_val, y_val, sw_val) held out
        as scikit-learn holds them out (stratified for one-output classifiers)."""
        if not self.early_stopping:
            return X, Y, sample_weight, None
        stratify = Y if is_classifier(self) and self.n_outputs_ == 1 else None
        arrays = [X, Y, y] if sample_weight is None else [X, Y, y, sample_weight]
        parts = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                 stratify=stratify)  # fmt: skip
        X_train, X_val, Y_train, _, _, y_val = parts[:6]
        sw_train, sw_val = parts[6:] if sample_weight is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")  # fmt: skip
        return X_train, Y_train, sw_train, (X_val, y_val, sw_val)

    def _trainer_for(self, X: Any, Y: Any, sample_weight: Any, batch: int, incremental: bool) -> Trainer:
        """A new Trainer for fit (a new optimiser, as scikit-learn); partial_fit keeps its own, with new data."""
        trainer = getattr(self, "_trainer", None)
        saved = self.__dict__.pop("_optimizer_state", None)  # from a pickle
        if not incremental or trainer is None:
            trainer = self._trainer = self._make_trainer(X, Y, sample_weight, batch)
            if incremental and saved is not None:  # partial_fit after unpickling goes on with its moments
                trainer.optimizer.load_state_dict(saved["state"])
                trainer.optimizer.set_lr(saved["lr"])
        else:
            trainer.set_data(X, Y, sample_weight, batch_size=batch)
        # scikit-learn's own shuffle of its RandomState, drawn from in scikit-learn's order (init, validation
        # split, epochs), so a float64 fit repeats scikit-learn's
        trainer.shuffle_with(_ShuffleLikeSklearn(self._random_state).permutation)
        return trainer

    def _copy_out(self) -> None:
        """The fitted weights as NumPy arrays in scikit-learn's orientation (copies)."""
        net = self._net
        self.coefs_ = [np.ascontiguousarray(to_numpy(W).T) for W in net.weights]
        self.intercepts_ = [to_numpy(b).copy() for b in net.biases]

    # -- prediction --------------------------------------------------------------------------------

    def _forward(self, X: Any, check_input: bool = True) -> np.ndarray:
        """The output layer's values on the host, in X's float dtype as scikit-learn's are (float64 for
        float64 or integer X, float32 for float32 X), whatever dtype the network computes in."""
        check_is_fitted(self)
        if check_input:
            X = validate_X(self, X, reset=False)
        dtype = X.dtype if getattr(X, "dtype", None) in (np.float32, np.float64) else np.float64
        return to_numpy(self._net.forward(X)).astype(dtype, copy=False)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _BaseMLP:
        """Fit to (X, y); ``sample_weight`` (n_samples,) makes each batch mean a weighted mean."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    # -- pickling: the network pickles itself; the trainer (a copy of the data) is left out ------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        trainer = state.pop("_trainer", None)
        state.pop("_best_params", None)
        if trainer is not None:
            state["_optimizer_state"] = {"state": trainer.optimizer.state_dict(), "lr": float(trainer.optimizer.lr)}
        return state


class _StoppingRules:
    """scikit-learn's end of an iteration, as the Trainer's epoch callback (True stops): ``loss_`` and
    ``loss_curve_``, the validation score with early_stopping, the no-improvement count against
    ``tol``, the invscaling and adaptive learning rates, and the stop after ``n_iter_no_change``."""

    def __init__(self, est: _BaseMLP, trainer: Trainer, n: int, validation: tuple | None) -> None:
        self.est, self.trainer, self.n, self.validation = est, trainer, n, validation
        self.stopped = False

    def __call__(self, net: MLP, row: dict) -> bool:
        est = self.est
        est.n_iter_ += 1
        est.loss_ = self.epoch_loss()
        est.t_ += self.n
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        self.count_no_improvement()
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            self.trainer.optimizer.set_lr(float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t)
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            msg = (f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} "
                   f"consecutive epochs.")  # fmt: skip
            if self.stop(msg):
                self.stopped = True
                return True
            est._no_improvement_count = 0
        return False

    def epoch_loss(self) -> float:
        """scikit-learn's loss_: the epoch's mean data loss (per output for regression) plus
        ½α‖W‖²/Σw of each batch, here with the weights at the end of the epoch."""
        est, trainer = self.est, self.trainer
        loss = trainer.history["train_loss"][-1]
        if not is_classifier(est):
            loss /= est.n_outputs_  # scikit-learn's squared error is a mean over the outputs too
        if est.alpha:
            net = est._net
            W = net.params.weight_part(net.params.theta)  # all weights, flat: ‖W‖² is one dot product
            sq = net.device.item(net.xp.dot(W, W))
            sizes, sums = trainer.batch_totals()  # a batch whose weights are all 0 has no penalty either
            per_batch = np.divide(sizes, sums, out=np.zeros_like(sums), where=sums > 0)
            loss += 0.5 * est.alpha * sq * float(per_batch.sum()) / trainer.counted_rows()
        return float(loss)

    def count_no_improvement(self) -> None:
        """One more epoch without improvement (of the validation score, or of the training loss), or none."""
        est = self.est
        if self.validation is not None:
            score = est._score(*self.validation)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            est._no_improvement_count = (
                est._no_improvement_count + 1 if score < est.best_validation_score_ + est.tol else 0
            )
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_params = est._net.params.theta.copy()  # all W and b: one flat copy
        else:
            loss = est.loss_curve_[-1]
            est._no_improvement_count = est._no_improvement_count + 1 if loss > est.best_loss_ - est.tol else 0
            if loss < est.best_loss_:
                est.best_loss_ = loss

    def stop(self, msg: str) -> bool:
        """scikit-learn's rule: stop, unless sgd with learning_rate='adaptive' can still divide η by 5."""
        est, optimizer = self.est, self.trainer.optimizer
        lr = float(optimizer.lr)
        if est.solver != "sgd" or est.learning_rate != "adaptive":
            if est.verbose:
                print(msg + " Stopping.")
            return True
        if lr <= 1e-6:
            if est.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        optimizer.set_lr(lr / 5.0)
        if est.verbose:
            print(msg + f" Setting learning rate to {lr / 5.0:f}")
        return False


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's MLPClassifier (same parameters and attributes) trained by gpubp.

    ``device``: ``auto`` (``GPUBP_DEVICE`` when set, else the GPU when one answers), ``cpu``, ``gpu`` or
    ``gpu:N``. ``dtype``: ``float32`` (default) or ``float64``, what the network computes in; outputs
    follow X's float dtype. Binary targets train one logistic output, multilabel
    indicator targets one per label, multiclass a softmax.

    ``class_weight`` (scikit-learn's own MLPClassifier has none): None (default: every row weighs 1,
    the numbers equal scikit-learn's MLPClassifier), ``"balanced"`` (n_samples / (n_classes ×
    rows of the class)) or ``{label: weight}``, as scikit-learn's other classifiers take it: each
    row's class weight multiplies its ``sample_weight`` (sklearn.utils.class_weight's
    compute_class_weight; "balanced" counts each class by its rows' sample weights).
    ``partial_fit`` with "balanced" balances the rows of each call (SGDClassifier refuses it; a dict
    weighs every call alike).
    """

    _parameter_constraints: ClassVar[dict] = {**_CONSTRAINTS, "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, device="auto",
                 dtype="float32", class_weight=None):  # fmt: skip
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
                         batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
                         power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
                         verbose=verbose, warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         n_iter_no_change=n_iter_no_change, max_fun=max_fun, device=device, dtype=dtype)  # fmt: skip
        self.class_weight = class_weight

    def _weigh_classes(self, y: Any, sample_weight: Any, incremental: bool) -> Any:
        """``sample_weight`` times each row's class weight ("balanced": of the rows given, so
        ``partial_fit`` balances each call's rows)."""
        if self.class_weight is None:
            return sample_weight
        if np.ndim(y) != 1:  # multilabel indicators: one weight per output, multiplied (scikit-learn's rule)
            by_class = compute_sample_weight(self.class_weight, y)
        else:
            # "balanced" counts each class by its rows' sample weights (scikit-learn >= 1.8), so that a weight
            # of 2 and a repeated row stay the same fit
            classes, idx = np.unique(y, return_inverse=True)
            with np.errstate(divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a class whose rows all weigh 0: inf, made 0 below
                try:
                    per_class = compute_class_weight(self.class_weight, classes=classes, y=y,
                                                     sample_weight=sample_weight)  # fmt: skip
                except TypeError:  # scikit-learn < 1.8: counts by rows
                    per_class = compute_class_weight(self.class_weight, classes=classes, y=y)
            per_class = np.asarray(per_class, dtype=np.float64)
            by_class = np.where(np.isfinite(per_class), per_class, 0.0)[idx]  # such rows weigh 0 anyway
        return by_class if sample_weight is None else sample_weight * by_class

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, Any, np.ndarray, int]:
        """X, y checked; the network's targets for y (gpubp.labels) and its number of outputs."""
        X, y = validate_Xy(self, X, y, reset, y_numeric=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._labels = labels_of(y)
            self.classes_ = self._labels.classes
        else:
            check_known_classes(y, self.classes_, same=self.warm_start)
        return X, y, self._labels.targets(y), self._labels.n_outputs

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), keeping the optimiser state; ``classes`` is needed on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._labels = labels_of(y if type_of_target(y).startswith("multilabel") else classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        A = self._forward(X, check_input)  # first: it refuses an unfitted estimator
        return self._labels.predict(A)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (n_samples,), or (n_samples, n_labels) indicators for multilabel targets."""
        return self._predict(X)

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        y_pred = self._predict(X, check_input=False)
        return float(accuracy_score(y, y_pred, sample_weight=sample_weight))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        return Labels.proba(self._forward(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """log(predict_proba(X))."""
        P = self.predict_proba(X)
        return np.log(P, out=P)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's MLPRegressor (same parameters and attributes; squared error only) trained by gpubp."""

    _parameter_constraints: ClassVar[dict] = {**_CONSTRAINTS, "loss": [StrOptions({"squared_error"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, device="auto", dtype="float32"):  # fmt: skip
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
                         batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
                         power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
                         verbose=verbose, warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         n_iter_no_change=n_iter_no_change, max_fun=max_fun, device=device, dtype=dtype)  # fmt: skip
        self.loss = loss

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, Any, np.ndarray, int]:
        X, y = validate_Xy(self, X, y, reset, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(y.shape[0], -1)
        return X, Y, Y, Y.shape[1]

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y), keeping the optimiser state."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        A = self._forward(X, check_input)
        return A.ravel() if A.shape[1] == 1 else A

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, (n_samples,) for one target, else (n_samples, n_targets)."""
        return self._predict(X)

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        y_pred = self._predict(X, check_input=False)
        if not np.isfinite(y_pred).all():
            return np.nan
        return float(r2_score(y, y_pred, sample_weight=sample_weight))


# -- ONNX: skl2onnx's own MLP converters, given the fitted attributes they read ----------------------------------


class _SklearnMLPView:
    """What skl2onnx's MLP converters read from a scikit-learn MLP, taken from a fitted gpubp estimator (the
    same attributes, as scikit-learn has them: ``coefs_[i]`` (n_in, n_out), the activation's scikit-learn name)."""

    def __init__(self, est: _BaseMLP) -> None:
        check_is_fitted(est)
        self.coefs_, self.intercepts_, self.n_layers_ = est.coefs_, est.intercepts_, est.n_layers_
        self.activation, self.out_activation_ = est.activation, est.out_activation_
        if is_classifier(est):
            self.classes_ = est.classes_
            multilabel = est._labels.multilabel
            self._label_binarizer = _BinarizerType("multilabel-indicator" if multilabel else "multiclass")


class _BinarizerType:
    def __init__(self, y_type: str) -> None:
        self.y_type_ = y_type


def register_onnx_converters() -> None:
    """Let skl2onnx convert :class:`MLPClassifier` and :class:`MLPRegressor` (alone or inside a Pipeline) with
    the converters it has for scikit-learn's MLPs: call once, then ``skl2onnx.to_onnx(pipe, X[:1])``.
    Needs ``pip install 'gpubp[onnx]'``. A regressor with several outputs is refused (skl2onnx's converter
    makes one column)."""
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )
        from skl2onnx.operator_converters.multilayer_perceptron import (
            convert_sklearn_mlp_classifier,
            convert_sklearn_mlp_regressor,
        )
    except ImportError:
        raise RuntimeError("converting with skl2onnx needs it: pip install 'gpubp[onnx]'") from None

    def viewed(convert: Any) -> Any:
        def converter(scope: Any, operator: Any, container: Any) -> None:
            est = operator.raw_operator
            if ACTIVATIONS[_ACTIVATIONS[est.activation]].sklearn is None:
                raise ValueError(f"skl2onnx converts scikit-learn's activations only, and {est.activation!r} is not "
                                 f"one (export est._net with gpubp.export instead)")  # fmt: skip
            if not is_classifier(est) and est.n_outputs_ != 1:
                raise ValueError(f"skl2onnx's MLPRegressor converter makes one output column; this regressor "
                                 f"has {est.n_outputs_} (export est._net with gpubp.export instead)")  # fmt: skip
            operator.raw_operator = _SklearnMLPView(est)
            try:
                convert(scope, operator, container)
            finally:
                operator.raw_operator = est

        return converter

    update_registered_converter(MLPClassifier, "GpubpMLPClassifier", calculate_linear_classifier_output_shapes,
                                viewed(convert_sklearn_mlp_classifier),
                                options={"zipmap": [True, False, "columns"], "output_class_labels": [False, True],
                                         "nocl": [True, False]})  # fmt: skip
    update_registered_converter(MLPRegressor, "GpubpMLPRegressor", calculate_linear_regressor_output_shapes,
                                viewed(convert_sklearn_mlp_regressor))  # fmt: skip
