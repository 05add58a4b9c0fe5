"""Whole networks: Bi-Real-18 converted by edgebnn against its float twin in fp32 engines, in one run.

    python benchmarks/networks/run.py [--reps 20] [--threads 1] [--size 224] [--thread-rows 1,2] [--gap-ms 50]
                                      [--out benchmarks/networks/results.md]

Bi-Real Net 18 (edgebnn.zoo.birealnet18: float stem, 16 binary 3x3 convs with real shortcuts,
float 1x1 downsampling, float classifier) is converted from PyTorch by `edgebnn.convert` and run
by the C runtime. Its float twin (the same network with float convs, zoo `method="float"`) runs
in onnxruntime (torch.onnx.export), PyTorch (eager, no_grad), edgebnn (converted, its float
layers on XNNPACK) and TFLite (the converted twin written by `edgebnn export --to lce`'s writer as
TFLite builtins, run by ai-edge-litert's interpreter, whose default resolver hands the whole float
graph to XNNPACK; fed NHWC, the file's layout; skipped with a note when ai-edge-litert is absent). Engines are interleaved run by run; medians of whole forward passes. Random
weights with randomized BatchNorm statistics: speed does not depend on the values, and the
converter is checked against PyTorch on the same input before timing.

Thread scaling (--thread-rows): edgebnn's Bi-Real-18 and onnxruntime's twin at each thread count,
interleaved in a second loop. Each of those timed runs starts --gap-ms after the previous one
ended: a thread pool keeps spinning for a while after it returns (pthreadpool, onnxruntime's), and
on a 2-core machine a spinning pool starves the next engine's workers.
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


def _version(dist: str) -> str:
    from importlib.metadata import version
    return version(dist)


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _thread_scaling(d: Path, x, threads, reps: int, gap: float) -> dict:
    """Medians per (engine, threads): edgebnn's Bi-Real-18 and onnxruntime's float twin."""
    if len(threads) < 2:
        return {}
    import onnxruntime as ort

    from edgebnn import Runtime
    engines = {}
    for t in threads:
        rt = Runtime(d / "bireal.ebnn", threads=t)
        engines[("edgebnn Bi-Real-18 (binary)", t)] = (lambda rt=rt: rt.run(x))
    for t in threads:
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(d / "twin.onnx"), so, providers=["CPUExecutionProvider"])
        engines[("onnxruntime float twin", t)] = (lambda s=sess: s.run(None, {s.get_inputs()[0].name: x}))
    times = {k: [] for k in engines}
    for f in engines.values():
        f()
    for _ in range(reps):
        for k, f in engines.items():
            time.sleep(gap)
            times[k].append(_timed(f))
    return {k: statistics.median(v) for k, v in times.items()}


def _tflite_twin(d: Path, x_nchw: np.ndarray, threads: int, want: np.ndarray):
    """The float twin as a TFLite file in ai-edge-litert's interpreter (XNNPACK), checked against
    edgebnn's run of the same .ebnn; None when ai-edge-litert is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        print(f"TFLite float twin skipped: {e} (pip install ai-edge-litert)", file=sys.stderr)
        return None
    from edgebnn.converters.export.lce import export_lce
    from edgebnn.format.reader import load
    export_lce(load(d / "twin.ebnn"), d / "twin.tflite")
    it = Interpreter(model_path=str(d / "twin.tflite"), num_threads=threads)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))

    def run():
        it.set_tensor(i, x)
        it.invoke()
        return it.get_tensor(o)
    diff = float(np.abs(run() - want).max())
    if diff > 1e-4 * float(np.abs(want).max()):
        raise SystemExit(f"TFLite float twin disagrees with edgebnn's: max |diff| {diff:.3g}")
    return run, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--thread-rows", default="1,2", help="thread counts for the scaling table ('' for none)")
    ap.add_argument("--gap-ms", type=float, default=50.0, help="pause before each run of the scaling table")
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
        tfl = _tflite_twin(d, xn, a.threads, rt_f.run(xn))
        if tfl is not None:
            engines["TFLite float twin (XNNPACK)"] = tfl[0]
        times = {k: [] for k in engines}
        with torch.no_grad():
            for f in engines.values():
                f()
            for _ in range(a.reps):
                for k, f in engines.items():
                    times[k].append(_timed(f))
        sizes = {"bireal": (d / "bireal.ebnn").stat().st_size, "twin": (d / "twin.ebnn").stat().st_size}
        scaling = _thread_scaling(d, xn, [int(t) for t in a.thread_rows.split(",") if t], a.reps, a.gap_ms / 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    ours = med["edgebnn Bi-Real-18 (binary)"]
    kinds = rb.to_dict()["totals"]
    lines = [f"# Whole network: Bi-Real-18 at {a.size}x{a.size}, {a.threads} thread(s)", "",
             f"`python benchmarks/networks/run.py --reps {a.reps} --threads {a.threads} --size {a.size} "
             f"--thread-rows {a.thread_rows} --gap-ms {a.gap_ms:g}` "
             f"({os.cpu_count()} cores visible); medians of {a.reps} interleaved forward passes.", "",
             f"Converted Bi-Real-18: {kinds['layers_by_kind']['binary']} binary layers, "
             f"{100 * kinds['binary_share']:.1f} % of ops binary, file {sizes['bireal'] / 2**20:.2f} MiB "
             f"(float twin {sizes['twin'] / 2**20:.1f} MiB); runtime vs PyTorch on the same input: "
             f"max |diff| {rb.verify['max_abs_diff']:.2g}"
             + (f"; TFLite twin vs edgebnn twin: max |diff| {tfl[1]:.2g}." if tfl is not None else ".")
             + (f" Peers: onnxruntime {ort.__version__}, PyTorch {torch.__version__}"
                + (f", ai-edge-litert {_version('ai-edge-litert')}." if tfl is not None else ".")), "",
             "| engine | median ms | vs edgebnn Bi-Real-18 |", "| --- | ---: | ---: |"]
    for k, v in med.items():
        lines.append(f"| {k} | {v * 1e3:.2f} | {v / ours:.2f}x |")
    if scaling:
        ts = sorted({t for _, t in scaling})
        lines += ["", f"Threads ({os.getloadavg()[0]:.1f} load average at the end; runs {a.gap_ms:g} ms apart, "
                  "interleaved; the last column: time at the fewest threads / time at the most):", "",
                  "| engine | " + " | ".join(f"{t} thread(s) ms" for t in ts) + f" | {ts[0]} / {ts[-1]} threads |",
                  "| --- |" + " ---: |" * (len(ts) + 1)]
        for name in dict.fromkeys(k for k, _ in scaling):
            v = [scaling[(name, t)] for t in ts]
            lines.append(f"| {name} | " + " | ".join(f"{x * 1e3:.2f}" for x in v) + f" | **{v[0] / v[-1]:.2f}x** |")
    text = "\n".join(lines) + "\n"
    a.out.write_text(text)
    print(text)
    print(f"float twin converted: {rf.verify}", file=sys.stderr)


if __name__ == "__main__":
    main()
