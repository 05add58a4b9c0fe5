"""ONNX and QONNX front-end: load + check + one reference run (load.py), lowering to the working graph
(lower.py), with the QONNX quantizers in NumPy (qonnx_ops.py)."""
from .load import graph_input, load_onnx, reference_run
from .lower import check_supported, lower

__all__ = ["load_onnx", "graph_input", "reference_run", "check_supported", "lower"]
