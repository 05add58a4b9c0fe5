"""Open what users save from PyTorch: an ExportedProgram (.pt2), TorchScript, or a whole module.

Safe loaders first: `.pt2` and TorchScript archives hold no pickled code. A module saved whole
with `torch.save(model)` is a pickle, and unpickling runs code from the file; it is loaded only
when the caller allows it (`allow_pickle`, the CLI's default, documented in `--help`).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from edgebnn.errors import UserError


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def load_model(path, allow_pickle: bool = True):
    """An nn.Module, a ScriptModule or an ExportedProgram; UserError with the fix otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    names = _zip_names(path)
    if path.suffix == ".pt2" or any(n.endswith("/serialized_exported_program.json") or
                                    n.endswith("models/model.json") for n in names):
        try:
            return torch.export.load(str(path))
        except Exception as e:
            raise UserError(f"{path}: not a loadable torch.export program ({type(e).__name__}: {e})") from None
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            raise UserError(f"{path}: not a loadable TorchScript archive ({type(e).__name__}: {e})") from None
    if not names:
        raise UserError(f"{path}: not a PyTorch model file (expected a .pt2 from torch.export.save, TorchScript, "
                        f"or a module saved with torch.save(model))")
    # A torch.save archive: try the weights-only unpickler first (it refuses code).
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        if not allow_pickle:
            raise UserError(f"{path}: a pickled module; loading it runs code from the file. "
                            "Re-run with --allow-pickle if you trust it, or save with torch.export.save") from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise UserError(f"{path}: cannot unpickle ({type(e).__name__}: {e}); the classes it names must be "
                            "importable here") from None
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, dict):
        raise UserError(f"{path}: holds only weights (a state_dict), not a model; save the module itself "
                        "(torch.save(model)) or an ExportedProgram (torch.export.save), or call "
                        "edgebnn.convert(model) from Python")
    raise UserError(f"{path}: holds a {type(obj).__name__}, not a model")
