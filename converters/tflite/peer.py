"""The peer: the same .tflite in tflite-runtime (or ai-edge-litert) on TFLite's reference kernels
(BUILTIN_REF), the arithmetic the runtime reproduces. tflite-runtime 2.14's default kernels (AUTO
and BUILTIN resolvers) give the same bytes as its reference kernels on every tensor of the four
MobileNet-family test models; ai-edge-litert's default resolver does not (it delegates uint8 and
int8 layers to XNNPACK, which requantizes in float: up to 4 steps on MobileNetV2-quant's logits)."""
from __future__ import annotations

import numpy as np


def _candidates():
    try:
        from ai_edge_litert import interpreter as litert
        yield litert
    except Exception:
        pass
    try:
        from tflite_runtime import interpreter as tflrt
        yield tflrt
    except Exception:
        pass


def make_interpreter(data: bytes, preserve: bool = False, resolver: str = "BUILTIN_REF"):
    """An interpreter of the model, or (None, why) when no peer is installed or none loads here
    (tflite-runtime 2.14 wheels are built for NumPy 1 and fail to load under NumPy 2)."""
    why = "neither ai-edge-litert nor tflite-runtime is installed (pip install ai-edge-litert)"
    for mod in _candidates():
        try:
            it = mod.Interpreter(model_content=data,
                                 experimental_op_resolver_type=getattr(mod.OpResolverType, resolver),
                                 experimental_preserve_all_tensors=preserve)
            it.allocate_tensors()
            return it, ""
        except Exception as e:  # noqa: BLE001 - a broken install is a reason, not a crash
            why = f"{mod.__name__} does not load here: {str(e).strip().splitlines()[0] if str(e).strip() else e}"
    return None, why


def peer_run(data: bytes, x: np.ndarray, tensors=(), resolver: str = "BUILTIN_REF"):
    """(outputs as float, {tensor index: float value}) of the model on x, given in the input's own
    dtype (float models: float; quantized: the 8-bit codes). None when no peer runs here."""
    it, _ = make_interpreter(data, preserve=bool(tensors), resolver=resolver)
    if it is None:
        return None
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.asarray(x, d["dtype"]).reshape(d["shape"]))
    it.invoke()
    outs = [_real(it, o) for o in it.get_output_details()]
    details = {t["index"]: t for t in it.get_tensor_details()}
    return outs, {i: _real(it, details[i]) for i in tensors}


def _real(it, d) -> np.ndarray:
    v = it.get_tensor(d["index"])
    s, z = d["quantization"]
    if v.dtype in (np.uint8, np.int8) and s:
        return ((v.astype(np.float64) - z) * s).astype(np.float32)
    return v.astype(np.float32)


def quantize_input(model, x_real: np.ndarray) -> np.ndarray:
    """A real-valued input as the model's input dtype (for the peer)."""
    t = model.tensors[model.inputs[0]]
    if t.type not in (3, 9):
        return x_real.astype(np.float32)
    lo, hi = (0, 255) if t.type == 3 else (-128, 127)
    q = np.round(x_real / float(t.scale[0])) + int(t.zero_point[0])
    return np.clip(q, lo, hi).astype(np.uint8 if t.type == 3 else np.int8)
