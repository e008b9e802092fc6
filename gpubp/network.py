"""The network: a stack of fully connected layers and the backprop of the lecture, batched.

Rows of every matrix are examples. With A_0 = X and l = 1..L::

    Z_l = A_{l-1} W_lᵀ + b_l          A_l = g_l(Z_l)                    (forward)
    Δ_L = ∇_{A_L} L ⊙ g'_L(Z_L)       (= (A_L − Y)/B for the matched output/loss pairs; for a
                                       softmax output with mse the product with softmax's Jacobian,
                                       A_L ⊙ (∇ − Σ_j ∇_j a_j) row by row, as no elementwise g' exists)
    ∂L/∂W_l = Δ_lᵀ A_{l-1}            ∂L/∂b_l = Σ_rows Δ_l
    Δ_{l-1} = (Δ_l W_l) ⊙ g'_{l-1}(Z_{l-1})                               (backward)

W_l has shape (n_l, n_{l-1}) and b_l shape (n_l,), as on the slides; ``weights[l-1]`` is W_l.
L is the mean loss over the B examples of the batch. The same code runs on NumPy and CuPy.
:mod:`gpubp.reference` writes the same equations with plain lists Z, A and delta, to read beside the slides;
here no Z is kept (each g' is taken from A_l), the bias add is fused into the activation and every buffer is
allocated once per batch size.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from . import kernels as K
from .activations import HIDDEN, OUTPUTS, derivative_runner, forward_runner
from .backend import Device, get_device, to_numpy
from .initializers import INITS, default_init, init_weight
from .labels import correct, decide
from .losses import LOSSES
from .metrics import r2_of_sums
from .params import ParamStore
from .rows import Feeder, chunk_rows, chunks, is_row_source, materialise
from .settings import EPOCHS, TrainSettings
from .validation import check_bool, check_choice, check_int, check_sample_weight, check_X, check_Y, label_width

DTYPES = ("float32", "float64")
_INFER_ROWS = 8192  # at most this many rows per chunk when predicting on the CPU, so memory stays bounded
# on a GPU a chunk's workspace may take this much of the device (at most 1/8 of its free memory), up to
# _GPU_INFER_ROWS rows: a 4 MiB host budget gave ~314 rows for a 2304-wide network, a launch-bound pass
_GPU_INFER_BYTES = 1 << 30
_GPU_INFER_ROWS = 1 << 16
_WORKSPACES = 4  # workspaces kept (by batch size, the most recently used): varying sizes must not grow memory


class Workspace:
    """Preallocated buffers for one batch size B, so that a training step allocates nothing.

    ``A[l]`` (B, n_l) for l = 0..L (A[0] is the input batch), ``delta[l]`` (B, n_l) for l = 1..L,
    ``Y`` (B, n_L) targets, ``terms`` (B, n_L) loss terms, ``ones`` (1, B) for Σ_rows as a matmul.
    ``w`` is None (the plain batch mean) or (B, 1) row weights B·w_i/Σw, set by the caller per batch.
    """

    def __init__(self, device: Device, sizes: list[int], batch: int, dtype: np.dtype) -> None:
        xp = device.xp
        with device.use():
            # zeros, not empty: made once per batch size, and a buffer never holds leftover NaN that a
            # BLAS call given it as out= could raise a spurious "invalid value" warning over
            self.A = [xp.zeros((batch, n), dtype) for n in sizes]
            self.delta = [None] + [xp.zeros((batch, n), dtype) for n in sizes[1:]]
            self.Y = xp.zeros((batch, sizes[-1]), dtype)
            self.terms = xp.zeros((batch, sizes[-1]), dtype)
            self.ones = xp.ones((1, batch), dtype)  # a row: 1ᵀΔ is a plain 2-D matmul on both devices
        self.batch = batch
        self.inv_b = dtype.type(1.0 / max(batch, 1))  # a rank may get an empty share of a batch
        self.w: Any = None  # row weights B·w_i/Σw (times the 1/B in Δ_L: w_i/Σw), or None for the plain 1/B


class MLP:
    """A feed-forward network trained by hand-written batched backprop.

    Parameters
    ----------
    sizes : [n_0, n_1, ..., n_L], the input width, the hidden widths and the output width.
    activation : hidden activation, a name of ``gpubp.activations.HIDDEN`` (``sigmoid``, ``tanh``, ``relu``,
        ``identity``, ...; the registry is ``gpubp.kernels.ACTIVATIONS``).
    output : output activation, a name of ``gpubp.activations.OUTPUTS`` (the hidden ones and ``softmax``), or None
        for the loss's match: softmax for cross_entropy, sigmoid for bce, identity for mse.
    loss : ``cross_entropy`` (needs softmax), ``bce`` (needs sigmoid) or ``mse`` (any output).
    init : ``xavier``, ``he`` or ``normal``; None picks the activation's own (He for relu, Xavier otherwise).
    device : ``auto``, ``cpu``, ``gpu`` or ``gpu:N``; ``auto`` (and None) means ``GPUBP_DEVICE`` when set.
    dtype : ``float32`` (default) or ``float64``. Inputs are converted to it; nothing is upcast.
    seed : seeds the initial weights and the shuffling; same seed, device and dtype → same run.

    One class of ~440 lines on purpose: it is the object of the lecture, and a student finds its
    forward pass, δ recursion, inference and one-call ``fit`` in one place; the training loop, the
    files and the other ranks live elsewhere (gpubp.training, gpubp.checkpoint, gpubp.parallel).
    """

    def __init__(self, sizes: list[int], activation: str = "sigmoid", output: str | None = None,
                 loss: str = "cross_entropy", init: str | None = None, device: str | Device | None = "auto",
                 dtype: str = "float32", seed: int | None = None) -> None:  # fmt: skip
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a list of layer widths like [784, 128, 10], got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output width, got {list(sizes)}")
        self.sizes = [check_int(f"sizes[{i}]", n) for i, n in enumerate(sizes)]
        self.activation = check_choice("activation", activation, HIDDEN)
        self.loss = check_choice("loss", loss, tuple(LOSSES))
        self.output = LOSSES[loss].matched_output if output is None else check_choice("output", output, OUTPUTS)
        allowed = LOSSES[loss].allowed_outputs
        if allowed is not None and self.output not in allowed:
            raise ValueError(
                f"loss {loss!r} needs a {allowed[0]} output, got output={self.output!r} "
                f"(use loss='mse' for other outputs)"
            )
        if self.output == "softmax" and self.sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 units; use a sigmoid output with loss='bce'")
        self.init = default_init(self.activation) if init is None else check_choice("init", init, INITS)
        self.dtype = _check_dtype(dtype)
        if seed is not None:
            seed = check_int("seed", seed, minimum=0)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.device = get_device(device)

        weights = [init_weight(self.rng, self.init, n_out, n_in)
                   for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]  # fmt: skip
        self._set_parameters(weights, [np.zeros(n) for n in self.sizes[1:]])
        self.history: dict[str, list[Any]] | None = None

    # -- set-up -------------------------------------------------------------------------------

    def set_parameters(self, weights: list[Any], biases: list[Any]) -> None:
        """Replace W_1..W_L (shapes (n_l, n_{l-1})) and b_1..b_L (shapes (n_l,)), e.g. with the
        numbers of a worked example. Values are copied to the network's device and dtype."""
        if len(weights) != self.L or len(biases) != self.L:
            raise ValueError(f"expected {self.L} weight matrices and {self.L} bias vectors, "
                             f"got {len(weights)} and {len(biases)}")  # fmt: skip
        for l, (W, b) in enumerate(zip(weights, biases), start=1):
            want_W, want_b = (self.sizes[l], self.sizes[l - 1]), (self.sizes[l],)
            if np.shape(W) != want_W:
                raise ValueError(f"W_{l} must have shape {want_W}, got {np.shape(W)}")
            if np.shape(b) != want_b:
                raise ValueError(f"b_{l} must have shape {want_b}, got {np.shape(b)}")
            for name, value in ((f"W_{l}", W), (f"b_{l}", b)):
                if not np.isfinite(to_numpy(value, np.float64)).all():
                    raise ValueError(f"{name} contains NaN or infinite values")
        self._set_parameters(list(weights), list(biases))

    def _set_parameters(self, weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
        """Copy W_l and b_l into the network's ParamStore, which is made anew only for a new device:
        optimisers and trainers built before keep updating the live weights."""
        store = getattr(self, "params", None)
        if store is None or store.device is not self.device:
            self.params = store = ParamStore(self.device, self.sizes, self.dtype)
            self._bind()
        store.set(weights, biases)

    def _bind(self) -> None:
        """Pick the kernels for this device and drop buffers made for another."""
        dev, L = self.device, self.L
        acts = [self.activation] * (L - 1) + [self.output]  # g_1 .. g_L
        # index l is g_l (index 0 unused); g'_l is None where the δ recursion skips it (identity, a matched output)
        self._g: list[Any] = [None] + [forward_runner(dev, a, self.dtype) for a in acts]
        self._g_prime: list[Any] = [None] + [derivative_runner(dev, a, self.dtype) for a in acts]
        loss = LOSSES[self.loss]
        self._matched = self.output == loss.matched_output
        self._loss_reduce = dev.loss_sum(loss.terms, self.dtype)  # a GPU's one launch for Σ terms (None: the CPU)
        # the terms kernel runs only where there is no such launch (a GPU would compile it for nothing)
        self._loss_terms = dev.kernel(loss.terms) if self._loss_reduce is None else None
        self._delta_output = dev.kernel(K.delta_output, self.dtype)
        # C = A·B into out: CuPy's matmul(out=) goes through its Python gufunc wrapper on every call, dot(out=)
        # reaches the same cuBLAS GEMM without it; NumPy's matmul is its fastest
        self._mm = self.xp.dot if dev.is_gpu else self.xp.matmul
        self._tiny = self.dtype.type(np.finfo(self.dtype).tiny)
        self._workspaces: dict[int, Workspace] = {}
        self._db_rows = [db.reshape(1, -1) for db in self.db]  # (1, n_l) views of db
        if dev.is_gpu:
            self.warm_up()

    def warm_up(self, batch: int = 2) -> None:
        """One step on ``batch`` rows of zeros on the GPU (the gradient buffer is scratch; θ is not touched):
        cuBLAS's handle, CuPy's gather and copy kernels are made now, when the network binds, not in epoch 1's
        time. CuPy compiles a kernel per shape class (a batch of 1 drops an axis that a bias broadcasts over):
        two rows are a batch's class; a Trainer warms up again at its own batch size."""
        dev, xp = self.device, self.xp
        with dev.use():
            ws = Workspace(dev, self.sizes, batch, self.dtype)
            ws.A[0].fill(0)
            ws.Y.fill(0)
            dev.take_rows(ws.A[0], xp.zeros(batch, np.int64), xp.empty_like(ws.A[0]))  # the batch gather
            self.backprop(ws, xp.zeros((), np.float64))

    @property
    def weights(self) -> list[Any]:
        """[W_1, ..., W_L]: views into the flat θ of ``params`` (assign into them, never rebind)."""
        return self.params.weights

    @property
    def biases(self) -> list[Any]:
        """[b_1, ..., b_L]: views into θ."""
        return self.params.biases

    @property
    def dW(self) -> list[Any]:
        """[∂L/∂W_1, ..., ∂L/∂W_L] of the last backprop: views into the flat gradient."""
        return self.params.dW

    @property
    def db(self) -> list[Any]:
        """[∂L/∂b_1, ..., ∂L/∂b_L] of the last backprop: views into the flat gradient."""
        return self.params.db

    @property
    def L(self) -> int:
        """Number of layers with weights."""
        return len(self.sizes) - 1

    @property
    def xp(self) -> Any:
        return self.device.xp

    @property
    def is_classifier(self) -> bool:
        return self.loss in ("cross_entropy", "bce")

    def workspace(self, batch: int) -> Workspace:
        """The buffers for batches of ``batch`` rows, kept for the _WORKSPACES sizes used last (a training
        run needs two: its batch and the last one; predict and partial_fit on ever other sizes evict)."""
        spaces = self._workspaces
        ws = spaces.pop(batch, None)
        if ws is None:
            ws = Workspace(self.device, self.sizes, batch, self.dtype)
            while len(spaces) >= _WORKSPACES:
                del spaces[next(iter(spaces))]  # the least recently used; its memory goes back to the pool
        spaces[batch] = ws  # the most recently used last
        return ws

    def _infer_rows(self, row_source: bool) -> int:
        """Rows per chunk of inference: by a host budget on the CPU (the workspace and a row source's
        staging), by the device's free memory on a GPU (where a row source's rows are staged on the host)."""
        width, item = sum(self.sizes), self.dtype.itemsize
        if not self.device.is_gpu:
            return min(_INFER_ROWS, chunk_rows(width + self.sizes[0], item))  # A_l + staging
        budget = min(_GPU_INFER_BYTES, (self.device.memory_free() or 0) // 8)
        rows = min(_GPU_INFER_ROWS, max(1, budget // (width * item)))
        if row_source:  # two pinned host buffers of rows × n_0
            rows = min(rows, 16 * chunk_rows(self.sizes[0], item))
        return rows

    def config(self) -> dict[str, Any]:
        return {"sizes": self.sizes, "activation": self.activation, "output": self.output,
                "loss": self.loss, "init": self.init, "dtype": str(self.dtype), "seed": self.seed}  # fmt: skip

    def __repr__(self) -> str:
        return (f"MLP({self.sizes}, activation={self.activation!r}, output={self.output!r}, "
                f"loss={self.loss!r}, device={self.device.name!r}, dtype={str(self.dtype)!r})")  # fmt: skip

    # -- the lecture's backprop ----------------------------------------------------------------

    def forward_into(self, A: list[Any]) -> None:
        """Forward pass in place: A[0] holds the batch; fills A[1..L]."""
        mm, W, b = self._mm, self.params.weights, self.params.biases
        for l in range(1, self.L + 1):
            mm(A[l - 1], W[l - 1].T, out=A[l])  # Z_l = A_{l-1} W_lᵀ
            self._g[l](b[l - 1], A[l])  # A_l = g_l(Z_l + b_l), bias fused in

    def _output_delta(self, ws: Workspace, inv_b: Any = None) -> None:
        """Δ_L = ∇_{A_L} L ⊙ g'_L(Z_L) (a Jacobian-vector product for softmax with mse), with the 1/B of
        the batch mean folded in (B is ws.batch unless ``inv_b`` says otherwise: a rank's share of a global
        batch takes 1/B_global)."""
        L = self.L
        self._delta_output(ws.A[L], ws.Y, ws.inv_b if inv_b is None else inv_b, ws.delta[L])  # (A_L − Y) / B
        if ws.w is not None:
            ws.delta[L] *= ws.w  # a weighted mean: row i scaled by w_i/Σw instead of 1/B
        if not self._matched and self._g_prime[L] is not None:
            self._g_prime[L](ws.A[L], ws.delta[L])  # ⊙ g'_L(Z_L), or J_softmaxᵀ(·) for softmax

    def _backward(self, ws: Workspace) -> None:
        """The δ recursion: from Δ_L in ws.delta[L], fill self.dW and self.db."""
        mm, A, delta, W, dW = self._mm, ws.A, ws.delta, self.params.weights, self.params.dW
        for l in range(self.L, 0, -1):
            mm(delta[l].T, A[l - 1], out=dW[l - 1])  # ∂L/∂W_l = Δ_lᵀ A_{l-1}
            mm(ws.ones, delta[l], out=self._db_rows[l - 1])  # ∂L/∂b_l = Σ_rows Δ_l
            if l > 1:
                mm(delta[l], W[l - 1], out=delta[l - 1])  # Δ_l W_l
                if self._g_prime[l - 1] is not None:
                    self._g_prime[l - 1](A[l - 1], delta[l - 1])  # ⊙ g'(Z_{l-1})

    def loss_sum(self, A_L: Any, Y: Any, terms: Any, w: Any = None) -> Any:
        """Σ over the batch of the per-example loss (each times w_i when row weights w are given),
        left on the device (no synchronisation)."""
        if self._loss_reduce is not None:
            return self._loss_reduce(A_L, Y, w)
        assert self._loss_terms is not None  # bound whenever _loss_reduce is not (mypy)
        self._loss_terms(A_L, Y, self._tiny, terms)
        if w is not None:
            terms *= w
        return terms.sum()

    def backprop(self, ws: Workspace, loss_acc: Any, inv_b: Any = None) -> None:
        """One minibatch's gradient: forward, loss (added to loss_acc), Δ_L, the δ recursion.
        ws.A[0] and ws.Y hold the batch; the gradient lands in self.dW, self.db."""
        self.forward_into(ws.A)
        loss_acc += self.loss_sum(ws.A[self.L], ws.Y, ws.terms, ws.w)
        self._output_delta(ws, inv_b)
        self._backward(ws)

    # -- public API ----------------------------------------------------------------------------

    def checked_X(self, X: Any) -> Any:
        """X as a (samples, n_0) array of the network's dtype on its device (or a row source)."""
        return check_X(self.device, X, self.sizes[0], self.dtype)

    def checked_Y(self, Y: Any, n: int, host: bool = False) -> Any:
        """Y as (n, n_L) targets of the network's dtype (class labels (n,) for cross_entropy kept)."""
        return check_Y(self.device, Y, n, self.sizes[-1], self.loss, self.dtype, host=host)

    def _chunks(self, X: Any, Y: Any = None) -> Any:
        """(rows, workspace, A_0, Y) per chunk of checked X (and Y): device arrays are sliced (the
        input is only read: no copy), a row source is fed into the workspace's A[0] (and Y)."""
        step = self._infer_rows(is_row_source(X) or is_row_source(Y))
        feed_X = Feeder(self.device, X, self.dtype, tag="infer_X") if is_row_source(X) else None
        feed_Y = None  # targets next to a row source stay on the host too (labels: one-hot per chunk)
        if Y is not None and (is_row_source(Y) or feed_X is not None):
            feed_Y = Feeder(self.device, Y, self.dtype, label_width(Y, self.loss, self.sizes[-1]), tag="infer_Y")
        for part in chunks(X.shape[0], step):
            ws = self.workspace(part.stop - part.start)
            A0 = X[part] if feed_X is None else ws.A[0]
            if feed_X is not None:
                feed_X(part, ws.A[0])
            Yc = None if Y is None else Y[part] if feed_Y is None else ws.Y
            if feed_Y is not None:
                feed_Y(part, ws.Y)
            yield part, ws, A0, Yc

    def _predict_output(self, X: Any) -> Any:
        """A_L for checked X, in chunks of rows through cached workspaces, assembled on the device."""
        out = self.xp.empty((X.shape[0], self.sizes[-1]), self.dtype)
        for part, ws, A0, _ in self._chunks(X):
            A = [A0, *ws.A[1:]]
            self.forward_into(A)
            out[part] = A[self.L]
        return out

    def forward(self, X: Any) -> Any:
        """A_L = the network's output for X (samples, n_0): shape (samples, n_L), on its device."""
        with self.device.use():
            return self._predict_output(self.checked_X(X))

    def loss_and_gradients(self, X: Any, Y: Any, sample_weight: Any = None) -> tuple[float, list[tuple[Any, Any]]]:
        """(mean loss over the batch, [(∂L/∂W_1, ∂L/∂b_1), ..., (∂L/∂W_L, ∂L/∂b_L)]).

        Y is (batch, n_L); for cross_entropy integer labels of shape (batch,) work too. With
        ``sample_weight`` (batch,) the mean is weighted: L = Σ w_i ℓ_i / Σ w. The gradients are fresh
        arrays on the network's device; weight decay is not included.
        """
        with self.device.use():
            _, loss = self._one_pass(X, Y, sample_weight)
            return loss, [(dW.copy(), db.copy()) for dW, db in zip(self.dW, self.db)]

    def _one_pass(self, X: Any, Y: Any, sample_weight: Any = None) -> tuple[Workspace, float]:
        """Check (X, Y), run forward, loss and the δ recursion on a fresh workspace."""
        X = self.checked_X(materialise(X))
        Y = self.checked_Y(materialise(Y), X.shape[0])
        ws = Workspace(self.device, self.sizes, X.shape[0], self.dtype)
        ws.A[0][...] = X
        ws.Y[...] = Y
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, X.shape[0]).reshape(-1, 1)
            ws.w = self.device.asarray(w * (X.shape[0] / w.sum()), dtype=self.dtype)
        self.forward_into(ws.A)
        loss = self.device.item(self.loss_sum(ws.A[self.L], ws.Y, ws.terms, ws.w)) / X.shape[0]
        self._output_delta(ws)
        self._backward(ws)
        return ws, loss

    def trace(self, X: Any, Y: Any) -> dict[str, Any]:
        """One forward and backward pass with every intermediate, as NumPy arrays, for checking
        the lecture by hand: ``A`` = [A_0, ..., A_L], ``delta`` = [None, Δ_1, ..., Δ_L] (Δ_l has the
        shape of A_l; the 1/B of the mean is in it), ``dW``/``db`` = ∂L/∂W_l, ∂L/∂b_l (index l-1),
        and ``loss``. The weights are not changed."""
        with self.device.use():
            ws, loss = self._one_pass(X, Y)

            def host(a: Any) -> np.ndarray:  # a copy: on the CPU to_host is the live buffer itself
                return np.array(self.device.to_host(a))

            return {
                "loss": loss,
                "A": [host(A) for A in ws.A],
                "delta": [None] + [host(d) for d in ws.delta[1:]],
                "dW": [host(dW) for dW in self.dW],
                "db": [host(db) for db in self.db],
            }

    def fit(self, X: Any, Y: Any, epochs: int = EPOCHS, *, validation_data: tuple[Any, Any] | None = None,
            sample_weight: Any = None, stream: bool | None = None, callback: Any = None, on_batch: Any = None,
            distributed: bool = False, settings: TrainSettings | None = None,
            **options: Any) -> dict[str, list[Any]]:  # fmt: skip
        """Train ``epochs`` epochs with minibatch SGD (or Adam); returns the history, also kept as ``net.history``.

        Each call is a new run from the weights the network has now: a second ``fit`` continues from the
        first one's weights (and its RNG, so plain SGD's ``fit(X, Y, 3)`` then ``fit(X, Y, 2)`` is
        ``fit(X, Y, 5)``), with a fresh optimiser state (momentum, Adam's moments), a fresh early-stopping
        state and a new history of its own epochs. To go on exactly, moments included, keep a
        :class:`~gpubp.training.Trainer` and call its ``run``; to restart, make a new ``MLP``.

        The settings are a :class:`~gpubp.settings.TrainSettings` (its defaults: plain SGD, ``lr``
        0.1, ``batch_size`` 32), with any of its fields given as keywords changed:
        ``net.fit(X, Y, 20, lr=0.05, momentum=0.9)``. Each epoch visits the rows in order, after a
        seeded shuffle unless ``shuffle=False``; the last partial batch is kept and averaged over its
        own size. ``weight_decay`` λ adds λW to the gradient of the weights (not the biases). With
        ``patience`` (needs ``validation_data``), training stops after that many epochs without a
        lower validation loss, and the best weights are restored. ``class_weight="balanced"`` (or
        ``{class index: weight}``) weighs each row by its class, scikit-learn's n / (classes × rows of
        the class), in the training and the validation loss alike. ``callback(net, metrics)`` runs
        after each epoch and stops training by returning True; ``on_batch(batch, n_batches)`` runs
        after each batch and stops at the end of that batch by returning True. A callback object with
        an ``attach(trainer)`` method (gpubp.monitor's TensorBoard and GradientStats) is handed the
        trainer before the first batch.

        History keys: ``epoch``, ``train_loss``, ``seconds``, ``samples_per_s`` and, with
        validation data, ``val_loss`` and ``val_accuracy`` (``val_r2`` for mse).

        ``sample_weight`` (n,) ≥ 0 weights the rows (each batch's loss and gradient a weighted mean);
        ``X``/``Y`` may be row sources (a memory-mapped array, :class:`gpubp.data.Rows`) streamed a
        batch at a time; ``stream`` as :class:`~gpubp.training.Trainer` takes it (None decides).

        ``distributed=True`` trains across the MPI world this process was launched in
        (``mpiexec -n R python train.py``, needs ``pip install 'gpubp[mpi]'``): every rank passes the
        same data and settings, each global batch is split across the ranks, and the result equals
        one process's up to rounding. ``callback`` and ``on_batch`` then run on rank 0 only. With one
        process it changes nothing.
        """
        # the training loop sits above the network: imported here, when asked for, never with this module
        from .training import make_trainer

        settings = TrainSettings.of(settings, **options)
        comm = None
        if check_bool("distributed", distributed):
            from .parallel import communicator

            comm = communicator(self)
        trainer = make_trainer(self, X, Y, comm, settings, validation_data=validation_data,
                               sample_weight=sample_weight, stream=stream)  # fmt: skip
        return trainer.run(epochs, callback=callback, on_batch=on_batch)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities (softmax rows for cross_entropy, sigmoid outputs for bce)."""
        if not self.is_classifier:
            raise ValueError("predict_proba needs a classifier (loss 'cross_entropy' or 'bce'); use forward()")
        return self.forward(X)

    def predict(self, X: Any) -> Any:
        """Class labels (cross_entropy: argmax; bce: outputs > 0.5) or the outputs (mse)."""
        with self.device.use():  # the decision runs on the network's device too
            return decide(self.forward(X), self.loss)

    def evaluate(self, X: Any, Y: Any) -> dict[str, float]:
        """Mean loss and accuracy (classifiers) or R² (mse) on (X, Y), with one host read.

        Runs in chunks of rows, so memory-mapped inputs are never read whole."""
        with self.device.use():
            X = self.checked_X(X)
            return self.evaluate_checked(X, self.checked_Y(Y, X.shape[0], host=is_row_source(X)))

    def evaluate_checked(self, X: Any, Y: Any, w: np.ndarray | None = None) -> dict[str, float]:
        """evaluate() on checked X and Y: sums accumulated over chunks on the device, read once.
        ``w`` (n,) host row weights (the training's class weights): the loss is Σ w_i ℓ_i / Σ w."""
        xp, n, n_out = self.xp, X.shape[0], self.sizes[-1]
        sums = xp.zeros(1 + (1 if self.is_classifier else 3 * n_out), np.float64)  # loss, then hits or R² sums
        shift = None  # R²: Σ(y − K) and Σ(y − K)² about the first target row K, for accuracy
        for part, ws, A0, Yc in self._chunks(X, Y):
            A = [A0, *ws.A[1:]]
            self.forward_into(A)
            A_L = A[self.L]
            wc = None if w is None else self.device.asarray(w[part].reshape(-1, 1), dtype=self.dtype)
            sums[0] += self.loss_sum(A_L, Yc, ws.terms, wc)
            if self.is_classifier:
                sums[1] += correct(A_L, Yc, self.loss).sum()
            else:
                shift = Yc[0].astype(np.float64) if shift is None else shift
                D = Yc.astype(np.float64) - shift
                sums[1 : 1 + n_out] += ((Yc - A_L).astype(np.float64) ** 2).sum(axis=0)
                sums[1 + n_out : 1 + 2 * n_out] += D.sum(axis=0)
                sums[1 + 2 * n_out :] += (D * D).sum(axis=0)
        values = self.device.to_host(sums)
        loss = float(values[0]) / (n if w is None else float(np.sum(w)))
        if self.is_classifier:
            return {"loss": loss, "accuracy": float(values[1]) / n}
        res, s1, s2 = values[1 : 1 + n_out], values[1 + n_out : 1 + 2 * n_out], values[1 + 2 * n_out :]
        tot = np.maximum(s2 - s1 * s1 / n, 0.0)
        return {"loss": loss, "r2": r2_of_sums(res, tot)}

    def score(self, X: Any, y: Any) -> float:
        """Accuracy for classifiers (labels or one-hot/0-1 targets), R² for mse."""
        result = self.evaluate(X, y)
        return result["accuracy"] if self.is_classifier else result["r2"]

    def to(self, device: str | Device) -> MLP:
        """Move the network to ``device`` (in place); returns self. On the same device nothing
        changes; on another the parameters are copied into a new store there, so trainers and
        optimisers must be made after the move (a Trainer made before refuses to run)."""
        target = get_device(device)
        if target is not self.device:
            weights = [self.device.to_host(W) for W in self.weights]
            biases = [self.device.to_host(b) for b in self.biases]
            self.device = target
            self._set_parameters(weights, biases)
        return self

    def to_onnx(self, path: str | None = None, feature_names: Any = None) -> Any:
        """The bare network as an ONNX graph (written to ``path`` when given; the ``onnx.ModelProto``
        returned): X (N, n_0) float32, already scaled, in; ``outputs`` A_L and, for classifiers,
        ``label`` as :meth:`predict` out. Needs ``pip install 'gpubp[onnx]'``; see gpubp.export."""
        from .export import network_to_onnx  # a tool above the network, reached only when asked

        return network_to_onnx(self, path, feature_names)

    def save(self, path: str) -> None:
        """Write weights, config and format version to an ``.npz``, atomically."""
        from .checkpoint import save_model  # files only when asked: importing the network opens none

        save_model(self, path)

    # -- pickling: the config and host arrays; the device by name ------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config(), "device": self.device.name,
                "weights": [to_numpy(W) for W in self.weights], "biases": [to_numpy(b) for b in self.biases],
                "rng": self.rng, "history": self.history}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild the kernels and buffers on the device of the same name, or on the CPU (with one
        warning) when that device is not usable here."""
        try:
            device = get_device(state["device"])
        except (RuntimeError, ValueError) as exc:
            warnings.warn(f"this network was saved on {state['device']}, which is not usable here ({exc}); "
                          f"it runs on the CPU", UserWarning, stacklevel=2)  # fmt: skip
            device = get_device("cpu")
        MLP.__init__(self, **state["config"], device=device)
        self._set_parameters(state["weights"], state["biases"])
        self.rng = state["rng"]
        self.history = state["history"]


def load(path: str | os.PathLike[str], device: str | None = "auto") -> MLP:
    """The network saved in ``path`` (by ``net.save`` or ``gpubp train``) on ``device``, without
    any preprocessing the file holds: ``gpubp.load`` returns a :class:`gpubp.model.Model` for those."""
    from .checkpoint import read_file

    config, params, meta, _ = read_file(path)
    net = MLP(config["sizes"], config["activation"], config["output"], config["loss"],
              config["init"], device=device, dtype=config["dtype"], seed=config.get("seed"))  # fmt: skip
    L = net.L
    net._set_parameters([params[f"W_{l}"] for l in range(1, L + 1)],
                        [params[f"b_{l}"] for l in range(1, L + 1)])  # fmt: skip
    net.history = meta.get("history")
    return net


def _check_dtype(value: Any) -> np.dtype:
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in DTYPES:
        raise ValueError(f"unknown dtype {value!r}: expected one of {', '.join(DTYPES)}")
    return dtype
