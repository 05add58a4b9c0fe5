"""Post-training int8 quantization of the float layers of a packed graph (`edgebnn convert --int8`)."""
from .calibration import load_calibration
from .ptq import METHODS, Int8Result, LayerInt8, quantize_graph

__all__ = ["load_calibration", "quantize_graph", "Int8Result", "LayerInt8", "METHODS"]
