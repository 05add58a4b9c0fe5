"""Open a .tflite file: one clear line when it is not a TFLite model."""
from __future__ import annotations

from pathlib import Path

from edgebnn.errors import UserError

from .schema import FormatError, TModel, parse


def load_tflite(path) -> tuple[TModel, bytes]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        return parse(data), data
    except FormatError as e:
        raise UserError(f"{path}: not a TFLite model ({e}); expected a .tflite flatbuffer from the TFLite "
                        "converter") from None


def input_preprocess(model: TModel) -> dict:
    """How `edgebnn run` maps an image's 0..255 pixels to the float input: a quantized model's
    input scale says it (uint8 pixels are its codes; int8 codes are pixels - 128)."""
    t = model.tensors[model.inputs[0]]
    if t.type in (3, 9) and t.scale.size == 1:
        s = float(t.scale[0])
        zp = int(t.zero_point[0]) + (128 if t.type == 9 else 0)
        return {"scale": s, "mean": zp * s, "std": 1.0}
    return {"scale": 1.0 / 255.0}
