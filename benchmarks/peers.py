"""What several benchmarks share: the machine's name and onnxruntime's own int8 of a float model.

Import with the benchmarks folder on sys.path (each script puts it there)."""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def ort_static_int8(model, example, calib, d: Path) -> tuple[Path, Path]:
    """The float PyTorch model through torch.onnx.export, quantized by onnxruntime's
    quantize_static with calibration samples `calib` (S, ...): QDQ, per-channel int8 weights,
    int8 activations, MinMax. Returns (float .onnx, int8 .onnx); the input is named "x"."""
    import torch
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    f32, pre, q = d / "float.onnx", d / "pre.onnx", d / "int8.onnx"
    torch.onnx.export(model, (torch.as_tensor(example),), str(f32), dynamo=False, opset_version=17,
                      input_names=["x"])
    quant_pre_process(str(f32), str(pre))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x}

    quantize_static(str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return f32, q


def ort_session(path, threads: int = 1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
