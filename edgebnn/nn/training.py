"""The training loop behind `edgebnn train` and the methods table.

Deterministic for a seed on CPU: one seeded generator for shuffling, torch's
global seed for init and stochastic binarization.
Images stay uint8 in memory and become float in [0, 1] per batch (x / 255,
the preprocessing recorded next to every saved model).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .binary import clip_binary_weights_


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0


def seed_everything(seed: int) -> None:
    # The CPU kernels used here are deterministic; we do not flip torch's
    # process-wide use_deterministic_algorithms switch from library code.
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_input(images: np.ndarray | torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 [N, H0, W0] -> float [N, C, H, W] in [0, 1] for a model expecting `shape`.

    Grayscale is repeated to C channels; a larger size is reached by zero
    padding (28 -> 32, the usual way to feed digits to CIFAR-shape nets),
    a smaller one by bilinear resizing.
    """
    x = torch.as_tensor(images).float().div_(255.0).unsqueeze(1)
    c, h, w = shape
    h0, w0 = x.shape[-2:]
    if (h, w) != (h0, w0):
        if h >= h0 and w >= w0:
            top, left = (h - h0) // 2, (w - w0) // 2
            x = F.pad(x, (left, w - w0 - left, top, h - h0 - top))
        else:
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x.expand(-1, c, -1, -1) if c != 1 else x


def fit(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    input_shape: tuple[int, int, int],
    config: TrainConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Adam + cosine learning-rate decay, cross-entropy; returns the mean loss of each epoch.

    Binary layers that ask for it get their latent weights clipped to
    [-1, 1] after every step (BinaryConnect / BinaryNet).
    """
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    images_t = torch.as_tensor(images)
    labels_t = torch.as_tensor(labels).long()
    steps_per_epoch = (len(images_t) + config.batch_size - 1) // config.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    history, step = [], 0
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(images_t), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            x = to_input(images_t[idx], input_shape)
            loss = F.cross_entropy(model(x), labels_t[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            clip_binary_weights_(model)
            total += loss.item() * len(idx)
            step += 1
            if on_step is not None:
                on_step(step, loss.item())
        history.append(total / len(order))
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, input_shape: tuple[int, int, int],
            batch_size: int = 1000) -> np.ndarray:
    was_training = model.training
    model.eval()
    preds = [
        model(to_input(images[i : i + batch_size], input_shape)).argmax(1).numpy()
        for i in range(0, len(images), batch_size)
    ]
    model.train(was_training)
    return np.concatenate(preds)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, input_shape: tuple[int, int, int]) -> float:
    return float((predict(model, images, input_shape) == labels).mean())


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: np.ndarray, input_shape: tuple[int, int, int],
                          batch_size: int = 500) -> None:
    """Re-estimate every BatchNorm's running statistics for the network as it is evaluated.

    Needed when training computes a different function from inference: a
    stochastic BinaryConnect model trains BN on the statistics of sampled
    weights, then runs with sign(w) or real w. Only BN layers run in training
    mode here; quantizers stay in eval mode (deterministic). No labels used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    model.eval()
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches
        bn.train()
    for start in range(0, len(images), batch_size):
        model(to_input(images[start : start + batch_size], input_shape))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.eval()
