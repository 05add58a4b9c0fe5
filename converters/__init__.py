"""Front-ends and exporters: PyTorch, ONNX / QONNX and TFLite.
Installed as ``edgebnn.converters``; PyTorch and ONNX need the `convert` extra (torch, onnx); TFLite
needs nothing (its flatbuffer reader is built in).

    >>> from edgebnn.converters import convert
    >>> report = convert(model, example_input=torch.zeros(1, 1, 28, 28), output="model.ebnn")
    >>> report = convert("TFC_1W1A.onnx", output="tfc.ebnn")
    >>> report = convert("mobilenet_v2_1.0_224_quant.tflite", output="mnv2.ebnn")
    >>> print(report.format_text())
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgebnn.errors import UserError

from .report import ConversionReport, LayerReport

__all__ = ["convert", "ConversionReport", "LayerReport"]


def _shape(input_shape) -> tuple[int, ...]:
    if isinstance(input_shape, str):
        try:
            input_shape = [int(v) for v in input_shape.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--input-shape {input_shape!r}: expected integers like 1,3,224,224") from None
    shape = tuple(int(v) for v in input_shape)
    if not shape or min(shape) < 1:
        raise UserError(f"input shape {shape} must be positive integers like 1,3,224,224")
    return shape



def _user_metadata(meta: dict, labels, preprocess) -> None:
    """Class labels and image preprocessing, as `edgebnn run` reads them (docs/format.md)."""
    if labels:
        meta["labels"] = json.dumps([str(v) for v in labels])
    if preprocess:
        meta["input.preprocess"] = json.dumps(preprocess)


def _int8(graph, int8: dict | None, progress=None):
    """Post-training int8 of the emitted float graph when asked (None: unchanged)."""
    if not int8:
        return graph, None
    from edgebnn.quantize import load_calibration, quantize_graph
    from edgebnn.quantize.calibration import preprocess_of
    from edgebnn.quantize.ptq import input_spec

    if int8.get("calibration") is None:
        raise UserError("int8 needs calibration data: --calibration inputs.npy (or .npz, or a folder of images)")
    shape, layout = input_spec(graph)
    samples = load_calibration(int8["calibration"], shape, layout, preprocess_of(graph))
    res = quantize_graph(graph, samples, method=int8.get("method", "minmax"), keep_float=int8.get("keep_float", ()),
                         tolerance=int8.get("tolerance", 0.1), min_k=int8.get("min_k", 16), progress=progress)
    return res.graph, res


def _emit(wg, meta: dict):
    """The working graph as the packed IR; what it cannot express becomes one UserError line."""
    from edgebnn.passes import EmitError, emit
    try:
        return emit(wg, meta)
    except EmitError as e:
        raise UserError(str(e)) from None


def _finish(graph, layer_of_op, wg, source, output, int8: dict | None, progress):
    """int8 when asked, then the report of the graph that will be written: (graph, report)."""
    from .report import build_report
    graph, q = _int8(graph, int8, progress)
    report = build_report(graph, layer_of_op, wg, str(source), output)
    _int8_report(report, q, int8)
    return graph, report


def _int8_report(report: ConversionReport, res, int8: dict) -> None:
    if res is None:
        return
    report.notes += res.notes
    by_name = {layer.name: layer for layer in res.layers}
    for layer in report.layers:
        q = by_name.get(layer.name)
        if q is not None:
            layer.error, layer.error_alone = q.error, q.error_alone
            if q.why_float:
                layer.why_float = q.why_float
    report.int8 = {"calibration_samples": res.samples, "method": res.method, "tolerance": int8.get("tolerance", 0.1),
                   "kept_float": [q.name for q in res.layers if q.why_float]}


def _write(report: ConversionReport, graph, output) -> ConversionReport:
    """The last step of every front-end: write the file (atomically) only now that all succeeded."""
    from edgebnn.format.writer import save, to_bytes
    if output is not None:
        save(graph, output)
        report.file_bytes = Path(output).stat().st_size
    else:
        report.file_bytes = len(to_bytes(graph))
    return report

def convert(model, example_input=None, output=None, input_shape=None, allow_pickle: bool = True,
            labels=None, preprocess: dict | None = None, verify: bool = True, int8: dict | None = None,
            progress=None) -> ConversionReport:
    """Convert a PyTorch model (module, ExportedProgram, or a file holding one) to a packed .ebnn.

    example_input: a tensor the model's forward accepts (its shape is the deployed input shape);
    or input_shape (e.g. (1, 3, 224, 224)). Writes `output` only when everything succeeded.
    labels: class names stored in the file (`edgebnn run` prints them); preprocess: how `edgebnn run`
    turns an image into the input, {"grayscale", "scale", "mean", "std", "invert"} (docs/format.md).
    verify: run the converted model on the example and record how far it is from PyTorch.
    int8: post-training int8 for the float layers, {"calibration": inputs (.npy / .npz path, a folder
    of images, or an array), "method": "minmax" | "percentile" | "mse", "keep_float": [layer names or
    globs], "tolerance": 0.1 (a layer whose int8 output alone is off by more, relative RMS, stays
    float; None: never), "min_k": 16 (a conv / FC with fewer products per output stays float)};
    progress(stage, done, total) hears about the calibration runs.
    A path ending in .onnx is imported as ONNX / QONNX (see convert_onnx), .tflite as TFLite
    (see convert_tflite).
    """
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".onnx":
        return convert_onnx(model, output=output, input_shape=input_shape, labels=labels, preprocess=preprocess,
                            verify=verify, example_input=example_input, int8=int8, progress=progress)
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".tflite":
        return convert_tflite(model, output=output, input_shape=input_shape, labels=labels, preprocess=preprocess,
                              verify=verify, example_input=example_input, int8=int8, progress=progress)
    try:
        import torch
    except ImportError:
        raise UserError("converting needs PyTorch: pip install 'edgebnn[convert]'") from None
    from edgebnn.passes import run_passes

    from .pytorch import export, load_model, lower

    source = "<module>"
    meta = {"producer": f"edgebnn convert (PyTorch {torch.__version__})"}
    if isinstance(model, (str, Path)):
        path = Path(model)
        source = str(path)
        if path.is_file():
            meta["source.sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            meta["source.file"] = path.name
        model = load_model(path, allow_pickle=allow_pickle)
    if example_input is None:
        if input_shape is not None:
            example_input = torch.rand(_shape(input_shape))
        elif isinstance(model, torch.export.ExportedProgram) and model.example_inputs:
            example_input = model.example_inputs[0][0]
        else:
            raise UserError("the model's input shape is not in the file: give --input-shape N,C,H,W "
                            "(or example_input= in Python)")
    example_input = example_input.detach().to(torch.float32)
    ep = export(model, example_input)
    wg = lower(ep)
    run_passes(wg)
    meta["input.shape"] = ",".join(str(d) for d in example_input.shape)
    _user_metadata(meta, labels, preprocess)
    graph, report = _finish(*_emit(wg, meta), wg, source, output, int8, progress)
    report.input_shape = tuple(example_input.shape)
    if verify:
        _verify(report, graph, ep, example_input)
    return _write(report, graph, output)


def convert_onnx(path, output=None, input_shape=None, labels=None, preprocess: dict | None = None,
                 verify: bool = True, example_input=None, int8: dict | None = None, progress=None) -> ConversionReport:
    """Convert an ONNX / QONNX file to a packed .ebnn. Writes `output` only when everything succeeded.

    input_shape: needed when the file's input has dynamic dimensions. verify: compare the runtime with a
    NumPy reference run of the ONNX graph (onnx.reference, with the QONNX ops) on a random example.
    """
    import numpy as np

    from edgebnn.passes import run_passes

    try:
        import onnx  # noqa: F401  (the ONNX front-end and its reference run stand on it)
    except ImportError:
        raise UserError("converting ONNX needs the onnx package: pip install 'edgebnn[convert]'") from None
    from .onnx import check_supported, graph_input, load_onnx, lower, reference_run

    path = Path(path)
    model = load_onnx(path)
    name, shape = graph_input(model, path, None if input_shape is None else _shape(input_shape))
    check_supported(model)
    if example_input is not None:
        x = np.asarray(example_input, np.float32)
        if tuple(x.shape) != tuple(shape):
            raise UserError(f"example input of shape {tuple(x.shape)} does not match the model input {shape}")
    else:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
    try:
        values = reference_run(model, name, x)
    except UserError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: the ONNX graph does not run on an input of shape {list(shape)} ({first})") from None
    wg = lower(model, name, values)
    run_passes(wg)
    meta = {"producer": f"edgebnn convert (ONNX {model.producer_name or 'model'} {model.producer_version})".strip(),
            "source.sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "source.file": path.name,
            "input.shape": ",".join(str(d) for d in shape)}
    _user_metadata(meta, labels, preprocess)
    graph, report = _finish(*_emit(wg, meta), wg, path, output, int8, progress)
    report.input_shape = tuple(shape)
    report.reference = "the ONNX graph (NumPy reference run)"
    if verify:
        out = model.graph.output[0].name
        _verify_arrays(report, graph, x, values[out])
    return _write(report, graph, output)


def convert_tflite(path, output=None, input_shape=None, labels=None, preprocess: dict | None = None,
                   verify: bool = True, example_input=None, int8: dict | None = None, progress=None) -> ConversionReport:
    """Convert a TFLite flatbuffer (float32, int8 per-channel or uint8 asymmetric) to a packed .ebnn.

    The converted model takes a float NHWC input (quantized models quantize it in the graph) and
    returns float outputs (int8 ones dequantized); `input.preprocess` defaults to the mapping the
    model's input quantization implies, so `edgebnn run photo.bmp` feeds it like TFLite's uint8 /
    int8 pixels. verify: compare with tflite-runtime / ai-edge-litert on a random input when one
    is installed. Writes `output` only when everything succeeded.
    """
    import numpy as np

    from .tflite import load_tflite, lower
    from .tflite.load import input_preprocess
    from .tflite.peer import make_interpreter, peer_run, quantize_input

    path = Path(path)
    model, data = load_tflite(path)
    graph, layer_of_op, wg = lower(model, path)
    shape = graph.tensors[graph.inputs[0]].shape
    if input_shape is not None and _shape(input_shape) != tuple(shape):
        raise UserError(f"--input-shape {','.join(map(str, _shape(input_shape)))} disagrees with the TFLite "
                        f"model's input {list(shape)} (NHWC); leave it out")
    meta = {"producer": f"edgebnn convert (TFLite schema v{model.version}{', ' + model.description if model.description else ''})",
            "source.sha256": hashlib.sha256(data).hexdigest(), "source.file": path.name,
            "input.shape": ",".join(str(d) for d in shape),
            "input.preprocess": json.dumps(preprocess or input_preprocess(model))}
    if labels:
        meta["labels"] = json.dumps([str(v) for v in labels])
    graph.metadata.update(meta)
    graph, report = _finish(graph, layer_of_op, wg, path, output, int8, progress)
    report.input_shape = tuple(shape)
    report.reference = "tflite-runtime"
    if verify:
        if example_input is not None:
            x = np.asarray(example_input, np.float32)
        else:
            x = np.random.default_rng(0).random(shape, dtype=np.float32)  # real values in [0, 1)
        peer_x = quantize_input(model, x)
        xt = model.tensors[model.inputs[0]]
        if xt.type in (3, 9):  # feed the runtime the exact reals the codes stand for
            x = ((peer_x.astype(np.float64) - int(xt.zero_point[0])) * float(xt.scale[0])).astype(np.float32)
        got = peer_run(data, peer_x)
        if got is None:
            report.notes.append(f"not compared with TFLite: {make_interpreter(data)[1]}")
        else:
            _verify_arrays(report, graph, x, got[0][0])
    return _write(report, graph, output)


def _verify_arrays(report: ConversionReport, graph, x, want) -> None:
    """Run the packed graph in the C runtime on x and compare with the source's output `want`."""
    import numpy as np

    try:
        from edgebnn.format.writer import to_bytes
        from edgebnn.runtime import Runtime
        rt = Runtime(to_bytes(graph))
    except Exception as e:  # no C library (source checkout): say so, do not fail the conversion
        report.notes.append(f"not verified in the runtime: {e}")
        return
    got = rt.run(x)
    got = got if isinstance(got, np.ndarray) else got[0]
    want = np.asarray(want, np.float32).reshape(got.shape)
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    report.verify = {"max_abs_diff": err, "max_abs_output": scale,
                     "same_argmax": bool(np.array_equal(got.reshape(got.shape[0], -1).argmax(1),
                                                        want.reshape(want.shape[0], -1).argmax(1)))}


def _verify(report: ConversionReport, graph, ep, x) -> None:
    """Run the packed graph in the C runtime and compare with PyTorch on the example input."""
    import torch

    with torch.no_grad():
        want = ep.module()(x)
    want = want[0] if isinstance(want, (tuple, list)) else want
    _verify_arrays(report, graph, x.numpy(), want.numpy())
