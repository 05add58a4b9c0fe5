"""Front-ends and exporters: PyTorch, ONNX/QONNX, TFLite/LCE. Installed as ``edgebnn.converters``."""
