"""int8 layers and whole int8 MobileNetV2: edgebnn's q8 kernels vs XNNPACK vs onnxruntime.

    python benchmarks/kernels_int8/run.py [--rounds 15] [--threads 1] [--out benchmarks/kernels_int8/results.md]

Uses the installed edgebnn (pip install . first). Engines on the same model and input:

  q8        the default path: kernels/q8 (AVX512-VNNI GEMM where the CPU has it), bit-exact
  portable  the same kernels' portable C build (EDGEBNN_Q8=portable), what non-VNNI CPUs get
  xnnpack   the q8 backend off (EDGEBNN_Q8=0): int8 conv/FC/add on XNNPACK where it takes them
            (symmetric per-channel weights), else on the reference kernels
  ref       the reference kernels (EDGEBNN_KERNELS=ref): layers only
  ort int8  onnxruntime's static QDQ int8 of the same float model (whole model only)

Layers: single int8 ops shaped like MobileNetV2 1.0 at 224 (stem, 1x1 expand/project,
3x3 depthwise s1/s2, residual add), random per-channel weights. Whole model: the zoo's
MobileNetV2 1.0 at 224 (untrained weights) converted with --int8 on 16 random calibration
images; onnxruntime quantizes the same float model (torch.onnx export) with the same images.
Also the shipped MobileNetV2-quant .tflite (uint8, asymmetric weights: XNNPACK's int8 never
takes those) when /work/shared/data is present. Each number is the median over --rounds of
interleaved rounds (every engine once per round, a few calls each), milliseconds, one thread.
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

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))
from peers import cpu_name, ort_session, ort_static_int8  # noqa: E402

from edgebnn import Runtime  # noqa: E402
from edgebnn.format import save  # noqa: E402
from edgebnn.ir import GraphBuilder  # noqa: E402

ENGINES = {"q8": {}, "portable": {"EDGEBNN_Q8": "portable"}, "xnnpack": {"EDGEBNN_Q8": "0"},
           "ref": {"EDGEBNN_KERNELS": "ref", "EDGEBNN_XNNPACK": "0"}}

rng = np.random.default_rng(0)


def load(path, env: dict, threads: int) -> Runtime:
    """A runtime loaded with env set (backends are picked at load), env restored after."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Runtime(path, threads=threads)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def median_ms(fns: dict, rounds: int, target_s: float = 0.02) -> dict:
    """Median ms per call over interleaved rounds; each round calls every engine enough times
    to take about target_s (the count fixed from a first call)."""
    reps = {}
    for k, f in fns.items():
        f()
        t = time.perf_counter()
        f()
        reps[k] = max(1, int(target_s / max(time.perf_counter() - t, 1e-6)))
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(reps[k]):
                f()
            times[k].append((time.perf_counter() - t) / reps[k] * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def qw(*shape, axis=0):
    w = rng.integers(-127, 128, size=shape, dtype=np.int8)
    return w, (rng.random(shape[axis]) * 0.01 + 0.002).astype(np.float32)


def layers():
    """(label, GraphBuilder) for single int8 ops of MobileNetV2 1.0 at 224."""
    sx, zx = np.float32(0.05), -10

    def inp(b, h, w, c):
        return b.input("x", (1, h, w, c), dtype="i8", scale=sx, zero_point=zx)

    def conv(h, w, c, o, k, s):
        b = GraphBuilder()
        wt, ws = qw(o, k, k, c)
        b.output(b.conv2d(inp(b, h, w, c), b.const(wt, scale=ws, axis=0), bias=rng.integers(-500, 500, o).astype(np.int32),
                          strides=s, padding="same", activation="relu6", out_scale=0.05, out_zero_point=-128))
        return b

    def dw(h, w, c, s):
        b = GraphBuilder()
        wt, ws = qw(3, 3, c, axis=2)
        b.output(b.depthwise_conv2d(inp(b, h, w, c), b.const(wt, scale=ws, axis=2),
                                    bias=rng.integers(-500, 500, c).astype(np.int32), strides=s, padding="same",
                                    activation="relu6", out_scale=0.05, out_zero_point=-128))
        return b

    def add(h, w, c):
        b = GraphBuilder()
        x = inp(b, h, w, c)
        y = b.input("y", (1, h, w, c), dtype="i8", scale=0.07, zero_point=3)
        b.output(b.add(x, y, out_scale=0.09, out_zero_point=-2))
        return b

    return [("stem conv 3x3 s2 224x224x3->32", conv(224, 224, 3, 32, 3, 2)),
            ("1x1 expand 56x56 24->144", conv(56, 56, 24, 144, 1, 1)),
            ("1x1 project 56x56 144->24", conv(56, 56, 144, 24, 1, 1)),
            ("1x1 expand 14x14 64->384", conv(14, 14, 64, 384, 1, 1)),
            ("1x1 project 7x7 960->320", conv(7, 7, 960, 320, 1, 1)),
            ("dw 3x3 s1 56x56x144", dw(56, 56, 144, 1)),
            ("dw 3x3 s2 112x112x96", dw(112, 112, 96, 2)),
            ("dw 3x3 s1 14x14x384", dw(14, 14, 384, 1)),
            ("add 56x56x24", add(56, 56, 24))]


def ort_int8(model, example, calib, d: Path):
    """onnxruntime's static QDQ per-channel int8 of the float model (benchmarks/peers.py)."""
    return ort_session(ort_static_int8(model, example, calib, d)[1])


def whole_models(d: Path, threads: int, rounds: int, log):
    import torch
    from edgebnn.converters import convert
    from edgebnn.zoo import create

    rows = []
    torch.manual_seed(0)
    model = create("mobilenet_v2").eval()
    example = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    calib = np.random.default_rng(2).random((16, 3, 224, 224), dtype=np.float32)
    q_path = d / "mnv2_int8.ebnn"
    convert(model, example_input=torch.from_numpy(example), output=q_path, int8={"calibration": calib})
    rts = {k: load(q_path, env, threads) for k, env in ENGINES.items() if k != "ref"}
    fns = {k: (lambda rt=rt: rt.run(example)) for k, rt in rts.items()}
    try:
        sess = ort_int8(model, example, calib, d)
        fns["ort int8"] = lambda: sess.run(None, {"x": example})
    except Exception as e:  # noqa: BLE001 - the table says why the column is missing
        log(f"  onnxruntime int8 unavailable: {e}")
    backends = sorted({o.backend for o in rts["xnnpack"].ops if o.type in ("CONV2D", "DEPTHWISE_CONV2D")})
    log(f"  zoo MobileNetV2 int8 with EDGEBNN_Q8=0: conv backends {backends}")
    rows.append(("MobileNetV2 1.0 224 int8 (zoo, per-channel)", median_ms(fns, rounds, 0.2)))
    tfl = SHARED / "models" / "tflite" / "mobilenet_v2_1.0_224_quant.tflite"
    if tfl.exists():
        t_path = d / "mnv2_quant.ebnn"
        convert(tfl, output=t_path)
        rts = {k: load(t_path, env, threads) for k, env in ENGINES.items() if k in ("q8", "portable", "xnnpack")}
        x = np.random.default_rng(3).random(rts["q8"].inputs[0].shape).astype(np.float32)
        rows.append(("MobileNetV2 1.0 224 quant .tflite (uint8, asymmetric)",
                     median_ms({k: (lambda rt=rt: rt.run(x)) for k, rt in rts.items()}, rounds, 0.2)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "kernels_int8" / "results.md")
    ap.add_argument("--no-models", action="store_true", help="layers only")
    args = ap.parse_args()
    lines = []

    def log(s):
        print(s, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        layer_rows = []
        for label, b in layers():
            path = d / "layer.ebnn"
            save(b.build(), path)
            rts = {k: load(path, env, args.threads) for k, env in ENGINES.items()}
            ins = [rng.integers(-128, 128, size=i.shape, dtype=np.int8) for i in rts["q8"].inputs]
            outs = {k: rt.run(*ins) for k, rt in rts.items()}
            exact = all(np.array_equal(outs[k], outs["ref"]) for k in ("q8", "portable"))
            t = median_ms({k: (lambda rt=rt: rt.run(*ins)) for k, rt in rts.items()}, args.rounds)
            layer_rows.append((label, t, exact))
            log(f"  {label}: " + ", ".join(f"{k} {v * 1e3:.0f} us" for k, v in t.items()) + f", exact {exact}")
        model_rows = [] if args.no_models else whole_models(d, args.threads, args.rounds, log)

    lines += ["# int8 kernels: q8 vs XNNPACK vs onnxruntime", "",
              f"`python benchmarks/kernels_int8/run.py --rounds {args.rounds} --threads {args.threads}` on "
              f"{platform.machine()} ({cpu_name()}), {args.threads} thread(s); medians of interleaved rounds. "
              "q8 = default path (bit-exact with the reference kernels), portable = its portable C build "
              "(EDGEBNN_Q8=portable), xnnpack = EDGEBNN_Q8=0, ref = EDGEBNN_KERNELS=ref. Layer times include "
              "the Python call (a few us).", "",
              "| layer | q8 us | portable us | xnnpack us | ref us | xnnpack / q8 | q8 == ref |",
              "|---|---|---|---|---|---|---|"]
    for label, t, exact in layer_rows:
        lines.append(f"| {label} | {t['q8'] * 1e3:.0f} | {t['portable'] * 1e3:.0f} | {t['xnnpack'] * 1e3:.0f} | "
                     f"{t['ref'] * 1e3:.0f} | {t['xnnpack'] / t['q8']:.2f} | {'yes' if exact else 'NO'} |")
    if model_rows:
        lines += ["", "| model | q8 ms | portable ms | xnnpack ms | ort int8 ms | xnnpack / q8 | ort int8 / q8 |",
                  "|---|---|---|---|---|---|---|"]
        for label, t in model_rows:
            ort = t.get("ort int8")
            ort_ms = "-" if ort is None else f"{ort:.2f}"
            ort_ratio = "-" if ort is None else f"{ort / t['q8']:.2f}"
            lines.append(f"| {label} | {t['q8']:.2f} | {t['portable']:.2f} | {t['xnnpack']:.2f} | {ort_ms} | "
                         f"{t['xnnpack'] / t['q8']:.2f} | {ort_ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
