"""ONNX export: a trained network, or a model with its preprocessing, as one ONNX graph.

The graph is built with the ``onnx`` package's helpers and checked with ``onnx.checker`` (the
``onnx`` extra: ``pip install 'gpubp[onnx]'``). It takes what ``predict`` takes, raw rows ``X``
as float32 of shape (N, n_0) with N free, and computes what ``predict`` computes:

    scaler (float64, as Model does)  →  per layer l: Gemm(A_{l-1}, W_l, b_l, transB=1), then g_l
    classifier: ``probabilities`` (N, classes) and ``label`` (N,), the user's own labels
    regression: ``value`` (N,) (or (N, k) for k targets) in the target's units

The layers run in the network's dtype (float64 networks get a Cast after the input). Operators are
those of the default ONNX domain at :data:`OPSET` (no ``ai.onnx.ml``), so any ONNX runtime runs it.
Feature names are in the model's ``metadata_props`` (``feature_names``, JSON) and in the input's
doc string.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ._io import atomic_write
from .backend import to_numpy
from .kernels import ACTIVATIONS

OPSET = 17  # ai.onnx opset: Softmax over one axis (13+), Squeeze with axes as an input (13+)
IR_VERSION = 8  # the oldest IR that carries opset 17 (ONNX 1.12): ONNX Runtime 1.12 and later load it
# a model with a table (text columns): Equal on strings is opset 19's (ONNX 1.14, IR 9; ONNX Runtime 1.16+)
TABLE_OPSET, TABLE_IR_VERSION = 19, 9
INSTALL_HINT = "ONNX export needs the onnx package: pip install 'gpubp[onnx]'"


def require_onnx() -> Any:
    """The ``onnx`` module, or a RuntimeError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return onnx


