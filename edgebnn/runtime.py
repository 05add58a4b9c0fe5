"""`edgebnn.Runtime`: run a packed model through the C runtime, NumPy in, NumPy out."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import _clib

_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<i4"), 3: np.dtype("i1"), 4: np.dtype("u1")}
_DTYPE_NAMES = {1: "f32", 2: "i32", 3: "i8", 4: "u8", 5: "bit1"}


class EdgebnnError(Exception):
    """An error reported by the runtime; the message is one line naming the problem."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    layout: str
    scale: float
    zero_point: int

    @property
    def dtype_name(self) -> str:
        return {v: _DTYPE_NAMES[k] for k, v in _DTYPES.items()}[self.dtype]


@dataclass(frozen=True)
class OpSpec:
    name: str
    type: str
    backend: str


def _check(status: int, err: _clib.ErrorStruct):
    if status != 0:
        raise EdgebnnError(err.message.decode("utf-8", "replace") or f"runtime error {status}", status)


class Runtime:
    """A loaded model and one session on it.

    >>> rt = Runtime("model.ebnn", threads=1)
    >>> logits = rt.run(x)            # x in the layout the model declares (see rt.inputs)
    """

    def __init__(self, model, threads: int = 1, op_timer: Callable[[int, int], None] | None = None):
        try:
            self._lib = _clib.get_lib()
        except (ImportError, OSError) as e:
            raise EdgebnnError(str(e)) from None
        self._model = ctypes.c_void_p()
        self._session = ctypes.c_void_p()
        err = _clib.ErrorStruct()
        if isinstance(model, (bytes, bytearray, memoryview)):
            buf = bytes(model)
            _check(self._lib.eb_model_load_buffer(buf, len(buf), 1, ctypes.byref(self._model), ctypes.byref(err)), err)
            self.path = None
        else:
            self.path = Path(model)
            _check(self._lib.eb_model_load_file(str(self.path).encode(), ctypes.byref(self._model),
                                                ctypes.byref(err)), err)
        opts = _clib.SessionOptions()
        self._lib.eb_session_options_init(ctypes.byref(opts))
        opts.threads = int(threads)
        # keep the callback object alive as long as the session may call it
        self._timer = _clib.OP_TIMER((lambda _u, i, ns: op_timer(i, ns))) if op_timer else None
        if self._timer:
            opts.timer = self._timer
        _check(self._lib.eb_session_create(self._model, ctypes.byref(opts), ctypes.byref(self._session),
                                           ctypes.byref(err)), err)
        self.threads = int(threads)
        self.inputs = [self._info(self._lib.eb_model_input_info, i)
                       for i in range(self._lib.eb_model_num_inputs(self._model))]
        self.outputs = [self._info(self._lib.eb_model_output_info, i)
                        for i in range(self._lib.eb_model_num_outputs(self._model))]
        self._out_bufs = [np.empty(o.shape, o.dtype) for o in self.outputs]

    def _info(self, fn, i) -> TensorSpec:
        info = _clib.TensorInfo()
        fn(self._model, i, ctypes.byref(info))
        return TensorSpec(info.name.decode(), _DTYPES[info.dtype], tuple(info.dims[:info.ndim]),
                          "NCHW" if info.layout == 1 else "NHWC", info.scale, info.zero_point)

    @property
    def ops(self) -> list[OpSpec]:
        out = []
        for i in range(self._lib.eb_model_num_ops(self._model)):
            info = _clib.OpInfo()
            self._lib.eb_model_op_info(self._model, i, ctypes.byref(info))
            out.append(OpSpec(info.name.decode(), info.type.decode(), info.backend.decode()))
        return out

    @property
    def arena_bytes(self) -> int:
        return int(self._lib.eb_model_arena_bytes(self._model))

    @property
    def weight_bytes(self) -> int:
        return int(self._lib.eb_model_weight_bytes(self._model))

    def metadata(self, key: str) -> str | None:
        v = self._lib.eb_model_metadata(self._model, key.encode())
        return None if v is None else v.decode("utf-8", "replace")

    def run(self, *inputs):
        """Run once. Returns one array for a single-output model, else a tuple (fresh copies)."""
        if len(inputs) != len(self.inputs):
            raise EdgebnnError(f"model takes {len(self.inputs)} input(s), got {len(inputs)}")
        err = _clib.ErrorStruct()
        for i, (x, spec) in enumerate(zip(inputs, self.inputs)):
            a = np.asarray(x)
            if a.shape != spec.shape:
                raise EdgebnnError(f"input '{spec.name}' must have shape {spec.shape} ({spec.layout}), got {a.shape}")
            if a.dtype != spec.dtype:
                if spec.dtype.kind == "f" and a.dtype.kind in "fiu":
                    a = a.astype(spec.dtype)
                else:
                    raise EdgebnnError(f"input '{spec.name}' must be {spec.dtype_name}, got {a.dtype}")
            a = np.ascontiguousarray(a)
            _check(self._lib.eb_session_set_input(self._session, i, a.ctypes.data, a.nbytes, ctypes.byref(err)), err)
        _check(self._lib.eb_session_run(self._session, ctypes.byref(err)), err)
        outs = []
        for i, buf in enumerate(self._out_bufs):
            _check(self._lib.eb_session_get_output(self._session, i, buf.ctypes.data, buf.nbytes,
                                                   ctypes.byref(err)), err)
            outs.append(buf.copy())
        return outs[0] if len(outs) == 1 else tuple(outs)

    def close(self):
        if getattr(self, "_session", None):
            self._lib.eb_session_free(self._session)
            self._session = None
        if getattr(self, "_model", None):
            self._lib.eb_model_free(self._model)
            self._model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def version() -> str:
    return _clib.get_lib().eb_version().decode()
