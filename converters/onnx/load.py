"""Open an ONNX / QONNX file: parse, check, fix the input shape, and run it once in NumPy.

The single reference run (onnx.reference with the QONNX ops added) gives every intermediate
value on an example input: the static shape of every activation, the value of everything
that depends only on initializers (so weight quantizers arrive folded), and the output the
converted model is verified against.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebnn.errors import UserError

try:
    import onnx
except ImportError:  # pragma: no cover - the convert extra installs it
    onnx = None

from .qonnx_ops import DOMAINS, REF_OPS


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load_onnx(path) -> "onnx.ModelProto":
    if onnx is None:
        raise UserError("importing ONNX needs the onnx package: pip install 'edgebnn[convert]'")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise UserError(f"{path}: not an ONNX model ({_first_line(e)}); expected a .onnx file from "
                        "torch.onnx.export, Brevitas or QONNX") from None
    if not model.graph.node:
        raise UserError(f"{path}: not an ONNX model (no graph nodes); expected a .onnx file from "
                        "torch.onnx.export, Brevitas or QONNX")
    # Brevitas exports use the QONNX domains without declaring them; declare them so the
    # checker and the reference evaluator accept the file.
    have = {o.domain for o in model.opset_import}
    for dom in sorted({n.domain for n in model.graph.node} & set(DOMAINS) - have):
        model.opset_import.append(onnx.helper.make_opsetid(dom, 1))
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise UserError(f"{path}: invalid ONNX model: {_first_line(e)}") from None
    return model


def graph_input(model, path, input_shape=None) -> tuple[str, tuple[int, ...]]:
    """The one real input (not an initializer) and its static shape."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(f"{path}: the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                        "only single-input models can be converted")
    x = inputs[0]
    t = x.type.tensor_type
    if t.elem_type not in (onnx.TensorProto.FLOAT, 0):
        raise UserError(f"{path}: input '{x.name}' is {onnx.TensorProto.DataType.Name(t.elem_type)}; only float "
                        "inputs are supported (quantize inside the model)")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if dims and len(dims) != len(shape):
            raise UserError(f"--input-shape {','.join(map(str, shape))} has {len(shape)} dims but input "
                            f"'{x.name}' has {len(dims)}")
        for a, b in zip(dims, shape):
            if a is not None and a != b:
                raise UserError(f"--input-shape {','.join(map(str, shape))} disagrees with the model's input "
                                f"'{x.name}' of shape {_fmt(dims)}")
        return x.name, shape
    if not dims or any(d is None for d in dims):
        raise UserError(f"{path}: input '{x.name}' has a dynamic shape {_fmt(dims)}: give --input-shape "
                        f"(e.g. {','.join(str(d or 1) for d in dims) if dims else '1,3,224,224'})")
    return x.name, tuple(dims)


def _fmt(dims) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def reference_run(model, input_name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every value of the graph (initializers, constants, intermediates) on input x."""
    from onnx.reference import ReferenceEvaluator

    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = [o for n in m.graph.node for o in n.output if o]
    known = {o.name for o in m.graph.output}
    for name in names:
        if name not in known:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    ref = ReferenceEvaluator(m, new_ops=REF_OPS)
    outs = ref.run(None, {input_name: x})
    values = {o.name: np.asarray(v) for o, v in zip(m.graph.output, outs)}
    for init in model.graph.initializer:
        values[init.name] = onnx.numpy_helper.to_array(init)
    values[input_name] = x
    return values
