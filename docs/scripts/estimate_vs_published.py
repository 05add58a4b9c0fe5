"""Predicted (edgebnn's cost model) vs published latencies on a Raspberry Pi 4B.

Builds QuickNet and MobileNetV1/V2 at ImageNet shape with edgebnn.ir.GraphBuilder (random
weights: the cost model needs shapes only; no torch), asks `edgebnn.profile.estimate` for
the "optimized" engine (tuned SIMD kernels, which is what the published engines are), and
prints the markdown table docs/profile.md carries.

    python docs/scripts/estimate_vs_published.py
"""
from __future__ import annotations

import numpy as np

from edgebnn.devices import get_device
from edgebnn.ir import GraphBuilder
from edgebnn.profile.estimate import estimate

RNG = np.random.default_rng(0)


def _w(*shape):
    return (RNG.standard_normal(shape) * 0.1).astype(np.float32)


def _pm1(*shape):
    return np.where(RNG.random(shape) < 0.5, 1, -1).astype(np.int8)


def quicknet(filters=(64, 128, 256, 512), blocks=(4, 4, 4, 4)):
    """Larq zoo QuickNet (Bannink et al. 2021), as edgebnn/zoo/quicknet.py defines it."""
    b = GraphBuilder()
    x = b.input("x", (1, 224, 224, 3))
    f0 = filters[0]
    h = b.conv2d(x, _w(f0 // 4, 3, 3, 3), bias=np.zeros(f0 // 4, np.float32), strides=2, padding="same",
                 activation="relu")
    h = b.depthwise_conv2d(h, _w(3, 3, f0 // 4), strides=2, padding="same")
    h = b.conv2d(h, _w(f0, 1, 1, f0 // 4), bias=np.zeros(f0, np.float32))
    for i, (f, n) in enumerate(zip(filters, blocks)):
        if i:
            h = b.relu(h)
            h = b.max_pool2d(h, 3, 1, padding="same")
            h = b.depthwise_conv2d(h, _w(3, 3, h.shape[3]), strides=2, padding="same")
            h = b.conv2d(h, _w(f, 1, 1, h.shape[3]), bias=np.zeros(f, np.float32))
        for _ in range(n):
            y = b.bconv2d(b.sign_pack(h), b.const_bits(_pm1(f, 3, 3, f)), padding="same", pad_value=1,
                          multiplier=np.ones(f, np.float32), bias=np.zeros(f, np.float32), activation="relu")
            y = b.affine(y, np.ones(f, np.float32), np.zeros(f, np.float32))
            h = b.add(h, y)
    h = b.relu(h)
    h = b.reshape(b.global_avg_pool(h), (1, filters[-1]))
    b.output(b.fully_connected(h, _w(1000, filters[-1]), bias=np.zeros(1000, np.float32)))
    return b.build()


def mobilenet_v1():
    blocks = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
              (512, 1), (512, 1), (1024, 2), (1024, 1))
    b = GraphBuilder()
    h = b.conv2d(b.input("x", (1, 224, 224, 3)), _w(32, 3, 3, 3), bias=np.zeros(32, np.float32), strides=2,
                 padding="same", activation="relu")
    for out, s in blocks:
        c = h.shape[3]
        h = b.depthwise_conv2d(h, _w(3, 3, c), bias=np.zeros(c, np.float32), strides=s, padding="same",
                               activation="relu")
        h = b.conv2d(h, _w(out, 1, 1, c), bias=np.zeros(out, np.float32), activation="relu")
    h = b.reshape(b.global_avg_pool(h), (1, 1024))
    b.output(b.fully_connected(h, _w(1000, 1024), bias=np.zeros(1000, np.float32)))
    return b.build()


def mobilenet_v2():
    blocks = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
              (6, 320, 1, 1))
    b = GraphBuilder()
    h = b.conv2d(b.input("x", (1, 224, 224, 3)), _w(32, 3, 3, 3), bias=np.zeros(32, np.float32), strides=2,
                 padding="same", activation="relu6")
    for t, c, n, s in blocks:
        for i in range(n):
            cin = h.shape[3]
            y = h
            if t != 1:
                y = b.conv2d(y, _w(cin * t, 1, 1, cin), bias=np.zeros(cin * t, np.float32), activation="relu6")
            y = b.depthwise_conv2d(y, _w(3, 3, y.shape[3]), bias=np.zeros(y.shape[3], np.float32),
                                   strides=s if i == 0 else 1, padding="same", activation="relu6")
            y = b.conv2d(y, _w(c, 1, 1, y.shape[3]), bias=np.zeros(c, np.float32))
            h = b.add(h, y) if (s == 1 or i > 0) and cin == c else y
    h = b.conv2d(h, _w(1280, 1, 1, h.shape[3]), bias=np.zeros(1280, np.float32), activation="relu6")
    h = b.reshape(b.global_avg_pool(h), (1, 1280))
    b.output(b.fully_connected(h, _w(1000, 1280), bias=np.zeros(1000, np.float32)))
    return b.build()


# (network, builder, numeric, threads, published ms, source)
LCE = "Larq Compute Engine benchmarks, Pi 4B @ 1.5 GHz, 64-bit (docs.larq.dev/compute-engine/benchmark)"
XNN = "XNNPACK README, Raspberry Pi 4 (BCM2711) arm64, multi-threaded (github.com/google/XNNPACK)"
CASES = [
    ("QuickNet (LCE)", quicknet, "as-is", 1, 45.0, LCE),
    ("QuickNet (LCE)", quicknet, "as-is", 4, 20.8, LCE),
    ("MobileNetV1 fp32", mobilenet_v1, "as-is", 4, 77.0, XNN),
    ("MobileNetV2 fp32", mobilenet_v2, "as-is", 4, 46.0, XNN),
    ("MobileNetV1 int8", mobilenet_v1, "int8", 4, 24.0, XNN),
    ("MobileNetV2 int8", mobilenet_v2, "int8", 4, 17.0, XNN),
]


def main():
    dev = get_device("rpi4b")
    graphs = {}
    print("| network | threads | published ms | predicted ms (estimated) | predicted / published | source |")
    print("|---|---|---|---|---|---|")
    for name, build, numeric, threads, pub, src in CASES:
        if build.__name__ not in graphs:
            graphs[build.__name__] = build()
        g = graphs[build.__name__]
        est = estimate(g, dev, threads=threads, engine="optimized", numeric=numeric)
        print(f"| {name} | {threads} | {pub:.1f} | {est['total_ms']:.1f} | {est['total_ms'] / pub:.2f} | {src} |")
        if __import__("os").environ.get("VERBOSE"):
            by = {}
            for l in est["layers"]:
                by[l["class"]] = by.get(l["class"], 0) + l["time_ms"]
            print("   by class:", {k: round(v, 2) for k, v in by.items()})


if __name__ == "__main__":
    main()
