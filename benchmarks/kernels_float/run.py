"""Float and int8 layers: edgebnn vs XNNPACK called directly; fused HetConv vs the dense conv.

    python benchmarks/kernels_float/run.py [--reps 50] [--threads 1] [--out benchmarks/kernels_float/results.md]

Builds the C library and `bench_layers` (cmake, Release, -DEDGEBNN_BUILD_BENCH=ON) in
build/bench, writes one single-op .ebnn per layer with random weights, and runs each
through bench_layers: the same model's weights and the same input go through
eb_session_run and through XNNPACK operators created directly (xnn_run_operator is
all that is timed there). Each number is the median of --reps runs after 3 warm-ups.
The table goes to --out (markdown) and to stdout.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from peers import cpu_name  # noqa: E402

from edgebnn.format import save  # noqa: E402
from edgebnn.ir import GraphBuilder  # noqa: E402


def build(build_dir: Path) -> Path:
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    "-DEDGEBNN_BUILD_BENCH=ON"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "bench_layers"], check=True,
                   stdout=subprocess.DEVNULL)
    exe = build_dir / "runtime" / "bench_layers"
    if not exe.exists():
        sys.exit("bench_layers was not built: XNNPACK not found at configure time (apt install libxnnpack-dev)")
    return exe


rng = np.random.default_rng(0)


def f32(*shape):
    return (rng.standard_normal(shape) * 0.1).astype(np.float32)


def qweights(*shape, axis=0):
    """int8 per-channel symmetric weights and their scales along `axis`."""
    w = rng.integers(-127, 128, size=shape, dtype=np.int8)
    n = shape[axis]
    return w, (rng.random(n) * 0.01 + 0.005).astype(np.float32)


# (label, builder) pairs; each builder returns a GraphBuilder with one op
def float_layers():
    def conv(h, w, c, o, k, s):
        b = GraphBuilder()
        x = b.input("x", (1, h, w, c))
        b.output(b.conv2d(x, f32(o, k, k, c), bias=f32(o), strides=s, padding="same", activation="relu"))
        return b

    def dw(h, w, c, k, s):
        b = GraphBuilder()
        x = b.input("x", (1, h, w, c))
        b.output(b.depthwise_conv2d(x, f32(k, k, c), bias=f32(c), strides=s, padding="same", activation="relu6"))
        return b

    def fc(n, k, o):
        b = GraphBuilder()
        x = b.input("x", (n, k))
        b.output(b.fully_connected(x, f32(o, k), bias=f32(o)))
        return b

    def pool(kind, h, w, c, k, s, padding="valid"):
        b = GraphBuilder()
        x = b.input("x", (1, h, w, c))
        y = (b.max_pool2d if kind == "max" else b.avg_pool2d)(x, kernel=k, strides=s, padding=padding)
        b.output(y)
        return b

    def gap(h, w, c):
        b = GraphBuilder()
        b.output(b.global_avg_pool(b.input("x", (1, h, w, c))))
        return b

    def add(h, w, c):
        b = GraphBuilder()
        b.output(b.add(b.input("a", (1, h, w, c)), b.input("b", (1, h, w, c)), activation="relu"))
        return b

    return [
        ("conv 3x3 56x56x64->64", conv(56, 56, 64, 64, 3, 1)),
        ("conv 3x3 s2 56x56x64->128", conv(56, 56, 64, 128, 3, 2)),
        ("conv 1x1 28x28x128->128", conv(28, 28, 128, 128, 1, 1)),
        ("depthwise 3x3 112x112x32", dw(112, 112, 32, 3, 1)),
        ("depthwise 3x3 s2 56x56x128", dw(56, 56, 128, 3, 2)),
        ("fully connected 1x1024->1000", fc(1, 1024, 1000)),
        ("fully connected 16x512->512", fc(16, 512, 512)),
        ("max pool 2x2 s2 112x112x64", pool("max", 112, 112, 64, 2, 2)),
        ("avg pool 3x3 s1 same 56x56x64", pool("avg", 56, 56, 64, 3, 1, "same")),
        ("global avg pool 7x7x1024", gap(7, 7, 1024)),
        ("add + relu 56x56x64", add(56, 56, 64)),
    ]


def int8_layers():
    SX, ZX, SY, ZY = 0.05, -3, 0.08, 5

    def inp(b, name, shape):
        return b.input(name, shape, dtype="i8", scale=SX, zero_point=ZX)

    def conv(h, w, c, o, k, s):
        b = GraphBuilder()
        wq, ws = qweights(o, k, k, c)
        x = inp(b, "x", (1, h, w, c))
        b.output(b.conv2d(x, b.const(wq, scale=ws, axis=0), bias=rng.integers(-500, 500, o).astype(np.int32),
                          strides=s, padding="same", activation="relu", out_scale=SY, out_zero_point=ZY))
        return b

    def dw(h, w, c, k, s):
        b = GraphBuilder()
        wq, ws = qweights(k, k, c, axis=2)
        x = inp(b, "x", (1, h, w, c))
        b.output(b.depthwise_conv2d(x, b.const(wq, scale=ws, axis=2),
                                    bias=rng.integers(-500, 500, c).astype(np.int32), strides=s, padding="same",
                                    activation="relu6", out_scale=SY, out_zero_point=ZY))
        return b

    def fc(n, k, o):
        b = GraphBuilder()
        wq, ws = qweights(o, k)
        x = inp(b, "x", (n, k))
        b.output(b.fully_connected(x, b.const(wq, scale=ws, axis=0), bias=rng.integers(-500, 500, o).astype(np.int32),
                                   out_scale=SY, out_zero_point=ZY))
        return b

    def maxpool(h, w, c):
        b = GraphBuilder()
        b.output(b.max_pool2d(inp(b, "x", (1, h, w, c)), kernel=2, strides=2))
        return b

    def gap(h, w, c):
        b = GraphBuilder()
        b.output(b.global_avg_pool(inp(b, "x", (1, h, w, c)), out_scale=SY, out_zero_point=ZY))
        return b

    def add(h, w, c):
        b = GraphBuilder()
        b.output(b.add(inp(b, "a", (1, h, w, c)), b.input("b", (1, h, w, c), dtype="i8", scale=0.03, zero_point=2),
                       activation="relu", out_scale=SY, out_zero_point=ZY))
        return b

    return [
        ("int8 conv 3x3 56x56x64->64", conv(56, 56, 64, 64, 3, 1)),
        ("int8 conv 1x1 28x28x128->128", conv(28, 28, 128, 128, 1, 1)),
        ("int8 depthwise 3x3 112x112x32", dw(112, 112, 32, 3, 1)),
        ("int8 fully connected 1x1024->1000", fc(1, 1024, 1000)),
        ("int8 max pool 2x2 s2 112x112x64", maxpool(112, 112, 64)),
        ("int8 global avg pool 7x7x1024", gap(7, 7, 1024)),
        ("int8 add + relu 56x56x64", add(56, 56, 64)),
    ]


def hetconv_layers():
    out = []
    for h, c in ((56, 64), (28, 128)):
        b = GraphBuilder()
        x = b.input("x", (1, h, h, c))
        b.output(b.conv2d(x, f32(c, 3, 3, c), bias=f32(c), padding="same"))
        dense = (f"dense conv 3x3 {h}x{h}x{c}->{c}", b)
        hets = []
        for p in (2, 4, 8):  # P = 1 is the dense conv itself (the format has no empty w1)
            b = GraphBuilder()
            x = b.input("x", (1, h, h, c))
            b.output(b.hetconv2d(x, f32(c, 3, 3, c // p), f32(c, c - c // p), p, bias=f32(c), padding="same"))
            flops = 2 * h * h * c * (9 * (c // p) + (c - c // p))
            hets.append((p, flops, b))
        out.append((dense, hets, 2 * h * h * c * 9 * c))
    return out


def bench(exe: Path, b: GraphBuilder, tmp: Path, reps: int, threads: int, peer: GraphBuilder | None = None):
    path = tmp / "m.ebnn"
    save(b.build(), path)
    cmd = [str(exe), str(path), str(reps), str(threads)]
    if peer is not None:
        save(peer.build(), tmp / "peer.ebnn")
        cmd.append(str(tmp / "peer.ebnn"))
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    eb, x, backend, ref = r.stdout.split()
    return float(eb), float(x), backend, float(ref)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "bench")
    args = ap.parse_args()
    exe = build(args.build_dir)
    lines = [f"# Float and int8 layers: edgebnn vs XNNPACK called directly", "",
             f"`python benchmarks/kernels_float/run.py --reps {args.reps} --threads {args.threads}` on "
             f"{platform.machine()} ({cpu_name()}), {args.threads} thread(s); medians of "
             f"{args.reps} runs (reference kernels: 5), microseconds. Ratio = edgebnn / XNNPACK direct "
             "(1.00 = no overhead); ref = the same model on the reference kernels (EDGEBNN_XNNPACK=0 EDGEBNN_KERNELS=ref).", "",
             "| layer | edgebnn backend | edgebnn us | XNNPACK direct us | ratio | ref us | ref / edgebnn |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        layers = float_layers()
        try:
            layers += int8_layers()
        except TypeError as e:  # builds without int8 layer support in the builder
            print(f"skipping int8 layers: {e}", file=sys.stderr)
        for label, b in layers:
            eb, x, backend, ref = bench(exe, b, tmp, args.reps, args.threads)
            ratio = f"{eb / x:.2f}" if x > 0 else "-"
            lines.append(f"| {label} | {backend} | {eb:.1f} | {x:.1f} | {ratio} | {ref:.1f} | {ref / eb:.1f} |")
            print(lines[-1], flush=True)
        lines += ["", "## HetConv: fused kernel by part P vs the dense 3x3 conv (XNNPACK)", "",
                  "P = 1 is the dense layer itself, run by XNNPACK. Speed-up = dense XNNPACK time / HetConv time; "
                  "FLOPs ratio = HetConv FLOPs / dense FLOPs.", "",
                  "| layer | P | FLOPs ratio | fused us | dense XNNPACK us | speed-up | ref HetConv us |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for (dlabel, db), hets, dflops in hetconv_layers():
            for p, flops, b in hets:
                eb, dense_x, _, ref = bench(exe, b, tmp, args.reps, args.threads, peer=db)
                lines.append(f"| {dlabel.replace('dense conv', 'hetconv')} | {p} | {flops / dflops:.2f} | {eb:.1f} | "
                             f"{dense_x:.1f} | {dense_x / eb:.2f} | {ref:.1f} |")
                print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
