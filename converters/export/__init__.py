"""Exporters: a packed .ebnn graph back out to other formats, so a model can be checked elsewhere.

``onnx.export_onnx(graph, path)`` writes the float-simulated model: every binary layer as standard
ONNX ops on ±1 float values, bit for bit the runtime's integer accumulators.
"""
