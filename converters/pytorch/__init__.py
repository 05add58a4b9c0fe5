"""PyTorch front-end: load (load.py), capture with torch.export and lower to the working graph (capture.py)."""
from .capture import export, lower
from .load import load_model

__all__ = ["export", "lower", "load_model"]