class _Graph:
    """Nodes and initialisers collected in order, each name made unique."""

    def __init__(self, onnx: Any) -> None:
        self.onnx, self.h = onnx, onnx.helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        value = np.asarray(value)
        if value.dtype.kind in "USO":  # strings: ONNX stores them as bytes
            tensor = self.h.make_tensor(name, self.onnx.TensorProto.STRING, value.shape,
                                        [str(v).encode("utf-8") for v in value.reshape(-1)])  # fmt: skip
        else:
            tensor = self.onnx.numpy_helper.from_array(value, name)
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(self.h.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out

    def cast(self, x: str, dtype: DTypeLike, out: str | None = None) -> str:
        return self.op("Cast", [x], out, to=self.h.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def _layers(g: _Graph, net: Any, A: str) -> str:
    """A_L from A_0 (a name in the network's dtype): Gemm then the activation, per layer."""
    dtype = net.dtype
    for l in range(1, net.L + 1):
        W = np.asarray(to_numpy(net.weights[l - 1]), dtype)  # (n_l, n_{l-1}), as on the slides
        b = np.asarray(to_numpy(net.biases[l - 1]), dtype)
        Z = g.op("Gemm", [A, g.const(f"W_{l}", W), g.const(f"b_{l}", b)], g.name(f"Z_{l}"), transB=1)
        onnx = ACTIVATIONS[net.output if l == net.L else net.activation].onnx  # (operator, attributes) or None
        A = Z if onnx is None else g.op(onnx[0], [Z], g.name(f"A_{l}"), **onnx[1])
    return A


def _table_inputs(g: _Graph, table: Any) -> tuple[list[Any], str]:
    """One input per raw column, as skl2onnx gives a ColumnTransformer: a number (N, 1) float32 with
    NaN where missing, a category or boolean (N, 1) string; and the name of their encoding (N, width)
    float64, by the table's rules (gpubp.tables), as Model.encode computes it. Refuses (ValueError)
    what the graph cannot compute: dates (no date parsing in ONNX's default domain)."""
    from .tables import MISSING, MISSING_LEVEL

    dates = [r.name for r in table.rules if r.kind == "date"]
    if dates:
        raise ValueError(f"the model reads the date column {dates[0]!r} (days since 1970), which an ONNX graph "
                         "cannot parse from text: train with --drop " + ",".join(dates) + " to export it")  # fmt: skip
    inputs, parts = [], []
    f64 = np.float64
    for rule in table.rules:
        text = rule.kind in ("category", "bool")
        elem = g.onnx.TensorProto.STRING if text else g.onnx.TensorProto.FLOAT
        what = "text (N, 1)" if text else "numbers (N, 1) float32, NaN where missing"
        inputs.append(g.h.make_tensor_value_info(rule.name, elem, ["N", 1], f"column {rule.name!r}: {what}"))
        if rule.kind == "left out":
            continue
        if text:
            flat = g.op("Reshape", [rule.name, g.const("flat", np.array([-1], np.int64))])
            lower = g.op("StringNormalizer", [flat], case_change_action="LOWER", locale="C")
            lower = g.op("Reshape", [lower, g.const("column", np.array([-1, 1], np.int64))])
            gap = g.op("Equal", [lower, g.const("missing", np.array([list(MISSING)], dtype=object))])
            gap = g.cast(g.op("ReduceMax", [g.cast(gap, np.int64), g.const("ax1", np.array([1], np.int64))],
                              keepdims=1), np.bool_)  # fmt: skip
        if rule.kind == "category":
            levels = [lv for lv in rule.levels if lv != MISSING_LEVEL]
            hot = g.op("Equal", [rule.name, g.const("levels", np.array([levels], dtype=object))])
            pieces = [hot] + ([gap] if MISSING_LEVEL in rule.levels else [])
            joined = pieces[0] if len(pieces) == 1 else g.op("Concat", pieces, axis=1)
            parts.append(g.cast(joined, f64))
            continue
        if rule.kind == "bool":
            value = g.cast(g.op("Equal", [lower, g.const("true", np.array(["true"], dtype=object))]), f64)
        else:
            value = g.cast(rule.name, f64)
            gap = g.op("IsNaN", [value])
        parts.append(g.op("Where", [gap, g.const("fill", np.array(rule.fill, f64)), value]))
        if rule.indicator:
            parts.append(g.cast(gap, f64))
    return inputs, parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=1)


def _class_index(g: _Graph, A: str, n_out: int, dtype: np.dtype) -> str:
    """One class index per row (int64, (N,)): ``A > 0.5`` for a single output, else the argmax
    (the first of equal maxima, as NumPy's)."""
    if n_out == 1:
        above = g.cast(g.op("Greater", [A, g.const("half", np.array(0.5, dtype))]), np.int64)
        return g.op("Squeeze", [above, g.const("axis1", np.array([1], np.int64))])
    return g.op("ArgMax", [A], axis=1, keepdims=0)


def _input(g: _Graph, d: int, names: list[str]) -> Any:
    doc = f"raw rows, as given to predict: (N, {d}) float32, columns " + ", ".join(names)
    return g.h.make_tensor_value_info("X", g.onnx.TensorProto.FLOAT, ["N", d], doc)


def _output(g: _Graph, name: str, dtype: DTypeLike, shape: list[Any], doc: str) -> Any:
    dtype = np.dtype(dtype)
    elem = g.onnx.TensorProto.STRING if dtype.kind in "USO" else g.h.np_dtype_to_tensor_dtype(dtype)
    return g.h.make_tensor_value_info(name, elem, shape, doc)


def _finish(g: _Graph, inputs: list[Any], outputs: list[Any], doc: str, meta: dict[str, Any], path: Any,
            opset: int = OPSET) -> Any:  # fmt: skip
    onnx, h = g.onnx, g.h
    from . import __version__

    graph = h.make_graph(g.nodes, "gpubp", inputs, outputs, g.initializers, doc_string=doc)
    ir = IR_VERSION if opset == OPSET else TABLE_IR_VERSION
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="gpubp",
                         producer_version=__version__, ir_version=ir, doc_string=doc)  # fmt: skip
    h.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        data = model.SerializeToString()
        atomic_write(path, lambda f: f.write(data))
    return model


def _net_meta(net: Any) -> dict[str, Any]:
    return {"sizes": list(net.sizes), "activation": net.activation, "output": net.output, "loss": net.loss,
            "dtype": net.dtype.name, "opset": OPSET}  # fmt: skip


def _feature_names(names: Any, d: int) -> list[str]:
    if names is None:
        return [f"x{j}" for j in range(d)]
    names = [str(n) for n in names]
    if len(names) != d:
        raise ValueError(f"feature_names has {len(names)} names, the network takes {d} features")
    return names


def network_to_onnx(net: Any, path: str | os.PathLike[str] | None = None, feature_names: Any = None) -> Any:
    """The bare network as ONNX (written to ``path`` when given; the ``onnx.ModelProto`` returned).

    Input ``X`` (N, n_0) float32, already scaled as the network was trained; outputs ``outputs``
    = A_L (N, n_L) in the network's dtype and, for classifiers, ``label`` as ``MLP.predict`` gives it
    (int64: cross_entropy the argmax (N,); bce ``A_L > 0.5``, (N,) for one output, (N, n_L) otherwise)."""
    onnx = require_onnx()
    g = _Graph(onnx)
    d, n_out, dtype = net.sizes[0], net.sizes[-1], net.dtype
    names = _feature_names(feature_names, d)
    A0 = "X" if dtype == np.float32 else g.cast("X", dtype, "A_0")
    A = _layers(g, net, A0)
    A_L = g.op("Identity", [A], "outputs")
    outputs = [_output(g, "outputs", dtype, ["N", n_out], "A_L, the network's outputs")]
    if net.loss == "cross_entropy":
        g.op("ArgMax", [A_L], "label", axis=1, keepdims=0)
        outputs.append(_output(g, "label", np.int64, ["N"], "argmax of the outputs"))
    elif net.loss == "bce":
        above = g.op("Greater", [A_L, g.const("half", np.array(0.5, dtype))])
        if n_out == 1:
            g.op("Squeeze", [g.cast(above, np.int64), g.const("axis1", np.array([1], np.int64))], "label")
        else:
            g.cast(above, np.int64, "label")
        outputs.append(_output(g, "label", np.int64, ["N"] if n_out == 1 else ["N", n_out], "outputs > 0.5"))
    doc = f"gpubp network {net.sizes}, {net.activation} hidden, {net.output} output, loss {net.loss}"
    meta = {**_net_meta(net), "feature_names": names, "preprocessing": "none: X is scaled as in training"}
    return _finish(g, [_input(g, d, names)], outputs, doc, meta, path)


