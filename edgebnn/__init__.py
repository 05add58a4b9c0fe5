"""edgebnn: binary and compact neural networks, from PyTorch to a packed file to a C runtime on the board."""
__version__ = "0.1.0"

__all__ = ["EdgebnnError", "Runtime", "convert", "__version__"]


def convert(model, example_input=None, output=None, **kwargs):
    """Convert a PyTorch module / ExportedProgram / file (or an .onnx file) to a packed .ebnn.

    Returns the report (edgebnn.converters.ConversionReport). Needs `pip install 'edgebnn[convert]'`;
    see edgebnn.converters.convert for every option.
    """
    from .converters import convert as _convert
    return _convert(model, example_input=example_input, output=output, **kwargs)


def __getattr__(name):
    # The runtime binding loads the C library: import it only when asked for.
    if name in ("Runtime", "EdgebnnError"):
        from . import runtime
        return getattr(runtime, name)
    raise AttributeError(f"module 'edgebnn' has no attribute {name!r}")
