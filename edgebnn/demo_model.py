"""A small binary CNN for 28x28 digits, built with the IR builder (deterministic weights).

It exercises the whole binary path of the runtime: float stem, BatchNorm folded into
thresholds, packed activations chained between binary convs, binary max pool, binary
fully connected layer and a float classifier. Weights are seeded random numbers: the
predictions mean nothing until `edgebnn convert` brings trained models.
"""
from __future__ import annotations

import numpy as np

from .ir import GraphBuilder
from .ir.graph import Graph


def _pm1(rng, shape):
    return np.where(rng.standard_normal(shape) >= 0, 1, -1).astype(np.int8)


def build_demo_bnn(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("image", (1, 28, 28, 1), layout="NCHW")           # users feed NCHW like PyTorch
    stem = b.conv2d(x, rng.standard_normal((32, 3, 3, 1)).astype(np.float32) * 0.5,
                    bias=np.zeros(32, np.float32), padding="same", name="stem")
    bn = b.affine(stem, rng.uniform(0.5, 1.5, 32), rng.normal(0, 0.1, 32), name="stem.bn")
    h = b.sign_pack(bn, name="binarize")
    # binary 3x3 conv whose BatchNorm+sign is folded into per-channel thresholds: packed out
    h = b.bconv2d(h, b.const_bits(_pm1(rng, (64, 3, 3, 32))), padding="same",
                  thresholds=rng.integers(-20, 20, 64, dtype=np.int32),
                  directions=np.where(rng.random(64) < 0.9, 1, -1).astype(np.int32), name="block1.bconv")
    h = b.bmax_pool2d(h, 2, name="block1.pool")                       # 14x14
    h = b.bconv2d(h, b.const_bits(_pm1(rng, (64, 3, 3, 64))), padding="same",
                  thresholds=rng.integers(-30, 30, 64, dtype=np.int32),
                  directions=np.ones(64, np.int32), name="block2.bconv")
    h = b.bmax_pool2d(h, 2, name="block2.pool")                       # 7x7
    h = b.reshape(h, (1, 7 * 7 * 64), name="flatten")
    h = b.bfully_connected(h, b.const_bits(_pm1(rng, (128, 7 * 7 * 64))),
                           multiplier=np.full(128, 1 / 56.0, np.float32), bias=np.zeros(128, np.float32),
                           activation="relu", name="fc1.binary")
    logits = b.fully_connected(h, rng.standard_normal((10, 128)).astype(np.float32) * 0.1,
                               bias=np.zeros(10, np.float32), name="classifier")
    b.output(b.softmax(logits, name="probs"), name="probs")
    return b.build({"producer": "edgebnn demo", "labels": '["0","1","2","3","4","5","6","7","8","9"]',
                    "input.preprocess": '{"grayscale": true, "scale": 0.00392156862745098}',
                    "description": "random-weight binary CNN for 28x28 digits (edgebnn demo)"})