def model_to_onnx(model: Any, path: str | os.PathLike[str] | None = None) -> Any:
    """A :class:`~gpubp.model.Model` (network + scaler + labels or target scaling) as ONNX.

    Input ``X`` (N, n_0) float32 raw rows; outputs ``label`` (N,) (the model's own class labels:
    int64, float64, bool or string tensors) and ``probabilities`` (N, classes) in the network's dtype
    for a classifier, ``value`` (N,) or (N, k) for a regression, as ``Model.predict`` and
    ``Model.predict_proba``. Written to ``path`` when given; the ``onnx.ModelProto`` is returned."""
    onnx = require_onnx()
    net = model.net
    g = _Graph(onnx)
    d, n_out, dtype = net.sizes[0], net.sizes[-1], net.dtype
    table = model.table
    if table is not None and not table.identity:
        inputs, A0 = _table_inputs(g, table)
        names = table.features
        opset = TABLE_OPSET
    else:
        names = _feature_names(model.feature_names, d)
        inputs, A0, opset = [_input(g, d, names)], g.cast("X", np.float64), OPSET
    scaler = model.scaler
    # the scaler in float64, then the network's dtype: Model.outputs' arithmetic, step by step
    if scaler.kind != "none":
        shifted = g.op("Sub", [A0, g.const("scaler_shift", np.asarray(scaler.shift, np.float64))])
        A0 = g.op("Div", [shifted, g.const("scaler_scale", np.asarray(scaler.scale, np.float64))])
    if dtype != np.float64:
        A0 = g.cast(A0, dtype, "A_0")
    A_L = _layers(g, net, A0)
    meta = {**_net_meta(net), "feature_names": names, "scaler": scaler.kind}
    if table is not None and not table.identity:
        meta["columns"] = table.inputs  # the graph's inputs, one per raw column
    if model.labels is not None:
        classes = np.asarray(model.labels.classes)
        if n_out == 1:  # one logistic unit: [1 − p, p], as Labels.proba
            one_minus = g.op("Sub", [g.const("one", np.array(1.0, dtype)), A_L])
            g.op("Concat", [one_minus, A_L], "probabilities", axis=1)
        else:
            g.op("Identity", [A_L], "probabilities")
        idx = _class_index(g, A_L, n_out, dtype) if len(classes) > 1 else g.op("ArgMax", [A_L], axis=1, keepdims=0)
        stored = classes.astype(np.int64) if classes.dtype.kind in "iu" else classes
        g.op("Gather", [g.const("classes", stored), idx], "label", axis=0)
        k = max(n_out, 2)
        outputs = [_output(g, "label", stored.dtype, ["N"], "the predicted class, as in the data"),
                   _output(g, "probabilities", dtype, ["N", k], "one column per class, in the order of "
                           "metadata 'classes'")]  # fmt: skip
        meta["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
        meta["task"] = "classify"
        what = f"{len(classes)} classes"
    else:
        V = A_L
        if model.target is not None:  # back to the target's units, in float64 as Model._unscale
            V = g.op(
                "Mul", [g.cast(V, np.float64), g.const("target_scale", np.asarray(model.target.scale, np.float64))]
            )
            V = g.op("Add", [V, g.const("target_shift", np.asarray(model.target.shift, np.float64))])
            V = g.cast(V, dtype)
        if n_out == 1:
            g.op("Squeeze", [V, g.const("axis1", np.array([1], np.int64))], "value")
        else:
            g.op("Identity", [V], "value")
        outputs = [_output(g, "value", dtype, ["N"] if n_out == 1 else ["N", n_out], "the prediction, in the "
                           "target's units")]  # fmt: skip
        meta["task"] = "regress"
        what = "regression"
    doc = (f"gpubp model {net.sizes}, {net.activation} hidden, {net.output} output, {scaler.kind} scaling, "
           f"{what}: raw rows in, predict's answer out")  # fmt: skip
    return _finish(g, inputs, outputs, doc, meta, path, opset)
