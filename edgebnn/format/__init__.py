"""The .ebnn packed model format: writer and reader (spec in docs/format.md)."""
from .reader import FormatError, from_bytes, load
from .writer import save, to_bytes

__all__ = ["FormatError", "from_bytes", "load", "save", "to_bytes"]
