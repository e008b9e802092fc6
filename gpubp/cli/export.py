"""``gpubp export``: a model file as a graph other runtimes serve (ONNX)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..model import Model, load
from ._common import UsageError, check_output


def add_parser(sub: Any) -> None:
    e = sub.add_parser("export", help="write a model as ONNX (network and preprocessing in one graph)",
                       description="Write a model file as an ONNX graph that takes the raw rows 'gpubp predict' "
                                   "takes and gives its predictions (needs pip install 'gpubp[onnx]').")  # fmt: skip
    e.add_argument("model", help="a model file from 'gpubp train' (or net.save: the bare network)")
    e.add_argument("--onnx", required=True, metavar="PATH", help="the ONNX file to write")
    e.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    check_output("--onnx", args.onnx)
    if not os.path.isfile(args.model):
        raise UsageError(f"{args.model}: no such model file")
    model = load(args.model, device="cpu")  # the weights are only read: no GPU needed
    proto = model.to_onnx(args.onnx)
    what = "network with its preprocessing" if isinstance(model, Model) else "bare network (no scaler)"
    graph = proto.graph
    ins = ", ".join(_shape(v) for v in graph.input)
    outs = ", ".join(_shape(v) for v in graph.output)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))  # 19 for a table's graph
    print(f"wrote {args.onnx}: {what}, ONNX opset {opset}; inputs {ins}; outputs {outs}")
    return 0


def _shape(value: Any) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
    return f"{value.name} ({', '.join(dims)})"
