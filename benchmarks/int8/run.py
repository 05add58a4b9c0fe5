"""Post-training int8: accuracy and latency of edgebnn's int8 against float and against
onnxruntime's own static quantization of the same float model with the same calibration data.

For each dataset (MNIST, Fashion-MNIST) and zoo model (MobileNetV1 / V2 at width 0.5 and the
BinaryNet-style CNN, whose stem and classifier are the float layers), it trains the model
(seed 0; cached under build/int8-bench), then on the full test set measures:

  float      edgebnn, the float conversion (same predictions as PyTorch)
  ours int8  edgebnn convert --int8 --calibration (first N training images, min/max ranges)
  ort int8   onnxruntime.quantization.quantize_static, QDQ, per-channel, MinMax, same images

and the latency of one inference, 1 thread, medians of interleaved runs. A MobileNetV2 1.0 at
224x224 (untrained weights: a latency and file-size row) runs the same comparison for speed.

    python benchmarks/int8/run.py                    # the table in docs/int8.md
    python benchmarks/int8/run.py --calibration-sets 5 --no-big   # accuracy over 5 disjoint calibration sets
    python benchmarks/int8/run.py --epochs 1 --datasets mnist --models binarynet_cnn
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# one thread for NumPy's BLAS too: its idle pool spins and slows both engines on a 2-core machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from peers import ort_session, ort_static_int8  # noqa: E402
CACHE = ROOT / "build" / "int8-bench"
MODELS = {
    "mobilenet_v1": ("mobilenet_v1", {"width": 0.5, "num_classes": 10, "in_channels": 1}),
    "mobilenet_v2": ("mobilenet_v2", {"width": 0.5, "num_classes": 10, "in_channels": 1}),
    "binarynet_cnn": ("binarynet_cnn", {"method": "bnn", "num_classes": 10, "in_channels": 1}),
}


def train(dataset: str, name: str, epochs: int, log) -> torch.nn.Module:
    from edgebnn.datasets import load_split
    from edgebnn.nn.training import TrainConfig, fit
    from edgebnn.zoo import create

    zoo, kw = MODELS[name]
    model = create(zoo, **kw)
    path = CACHE / f"{dataset}-{name}-e{epochs}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    x, y = load_split(dataset, "train")
    t = time.time()
    torch.manual_seed(0)
    fit(model, x, y, (1, 28, 28), TrainConfig(epochs=epochs, batch_size=128, lr=2e-3, seed=0))
    log(f"  trained {dataset} {name}: {epochs} epochs in {time.time() - t:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


def ort_int8(model, example, calib: np.ndarray, d: Path):
    """onnxruntime sessions on the float model and on its own static int8 of it (same calibration)."""
    f32, q = ort_static_int8(model, example, calib, d)
    return {"float": ort_session(f32), "int8": ort_session(q)}, q.stat().st_size


def predictions(fn, x: np.ndarray) -> np.ndarray:
    return np.array([int(np.argmax(fn(x[i:i + 1]))) for i in range(len(x))])


def accuracy(fn, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predictions(fn, x) == y))


def latency(fns: dict, x: np.ndarray, rounds: int = 15, reps: int = 20) -> dict[str, float]:
    """Median milliseconds per call; engines interleaved so load on the shared machine hits all alike."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f(x)
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(reps):
                f(x)
            times[k].append((time.perf_counter() - t) / reps * 1e3)
            time.sleep(0.02)  # let a spinning thread pool settle before the next engine
    return {k: statistics.median(v) for k, v in times.items()}


def engines(model, example, calib, d: Path, log, tolerance=0.1):
    from edgebnn import Runtime
    from edgebnn.converters import convert

    f32_path, q_path = d / "float.ebnn", d / "int8.ebnn"
    convert(model, example_input=example, output=f32_path)
    rep = convert(model, example_input=example, output=q_path, int8={"calibration": calib, "tolerance": tolerance})
    kept = rep.int8.get("kept_float", [])
    if kept:
        log(f"  kept in float (tolerance or --int8-min-k): {kept}")
    rf, rq = Runtime(f32_path, threads=1), Runtime(q_path, threads=1)
    sess, ort_bytes = ort_int8(model, example, calib, d)
    fns = {
        "edgebnn float": rf.run,
        "edgebnn int8": rq.run,
        "onnxruntime float": lambda x: sess["float"].run(None, {"x": x})[0],
        "onnxruntime int8": lambda x: sess["int8"].run(None, {"x": x})[0],
    }
    return fns, rep, ort_bytes


