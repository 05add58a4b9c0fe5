"""edgebnn: binary and compact neural networks, from PyTorch to a packed file to a C runtime on the board."""
__version__ = "0.1.0"

__all__ = ["EdgebnnError", "Runtime", "__version__"]


def __getattr__(name):
    # The runtime binding loads the C library: import it only when asked for.
    if name in ("Runtime", "EdgebnnError"):
        from . import runtime
        return getattr(runtime, name)
    raise AttributeError(f"module 'edgebnn' has no attribute {name!r}")
