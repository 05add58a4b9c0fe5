"""Exporters: a packed .ebnn graph back out to other formats, so a model can be checked elsewhere.

``onnx.export_onnx(graph, path)`` writes the float-simulated model: every binary layer as standard
ONNX ops on ±1 float values, bit for bit the runtime's integer accumulators.
``lce.export_lce(graph, path)`` writes a TFLite flatbuffer with Larq Compute Engine's custom ops,
which LCE's interpreter runs with the runtime's outputs.
"""
