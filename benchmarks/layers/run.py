"""Binary layers of a Bi-Real / ResNet-18 network against the same layers in fp32, in one run.

    python benchmarks/layers/run.py [--reps 50] [--threads 1] [--out benchmarks/layers/results.md]

For each 3x3 conv of ResNet-18 (56x56x64 ... 7x7x512, stride 1, pad 1, batch 1) and a 4096x4096
fully connected layer it times:
  * edgebnn's binary layer (the BCONV2D / BFULLY_CONNECTED op alone, from the runtime's per-op
    timer; its input arrives packed and a conv's output leaves as packed bits through integer
    thresholds, as between the binary layers of a converted network),
  * the same layer in fp32 through XNNPACK (edgebnn's CONV2D / FULLY_CONNECTED op on the xnnpack
    backend, measured at 1.00x of XNNPACK called directly: benchmarks/kernels_float),
  * onnxruntime (a one-node ONNX model, session.run) and PyTorch (F.conv2d / F.linear),
interleaving the engines run by run so machine noise hits them alike. Medians; ratio = fastest
fp32 time / binary time. Not part of the test suite: speed is shown here, not asserted.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAYERS = [("conv3x3 56x56x64", 56, 64), ("conv3x3 28x28x128", 28, 128), ("conv3x3 14x14x256", 14, 256),
          ("conv3x3 7x7x512", 7, 512)]
FC = ("FC 4096x4096", None, 4096)


def _edgebnn_models(tmp: Path, hw: int | None, c: int, o: int, rng):
    from edgebnn.format import save
    from edgebnn.ir import GraphBuilder
    bb = GraphBuilder()
    fb = GraphBuilder()
    if hw is None:
        wb = np.where(rng.random((o, c)) < 0.5, 1, -1)
        x = bb.input("x", (1, c))
        bb.output(bb.bfully_connected(bb.sign_pack(x), bb.const_bits(wb), multiplier=np.ones(o, np.float32),
                                      name="layer"))
        xf = fb.input("x", (1, c))
        fb.output(fb.fully_connected(xf, fb.const(rng.standard_normal((o, c)).astype(np.float32)), name="layer"))
    else:
        wb = np.where(rng.random((o, 3, 3, c)) < 0.5, 1, -1)
        x = bb.input("x", (1, hw, hw, c))
        # packed in, packed out (integer thresholds): how binary convs run inside a converted network
        y = bb.bconv2d(bb.sign_pack(x), bb.const_bits(wb), padding="same", thresholds=np.zeros(o, np.int32),
                       directions=np.ones(o, np.int32), name="layer")
        bb.output(bb.unpack(y))
        xf = fb.input("x", (1, hw, hw, c))
        w = fb.const(rng.standard_normal((o, 3, 3, c)).astype(np.float32))
        fb.output(fb.conv2d(xf, w, padding="same", name="layer"))
    return save(bb.build(), tmp / "b.ebnn"), save(fb.build(), tmp / "f.ebnn")


class _OpTime:
    """Runtime whose run() returns the time of the op named 'layer' (ns -> s)."""

    def __init__(self, path, threads):
        from edgebnn import Runtime
        self.last = 0
        self.rt = Runtime(path, threads=threads, op_timer=self._hook)
        self.index = [o.name for o in self.rt.ops].index("layer")
        self.backend = self.rt.ops[self.index].backend

    def _hook(self, i, ns):
        if i == self.index:
            self.last = ns

    def __call__(self, x):
        self.rt.run(x)
        return self.last * 1e-9


def _onnx_session(hw, c, o, rng, threads):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    if hw is None:
        w = rng.standard_normal((c, o)).astype(np.float32)
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c])
        yi = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, o])
    else:
        w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
        node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
        xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])
        yi = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, o, hw, hw])
    g = helper.make_graph([node], "layer", [xi], [yi], [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(reps: int, threads: int):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, hw, c in LAYERS + [FC]:
        o = c if hw is not None else FC[2]
        with tempfile.TemporaryDirectory() as d:
            bpath, fpath = _edgebnn_models(Path(d), hw, c, o, rng)
            binary, xnn = _OpTime(bpath, threads), _OpTime(fpath, threads)
            shape_nhwc = (1, c) if hw is None else (1, hw, hw, c)
            x_nhwc = rng.standard_normal(shape_nhwc).astype(np.float32)
            x_nchw = x_nhwc if hw is None else np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
            sess = _onnx_session(hw, c, o, rng, threads)
            xt = torch.from_numpy(x_nchw)
            wt = torch.randn(o, c) if hw is None else torch.randn(o, c, 3, 3)
            engines = {
                "binary": lambda: binary(x_nhwc),
                "xnnpack": lambda: xnn(x_nhwc),
                "onnxruntime": lambda: _timed(lambda: sess.run(None, {"x": x_nchw})),
                "pytorch": lambda: _timed(lambda: F.linear(xt, wt) if hw is None else F.conv2d(xt, wt, padding=1)),
            }
            times = {k: [] for k in engines}
            with torch.no_grad():
                for _ in range(5):
                    for f in engines.values():
                        f()
                for _ in range(reps):
                    for k, f in engines.items():
                        times[k].append(f())
        med = {k: statistics.median(v) for k, v in times.items()}
        fastest = min(("xnnpack", "onnxruntime", "pytorch"), key=lambda k: med[k])
        rows.append((name, binary.backend, med, fastest))
        print(f"{name}: binary {med['binary'] * 1e3:.3f} ms, fastest fp32 {fastest} "
              f"{med[fastest] * 1e3:.3f} ms -> {med[fastest] / med['binary']:.1f}x", file=sys.stderr)
    return rows


def table(rows, reps, threads) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = [f"# Binary layers vs the same layers in fp32 ({threads} thread{'s' if threads > 1 else ''})", "",
           f"`python benchmarks/layers/run.py --reps {reps} --threads {threads}` on {cpu} "
           f"({os.cpu_count()} cores visible); medians of {reps} interleaved runs, milliseconds.",
           "Binary = the BCONV2D/BFULLY_CONNECTED op alone, as it runs inside a converted network: packed "
           "input; conv output thresholded to packed bits (BN + sign folded), FC output float.",
           "", "| layer | binary (backend) | XNNPACK fp32 | onnxruntime fp32 | PyTorch fp32 | fastest fp32 / binary |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, backend, med, fastest in rows:
        out.append(f"| {name} | {med['binary'] * 1e3:.3f} ({backend}) | {med['xnnpack'] * 1e3:.3f} | "
                   f"{med['onnxruntime'] * 1e3:.3f} | {med['pytorch'] * 1e3:.3f} | "
                   f"**{med[fastest] / med['binary']:.1f}x** ({fastest}) |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    a = ap.parse_args()
    text = table(bench(a.reps, a.threads), a.reps, a.threads)
    a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
