"""Calibration inputs for int8 quantization: a .npy / .npz of model inputs, or a folder of images.

Arrays hold what the model takes after preprocessing, stacked on a leading sample axis:
shape (S, *input_shape[1:]) in the model's own layout (NCHW for PyTorch and ONNX, NHWC for
TFLite), or exactly one input of input_shape. Images go through the model's `input.preprocess`
metadata (as `edgebnn run` reads them).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError

_ARRAY_KEYS = ("x", "inputs", "images", "data", "calibration")


def _from_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            if not keys:
                raise UserError(f"calibration file {path} holds no arrays")
            key = keys[0] if len(keys) == 1 else next((k for k in _ARRAY_KEYS if k in keys), None)
            if key is None:
                raise UserError(f"calibration file {path} holds arrays {keys}: name the inputs one of "
                                f"{list(_ARRAY_KEYS)} (np.savez(path, x=inputs))")
            return z[key]
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read calibration file {path}: {e}") from None


def _from_images(folder: Path, input_shape, layout: str, preprocess: dict) -> np.ndarray:
    from ..inputs import IMAGE_SUFFIXES, load_image
    from ..runtime import TensorSpec

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"calibration folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    spec = TensorSpec("input", np.dtype("<f4"), tuple(input_shape), layout, 0.0, 0)
    return np.concatenate([load_image(f, spec, preprocess) for f in files])


def load_calibration(source, input_shape, layout: str = "NCHW", preprocess: dict | None = None) -> np.ndarray:
    """Samples as float32 (S, *input_shape[1:]), checked: the right shape, float, finite, not empty.

    source: a path (.npy, .npz, or a folder of images) or an array already in memory.
    """
    input_shape = tuple(int(d) for d in input_shape)
    what = "calibration data"
    if isinstance(source, (str, Path)):
        path = Path(source)
        what = f"calibration data {path}"
        if path.is_dir():
            x = _from_images(path, input_shape, layout, preprocess or {})
        elif not path.exists():
            raise UserError(f"calibration data {path} does not exist")
        elif path.suffix.lower() == ".npy":
            try:
                x = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise UserError(f"cannot read calibration file {path}: {e}") from None
        elif path.suffix.lower() == ".npz":
            x = _from_npz(path)
        else:
            raise UserError(f"calibration data {path}: expected a .npy, a .npz or a folder of images")
    else:
        x = np.asarray(source)
    if x.dtype.kind not in "f":
        hint = (" (raw pixels? put the images in a folder, or apply the model's preprocessing first)"
                if x.dtype.kind in "iu" else "")
        raise UserError(f"{what} is {x.dtype}: calibration inputs must be floating point{hint}")
    per = input_shape[1:]
    if x.ndim != len(input_shape) or tuple(x.shape[1:]) != per:
        lay = f" ({layout})" if len(input_shape) == 4 else ""
        raise UserError(f"{what} has shape {tuple(x.shape)}; the model takes {input_shape}{lay}: "
                        f"give samples as (S, {', '.join(map(str, per))})")
    if x.shape[0] == 0:
        raise UserError(f"{what} holds no samples")
    if x.shape[0] % input_shape[0]:
        raise UserError(f"{what} has {x.shape[0]} samples; the model runs batches of {input_shape[0]}")
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad.reshape(x.shape[0], -1).any(1))[0][0])
        raise UserError(f"{what} has {int(bad.sum())} non-finite values (NaN or inf), the first in sample {first}")
    return x


def preprocess_of(graph) -> dict:
    raw = graph.metadata.get("input.preprocess")
    return json.loads(raw) if raw else {}