def accuracy_over_sets(model, xtr, xt, yte, n: int, sets: int, log) -> dict[str, dict[str, list[float]]]:
    """int8 accuracy of edgebnn and of onnxruntime for each of `sets` disjoint calibration sets of n
    training images: one set's result is within noise of a few test images, a spread is not. Also
    counts the test images whose int8 prediction differs from the float model's ("flips"): accuracy
    can gain or lose by chance, a flip is always error the quantization made."""
    from edgebnn import Runtime
    from edgebnn.converters import convert
    from edgebnn.nn.training import to_input

    with torch.no_grad():
        want = model(torch.as_tensor(xt)).argmax(1).numpy()
    res = {e: {"acc": [], "flips": []} for e in ("edgebnn int8", "edgebnn int8 mse", "onnxruntime int8")}
    for k in range(sets):
        calib = to_input(xtr[k * n:(k + 1) * n], (1, 28, 28)).numpy()
        example = torch.as_tensor(calib[:1])
        with tempfile.TemporaryDirectory() as td:
            got = {}
            for e, method in (("edgebnn int8", "minmax"), ("edgebnn int8 mse", "mse")):
                q = Path(td) / f"int8-{method}.ebnn"
                convert(model, example_input=example, output=q, int8={"calibration": calib, "method": method})
                got[e] = predictions(Runtime(q, threads=1).run, xt)
            ort = ort_session(ort_static_int8(model, example, calib, Path(td))[1])
            got["onnxruntime int8"] = predictions(lambda x: ort.run(None, {"x": x})[0], xt)
        for e, p in got.items():
            res[e]["acc"].append(float(np.mean(p == yte)))
            res[e]["flips"].append(int(np.sum(p != want)))
        log(f"    calibration set {k}: " + ", ".join(f"{e} {100 * v['acc'][-1]:.2f} % ({v['flips'][-1]} flips)"
                                                    for e, v in res.items()))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--calibration", type=int, default=500, help="training images used to calibrate")
    ap.add_argument("--test-limit", type=int, default=0, help="test images (0: all)")
    ap.add_argument("--no-big", action="store_true", help="skip the MobileNetV2 1.0 224x224 latency row")
    ap.add_argument("--calibration-sets", type=int, default=1, metavar="K",
                    help="also measure int8 accuracy with K disjoint calibration sets (mean and spread)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    from edgebnn.datasets import load_split
    from edgebnn.nn.training import to_input

    acc_rows, lat_rows, set_rows = [], [], []
    for ds in args.datasets:
        xtr, _ = load_split(ds, "train")
        xte, yte = load_split(ds, "test")
        if args.test_limit:
            xte, yte = xte[:args.test_limit], yte[:args.test_limit]
        calib = to_input(xtr[:args.calibration], (1, 28, 28)).numpy()
        xt = to_input(xte, (1, 28, 28)).numpy()
        for name in args.models:
            model = train(ds, name, args.epochs, log)
            example = torch.as_tensor(calib[:1])
            with tempfile.TemporaryDirectory() as td:
                fns, rep, _ = engines(model, example, calib, Path(td), log)
                acc = {k: accuracy(f, xt, yte) for k, f in fns.items()}
                lat = latency(fns, xt[:1])
            acc_rows.append((ds, name, acc, rep))
            lat_rows.append((f"{name} ({ds})", lat))
            log(f"  {ds} {name}: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in acc.items()))
            if args.calibration_sets > 1:
                set_rows.append((ds, name, acc["edgebnn float"],
                                 accuracy_over_sets(model, xtr, xt, yte, args.calibration, args.calibration_sets, log)))

    print("| dataset | model | float % | edgebnn int8 % | onnxruntime int8 % | int8 layers | kept float | "
          "file / parameter bytes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for ds, name, acc, rep in acc_rows:
        n8 = sum(1 for layer in rep.layers if layer.kind == "int8" and layer.error is not None)
        params = sum(layer.packed_bytes for layer in rep.layers)
        print(f"| {ds} | {name} | {100 * acc['edgebnn float']:.2f} | {100 * acc['edgebnn int8']:.2f} | "
              f"{100 * acc['onnxruntime int8']:.2f} | {n8} | {', '.join(rep.int8.get('kept_float', [])) or '-'} | "
              f"{rep.file_bytes:,} / {params:,} = {rep.file_bytes / params:.3f} |")

    if set_rows:
        print()
        print(f"int8 accuracy over {args.calibration_sets} disjoint calibration sets of {args.calibration} training "
              f"images (mean, sample standard deviation, min-max):")
        print("edgebnn with min/max ranges (the default, as onnxruntime's MinMax) and with --calibration-method "
              "mse; flips: test images whose int8 prediction differs from float's (mean over the sets).")
        print("| dataset | model | float % | edgebnn int8 % | edgebnn int8 mse % | onnxruntime int8 % | "
              "edgebnn - onnxruntime, mean: minmax / mse | sets edgebnn >= onnxruntime: minmax / mse | "
              "flips: edgebnn / mse / onnxruntime |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        engines_ = ("edgebnn int8", "edgebnn int8 mse", "onnxruntime int8")
        for ds, name, f32, res in set_rows:
            ours, mse, ort = (100 * np.asarray(res[k]["acc"]) for k in engines_)
            flips = " / ".join(f"{np.mean(res[k]['flips']):.1f}" for k in engines_)
            cell = lambda a: f"{a.mean():.2f} +- {a.std(ddof=1):.2f} ({a.min():.2f}-{a.max():.2f})"  # noqa: E731
            print(f"| {ds} | {name} | {100 * f32:.2f} | {cell(ours)} | {cell(mse)} | {cell(ort)} | "
                  f"{(ours - ort).mean():+.3f} / {(mse - ort).mean():+.3f} | "
                  f"{int((ours >= ort).sum())} / {int((mse >= ort).sum())} of {len(ours)} | {flips} |")

    if not args.no_big:
        from edgebnn.zoo import create
        big = create("mobilenet_v2", width=1.0).eval()
        rng = np.random.default_rng(0)
        calib = rng.random((32, 3, 224, 224), dtype=np.float32)
        example = torch.as_tensor(calib[:1])
        with tempfile.TemporaryDirectory() as td:
            # untrained: its classifier's input is ~0 and would stay float by the tolerance; all int8 here
            fns, rep, ort_bytes = engines(big, example, calib, Path(td), log, tolerance=None)
            lat_rows.append(("mobilenet_v2 1.0 224x224", latency(fns, calib[:1], rounds=61, reps=2)))
            params = sum(layer.packed_bytes for layer in rep.layers)
            n_w = sum(layer.params for layer in rep.layers)
            print()
            print(f"MobileNetV2 1.0 int8 file: {rep.file_bytes:,} bytes; its int8 weights and int32 biases: "
                  f"{params:,} bytes ({n_w:,} weights); file / parameters = "
                  f"{rep.file_bytes / params:.3f}; onnxruntime's QDQ file: {ort_bytes:,} bytes")

    print()
    print("| model | edgebnn int8 ms | onnxruntime int8 ms | edgebnn float ms | onnxruntime float ms | "
          "int8: onnxruntime / edgebnn |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, lat in lat_rows:
        print(f"| {name} | {lat['edgebnn int8']:.3f} | {lat['onnxruntime int8']:.3f} | {lat['edgebnn float']:.3f} | "
              f"{lat['onnxruntime float']:.3f} | {lat['onnxruntime int8'] / lat['edgebnn int8']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
