"""Turn a user's file (.npy, .npz, .png, .bmp, .jpg) into input arrays the model takes.

Images follow the model's metadata `input.preprocess` (JSON):
  {"grayscale": bool, "scale": float, "mean": [..], "std": [..], "invert": bool}
applied as ((pixels * scale) - mean) / std after resizing to the input's height and width.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import UserError
from .runtime import Runtime, TensorSpec

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".gif", ".ppm", ".pgm"}


def _hw_c(spec: TensorSpec) -> tuple[int, int, int]:
    if len(spec.shape) != 4:
        raise UserError(f"input '{spec.name}' has shape {spec.shape}: images need a 4-D input")
    if spec.layout == "NCHW":
        _, c, h, w = spec.shape
    else:
        _, h, w, c = spec.shape
    return h, w, c


def load_image(path: Path, spec: TensorSpec, preprocess: dict) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise UserError("reading images needs Pillow: pip install pillow (or pass a .npy)") from None
    h, w, c = _hw_c(spec)
    try:
        img = Image.open(path)
        img = img.convert("L" if c == 1 or preprocess.get("grayscale") else "RGB").resize((w, h), Image.BILINEAR)
    except OSError as e:
        raise UserError(f"cannot read image {path}: {e}") from None
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    if preprocess.get("invert"):
        a = 255.0 - a
    if spec.dtype.kind in "iu":  # quantized input: feed raw pixels (the model's scale applies)
        x = a.astype(spec.dtype)
    else:
        a = a * float(preprocess.get("scale", 1.0 / 255.0))
        a = (a - np.asarray(preprocess.get("mean", 0.0), np.float32)) / np.asarray(preprocess.get("std", 1.0), np.float32)
        x = a.astype(np.float32)
    x = x[None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if spec.layout == "NCHW" else x)


def load_inputs(path: Path | None, rt: Runtime, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Returns (batch of inputs stacked on a new leading axis, labels or None, description)."""
    spec = rt.inputs[0]
    if len(rt.inputs) != 1:
        raise UserError(f"the model has {len(rt.inputs)} inputs; `run` feeds single-input models")
    if path is None:
        rng = np.random.default_rng(seed)
        if spec.dtype.kind == "f":
            # drawn in float32 where it is one: no float64 copy of the input on the way
            x = (rng.standard_normal(spec.shape, dtype=np.float32) if spec.dtype == np.float32
                 else rng.standard_normal(spec.shape).astype(spec.dtype))
        else:
            info = np.iinfo(spec.dtype)
            x = rng.integers(info.min, info.max + 1, spec.shape).astype(spec.dtype)
        return x[None], None, f"random input (seed {seed})"
    path = Path(path)
    if not path.exists():
        raise UserError(f"input file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        pre = json.loads(rt.metadata("input.preprocess") or "{}")
        return load_image(path, spec, pre)[None], None, f"image {path.name}"
    if suffix not in (".npy", ".npz"):
        raise UserError(f"{path.name}: inputs are .npy, .npz (arrays x and y) or images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    labels = None
    if suffix == ".npz":
        if "x" not in data:
            raise UserError(f"{path.name} must hold an array named 'x' (and optionally labels 'y')")
        x, labels = data["x"], (data["y"] if "y" in data else None)
    else:
        x = data
    if x.shape == spec.shape:
        x = x[None]
    elif x.shape[1:] == spec.shape[1:] and spec.shape[0] == 1:
        x = x[:, None]  # a batch of single samples
    elif x.shape[1:] != spec.shape:
        raise UserError(f"{path.name} holds shape {x.shape}; the model's input '{spec.name}' is {spec.shape} "
                        f"({spec.layout}); pass that shape or a batch of it")
    if spec.dtype.kind == "f" and x.dtype.kind in "ui":
        x = x.astype(np.float32) * float(json.loads(rt.metadata("input.preprocess") or "{}").get("scale", 1.0))
    if x.dtype != spec.dtype and not (spec.dtype.kind == "f" and x.dtype.kind == "f"):
        raise UserError(f"{path.name} holds {x.dtype}; the model's input '{spec.name}' is {spec.dtype}")
    if spec.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise UserError(f"{path.name} holds NaN or infinite values")
    if labels is not None and len(labels) != len(x):
        raise UserError(f"{path.name}: {len(labels)} labels for {len(x)} inputs")
    return x.astype(spec.dtype, copy=False), labels, f"{len(x)} input(s) from {path.name}"
