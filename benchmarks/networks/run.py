"""Whole networks: Bi-Real-18 converted by edgebnn against its float twin in fp32 engines, in one run.

    python benchmarks/networks/run.py [--reps 20] [--threads 1] [--size 224] [--out benchmarks/networks/results.md]

Bi-Real Net 18 (edgebnn.zoo.birealnet18: float stem, 16 binary 3x3 convs with real shortcuts,
float 1x1 downsampling, float classifier) is converted from PyTorch by `edgebnn.convert` and run
by the C runtime. Its float twin (the same network with float convs, zoo `method="float"`) runs
in onnxruntime (torch.onnx.export), PyTorch (eager, no_grad) and edgebnn (converted, its float
layers on XNNPACK). Engines are interleaved run by run; medians of whole forward passes. Random
weights with randomized BatchNorm statistics: speed does not depend on the values, and the
converter is checked against PyTorch on the same input before timing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _randomize_bn(model, seed=0):
    import torch
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    a = ap.parse_args()

    import onnxruntime as ort
    import torch

    import edgebnn
    from edgebnn import Runtime
    from edgebnn.zoo import create

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    shape = (1, 3, a.size, a.size)
    x = torch.rand(shape)
    binary = _randomize_bn(create("birealnet18"))
    twin = _randomize_bn(create("birealnet18", method="float"))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        rb = edgebnn.convert(binary, example_input=x, output=d / "bireal.ebnn")
        rf = edgebnn.convert(twin, example_input=x, output=d / "twin.ebnn")
        torch.onnx.export(twin, (x,), str(d / "twin.onnx"), dynamo=False, opset_version=17)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(d / "twin.onnx"), so, providers=["CPUExecutionProvider"])
        rt_b, rt_f = Runtime(d / "bireal.ebnn", threads=a.threads), Runtime(d / "twin.ebnn", threads=a.threads)
        xn = x.numpy()
        engines = {
            "edgebnn Bi-Real-18 (binary)": lambda: rt_b.run(xn),
            "edgebnn float twin (XNNPACK)": lambda: rt_f.run(xn),
            "onnxruntime float twin": lambda: sess.run(None, {sess.get_inputs()[0].name: xn}),
            "PyTorch float twin": lambda: twin(x),
        }
        times = {k: [] for k in engines}
        with torch.no_grad():
            for f in engines.values():
                f()
            for _ in range(a.reps):
                for k, f in engines.items():
                    times[k].append(_timed(f))
        sizes = {"bireal": (d / "bireal.ebnn").stat().st_size, "twin": (d / "twin.ebnn").stat().st_size}
    med = {k: statistics.median(v) for k, v in times.items()}
    ours = med["edgebnn Bi-Real-18 (binary)"]
    kinds = rb.to_dict()["totals"]
    lines = [f"# Whole network: Bi-Real-18 at {a.size}x{a.size}, {a.threads} thread(s)", "",
             f"`python benchmarks/networks/run.py --reps {a.reps} --threads {a.threads} --size {a.size}` "
             f"({os.cpu_count()} cores visible); medians of {a.reps} interleaved forward passes.", "",
             f"Converted Bi-Real-18: {kinds['layers_by_kind']['binary']} binary layers, "
             f"{100 * kinds['binary_share']:.1f} % of ops binary, file {sizes['bireal'] / 2**20:.2f} MiB "
             f"(float twin {sizes['twin'] / 2**20:.1f} MiB); runtime vs PyTorch on the same input: "
             f"max |diff| {rb.verify['max_abs_diff']:.2g}.", "",
             "| engine | median ms | vs edgebnn Bi-Real-18 |", "| --- | ---: | ---: |"]
    for k, v in med.items():
        lines.append(f"| {k} | {v * 1e3:.2f} | {v / ours:.2f}x |")
    text = "\n".join(lines) + "\n"
    a.out.write_text(text)
    print(text)
    print(f"float twin converted: {rf.verify}", file=sys.stderr)


if __name__ == "__main__":
    main()
