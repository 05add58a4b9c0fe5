"""ctypes declarations of edgebnn.h: one shared library serves every Python version.

Found, in order: $EDGEBNN_LIB, the copy installed inside this package (_lib/), then the
system library path.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

MAX_DIMS = 6


class ErrorStruct(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 256)]


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("layout", ctypes.c_int), ("ndim", ctypes.c_int),
                ("dims", ctypes.c_int64 * MAX_DIMS), ("bytes", ctypes.c_size_t), ("scale", ctypes.c_float),
                ("zero_point", ctypes.c_int32)]


class OpInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_char_p), ("backend", ctypes.c_char_p)]


OP_TIMER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64)


class SessionOptions(ctypes.Structure):
    _fields_ = [("threads", ctypes.c_int), ("timer", OP_TIMER), ("timer_user", ctypes.c_void_p)]


def _candidates():
    env = os.environ.get("EDGEBNN_LIB")
    if env:
        yield Path(env)
    names = {"darwin": ["libedgebnn.dylib"], "win32": ["edgebnn.dll"]}.get(sys.platform, ["libedgebnn.so"])
    here = Path(__file__).resolve().parent
    for name in names:
        yield here / "_lib" / name
    found = ctypes.util.find_library("edgebnn")
    if found:
        yield Path(found)


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        tried.append(str(path))
        if path.exists() or not path.is_absolute():
            return ctypes.CDLL(str(path))
    raise ImportError("edgebnn's C runtime (libedgebnn) was not found; reinstall with `pip install edgebnn` "
                      f"or set EDGEBNN_LIB (looked at: {', '.join(tried)})")


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    P, E = ctypes.c_void_p, ctypes.POINTER(ErrorStruct)
    sig = {
        "eb_version": (ctypes.c_char_p, []),
        "eb_model_load_file": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(P), E]),
        "eb_model_load_buffer": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(P), E]),
        "eb_model_free": (None, [P]),
        "eb_model_num_inputs": (ctypes.c_int, [P]),
        "eb_model_num_outputs": (ctypes.c_int, [P]),
        "eb_model_num_ops": (ctypes.c_int, [P]),
        "eb_model_input_info": (ctypes.c_int, [P, ctypes.c_int, ctypes.POINTER(TensorInfo)]),
        "eb_model_output_info": (ctypes.c_int, [P, ctypes.c_int, ctypes.POINTER(TensorInfo)]),
        "eb_model_op_info": (ctypes.c_int, [P, ctypes.c_int, ctypes.POINTER(OpInfo)]),
        "eb_model_metadata": (ctypes.c_char_p, [P, ctypes.c_char_p]),
        "eb_model_arena_bytes": (ctypes.c_size_t, [P]),
        "eb_model_weight_bytes": (ctypes.c_size_t, [P]),
        "eb_session_options_init": (None, [ctypes.POINTER(SessionOptions)]),
        "eb_session_create": (ctypes.c_int, [P, ctypes.POINTER(SessionOptions), ctypes.POINTER(P), E]),
        "eb_session_free": (None, [P]),
        "eb_session_set_input": (ctypes.c_int, [P, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, E]),
        "eb_session_run": (ctypes.c_int, [P, E]),
        "eb_session_get_output": (ctypes.c_int, [P, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, E]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


_lib: ctypes.CDLL | None = None


def get_lib() -> ctypes.CDLL:
    """The declared library, loaded on first use (importing edgebnn needs no C library)."""
    global _lib
    if _lib is None:
        _lib = _declare(_load())
    return _lib
