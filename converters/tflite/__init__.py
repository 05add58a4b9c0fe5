"""TFLite front-end: a hand-written flatbuffer reader (schema.py) and a direct lowering to the
packed IR with TFLite's int8 semantics (lower.py); peer.py runs the same file in tflite-runtime."""
from .load import load_tflite
from .lower import SUPPORTED, lower
from .peer import peer_run

__all__ = ["load_tflite", "lower", "peer_run", "SUPPORTED"]
