"""Pretrained models shipped inside the package (no download, no ../shared).

Each model is `<name>.pt` (a state_dict, loadable with weights_only=True)
plus `<name>.json`: zoo name, constructor kwargs, measured test accuracy,
the command and seed that trained it, and the input preprocessing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .registry import create

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def pretrained_names() -> list[str]:
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.json"))


def pretrained_info(name: str) -> dict:
    path = PRETRAINED_DIR / f"{name}.json"
    if not path.exists():
        raise ValueError(f"no pretrained model {name!r}; shipped: {', '.join(pretrained_names()) or 'none'}")
    return json.loads(path.read_text())


def load_pretrained(name: str = "mnist_bnn") -> nn.Module:
    """The shipped model, weights loaded, in eval mode."""
    info = pretrained_info(name)
    model = create(info["zoo"], **info["kwargs"])
    state = torch.load(PRETRAINED_DIR / info["weights"], map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def load_sample_digits() -> tuple[np.ndarray, np.ndarray]:
    """~20 MNIST test digits shipped for the demo: (uint8 [N, 28, 28], uint8 labels [N])."""
    with np.load(PRETRAINED_DIR / "mnist_digits.npz") as data:
        return data["images"], data["labels"]
