"""QuickNet, QuickNetSmall, QuickNetLarge (larq-zoo) converted by Larq Compute Engine's own converter,
imported by edgebnn, checked against LCE's interpreter and timed against it, in one run.

    python benchmarks/networks/lce_zoo.py [--cache build/lce-zoo] [--reps 7] [--threads 1,2] [--out benchmarks/networks/lce_zoo.md]

Needs TensorFlow + larq + larq-zoo + larq-compute-engine 0.16 (NumPy 1) and edgebnn in one venv:

    python -m venv /work/venvs/lcezoo-tf
    /work/venvs/lcezoo-tf/bin/pip install "tensorflow-cpu==2.16.*" "tf-keras==2.16.*" "larq==0.14.*" \\
        "larq-compute-engine==0.16.0" "larq-zoo==2.4.*" "numpy<2" click psutil
    /work/venvs/lcezoo-tf/bin/pip install --no-deps .

(a) Each network is built with weights=None (no download) at 224x224x3, its BatchNorm statistics
randomized (the identity BN of an untrained model would make every threshold trivial), and written
by larq_compute_engine.convert_keras_model to the cache folder (kept outside git; reused when
there). The converted model outputs the logits as well as the softmax, so the check sees values
that the softmax would squash. (b) edgebnn converts each .tflite, and its runtime's outputs on a
random input are compared with LCE's interpreter. (c) edgebnn and LCE's interpreter in each mode
its constructor exposes (default, reference bconv, indirect BGEMM, XNNPACK delegate) run
interleaved, run by run, on the same input; medians of whole forward passes. (d) edgebnn at 1 and
at 2 threads, interleaved (runs --gap-ms apart), for the scaling ratio. (e) Peak resident memory:
`edgebnn run` on the converted file and LCE's interpreter on the .tflite, each one inference in a
fresh process (ru_maxrss of that child alone), with a process that only imports NumPy as the floor
both share.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")   # larq 0.14 is written against Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

NETS = ("QuickNetSmall", "QuickNet", "QuickNetLarge")
# LiteInterpreter(model, threads, use_reference_bconv, use_indirect_bgemm, use_xnnpack)
LCE_MODES = {"LCE default": (False, False, False), "LCE indirect BGEMM": (False, True, False),
             "LCE XNNPACK": (False, False, True), "LCE reference bconv": (True, False, False)}


def make(name: str, path: Path, seed: int = 0) -> None:
    """Convert one larq-zoo network with LCE's converter (needs TensorFlow)."""
    import larq_zoo as lqz
    import tensorflow as tf
    from larq_compute_engine import convert_keras_model
    tf.keras.utils.set_random_seed(seed)
    m = getattr(lqz.sota, name)(weights=None, input_shape=(224, 224, 3))
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            new = {"gamma": rng.uniform(0.5, 1.5, n), "beta": rng.normal(0, 0.3, n),
                   "moving_mean": rng.normal(0, 0.5, n), "moving_variance": rng.uniform(0.5, 2, n)}
            layer.set_weights([new[v.name.split("/")[-1].split(":")[0]] for v in layer.weights])
    last = m.layers[-1]
    logits = last.input if getattr(last, "activation", None) is tf.keras.activations.softmax else None
    model = tf.keras.Model(m.input, [logits, m.output] if logits is not None else m.output, name=name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(convert_keras_model(model))


def lce_wrapper():
    from larq_compute_engine.tflite.python import interpreter_wrapper_lite as w
    return w


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _with_output(data: bytes, tensor: int) -> bytes:
    """The same flatbuffer with every subgraph output slot pointing at `tensor` (patched in place):
    how LCE's interpreter, which has no tensor inspection, shows an intermediate value."""
    import struct

    from edgebnn.converters.tflite.schema import Table, _Buf
    buf = _Buf(data)
    start, n = Table(buf, buf.u32(0)).tables(2)[0]._vec(2)
    out = bytearray(data)
    for k in range(n):
        struct.pack_into("<i", out, start + 4 * k, tensor)
    return bytes(out)


def first_flip(path: Path, x: np.ndarray) -> str:
    """Walk the LceQuantize inputs in order and find the first whose signs differ between edgebnn and
    LCE. Up to there both ran on the same bits, so that input must agree to float rounding, and the
    flipped signs must sit on values within rounding of 0; otherwise the import is wrong (raises)."""
    from edgebnn.converters.tflite import load_tflite, lower
    from edgebnn.format.writer import to_bytes
    from edgebnn.runtime import Runtime
    model, data = load_tflite(path)
    w = lce_wrapper()
    for op in model.ops:
        if op.name != "LceQuantize":
            continue
        t = op.inputs[0]
        want = np.asarray(w.LiteInterpreter(_with_output(data, t), 1, False, False, False).predict([x])[0])
        got = Runtime(to_bytes(lower(model, path, outputs=[t])[0])).run(x)
        flips = (got < 0) != (want < 0)
        if not flips.any():
            continue
        rng_ = float(np.abs(want).max())
        diff = float(np.abs(got - want).max())
        near = float(np.abs(want[flips]).max())
        where = f"LceQuantize #{op.index} ('{model.tensors[t].name.split(';')[0]}')"
        if diff > 1e-5 * rng_ or near > 1e-5 * rng_:
            raise SystemExit(f"{path.name}: edgebnn's import differs from LCE's interpreter at the input of {where}: "
                             f"max |diff| {diff:.3g} of range {rng_:.3g}, sign flips at |x| up to {near:.3g}")
        return (f"first sign flips at the input of {where}: {int(flips.sum())} of {flips.size} values, all "
                f"abs <= {near:.2g} (range {rng_:.3g}; max abs diff there {diff:.2g}): float rounding")
    return "no sign differs at any LceQuantize"


def check(name: str, path: Path, x: np.ndarray, ebnn: Path) -> str:
    """edgebnn's import of the file vs LCE's interpreter on x: one line for the report. Binarization
    amplifies float rounding (a value within rounding of 0 may binarize either way, and the flip
    moves a binary dot product by 2), so deep networks are compared by argmax / top-5 and by
    first_flip(), which fails on anything but rounding."""
    from edgebnn.converters import convert
    from edgebnn.runtime import Runtime
    rep = convert(str(path), output=str(ebnn), verify=False)
    with Runtime(ebnn) as rt:
        got = rt.run(x)
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    want = lce_wrapper().LiteInterpreter(path.read_bytes(), 1, False, False, False).predict([x])
    parts = []
    for w in want:
        softmax = bool(w.min() >= 0 and abs(float(w.sum()) - 1) < 1e-3)
        g = next(g for g in got if g.shape == w.shape and
                 (len(got) == 1 or bool(g.min() >= 0 and abs(float(g.sum()) - 1) < 1e-3) == softmax))
        diff = float(np.abs(g - w).max())
        rel = diff / max(float(np.abs(w).max()), 1e-30)
        top5 = len(set(np.argsort(-g.ravel())[:5]) & set(np.argsort(-w.ravel())[:5]))
        parts.append(f"{'softmax' if softmax else 'logits'}: max abs diff {diff:.2g} ({rel:.1e} of range), "
                     f"argmax {'equal' if g.argmax() == w.argmax() else 'DIFFERS'}, top-5 overlap {top5}/5")
    kinds = rep.to_dict()["totals"]
    return (f"| {name} | {path.stat().st_size / 2**20:.2f} MiB | {kinds['layers_by_kind'].get('binary', 0)} | "
            f"{'; '.join(parts)} | {first_flip(path, x)} |")


def bench(path: Path, ebnn: Path, x: np.ndarray, threads: int, reps: int, modes: dict,
          gap: float) -> dict[str, float]:
    from edgebnn.runtime import Runtime
    w = lce_wrapper()
    data = path.read_bytes()
    rt = Runtime(ebnn, threads=threads)
    engines = {"edgebnn": lambda: rt.run(x)}
    for mode, flags in modes.items():
        it = w.LiteInterpreter(data, threads, *flags)
        engines[mode] = (lambda it=it: it.predict([x]))
    times = {k: [] for k in engines}
    for f in engines.values():   # warm-up: first-run allocation and packing
        f()
    for _ in range(reps):
        for k, f in engines.items():
            time.sleep(gap)   # let the last engine's idle workers stop spinning (see --gap-ms)
            times[k].append(_timed(f))
    rt.close()
    return {k: statistics.median(v) for k, v in times.items()}


# One inference in LCE's interpreter, in its own process (argv: model, mode flags). The
# interpreter's extension module is loaded from its file: `import larq_compute_engine` would
# import TensorFlow (the converter) as well, ~0.5 GB that the interpreter itself does not need.
_LCE_ONCE = """
import importlib.util, sys, numpy as np
spec = importlib.util.find_spec("larq_compute_engine")
so = next((__import__("pathlib").Path(spec.origin).parent / "tflite" / "python").glob("interpreter_wrapper_lite*.so"))
spec = importlib.util.spec_from_file_location("interpreter_wrapper_lite", so)
w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
it = w.LiteInterpreter(open(sys.argv[1], "rb").read(), 1, *(f == "1" for f in sys.argv[2:5]))
it.predict([np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)])
"""


# `edgebnn run ...` as `python -m edgebnn` would run it (argv: the CLI's arguments)
_EDGEBNN_CLI = "import runpy, sys; sys.argv[0] = 'edgebnn'; runpy.run_module('edgebnn', run_name='__main__')"
# Records the process's own high-water mark at exit. Not ru_maxrss from wait4: Linux carries the
# parent's peak into a forked child's maxrss across exec, so this benchmark's own size would leak in.
_HWM = ("import atexit, os\n"
        "def _hwm():\n"
        "    with open(os.environ['EB_HWM_OUT'], 'w') as f:\n"
        "        f.write([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
        "atexit.register(_hwm)\n")


def peak_rss_kib(code: str, *args: str) -> int:
    """Peak resident set (VmHWM) of a fresh Python process running code with args, KiB."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "hwm"
        r = subprocess.run([sys.executable, "-c", _HWM + code, *args], env={**os.environ, "EB_HWM_OUT": str(out)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode:
            raise RuntimeError(f"{code[:60]!r} {' '.join(args)} failed: {r.stderr[-2000:]}")
        return int(out.read_text())


def memory_row(name: str, path: Path, ebnn: Path) -> str:
    ours = peak_rss_kib(_EDGEBNN_CLI, "run", str(ebnn), "--threads", "1")
    lce = {m: peak_rss_kib(_LCE_ONCE, str(path), *("1" if f else "0" for f in LCE_MODES[m]))
           for m in ("LCE default", "LCE indirect BGEMM")}
    floor = peak_rss_kib("import numpy")
    cells = " | ".join(f"{v / 1024:.1f} ({v / ours:.2f}x)" for v in lce.values())
    return f"| {name} | {ours / 1024:.1f} | {cells} | {floor / 1024:.1f} |"


def thread_scaling(ebnn: Path, x: np.ndarray, threads: list[int], reps: int, gap: float) -> dict[int, float]:
    """edgebnn's median per thread count, the thread counts interleaved run by run."""
    from edgebnn.runtime import Runtime
    rts = {t: Runtime(ebnn, threads=t) for t in threads}
    times = {t: [] for t in threads}
    for rt in rts.values():
        rt.run(x)
    for _ in range(reps):
        for t, rt in rts.items():
            time.sleep(gap)
            times[t].append(_timed(lambda: rt.run(x)))
    for rt in rts.values():
        rt.close()
    return {t: statistics.median(v) for t, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("build/lce-zoo"))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--modes", default=",".join(LCE_MODES), help="LCE interpreter modes to time")
    ap.add_argument("--gap-ms", type=float, default=50.0,
                    help="pause before each timed run: with 2 threads on 2 cores, the previous engine's "
                         "thread pool still spins after it returns and starves the next one's workers")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory table")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("lce_zoo.md"))
    a = ap.parse_args()
    nets = [n for n in a.nets.split(",") if n]
    modes = {m: LCE_MODES[m] for m in a.modes.split(",") if m}
    threads = [int(t) for t in a.threads.split(",")]
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    checks, rows, mem_rows, scale_rows = [], [], [], []
    load0 = os.getloadavg()[0]
    for name in nets:
        path = a.cache / f"{name}.tflite"
        if not path.exists():
            print(f"converting {name} with LCE's converter -> {path}", flush=True)
            make(name, path)
        ebnn = a.cache / f"{name}.ebnn"
        checks.append(check(name, path, x, ebnn))
        print(checks[-1], flush=True)
        if not a.no_memory:
            mem_rows.append(memory_row(name, path, ebnn))
            print(mem_rows[-1], flush=True)
        if len(threads) > 1:
            sc = thread_scaling(ebnn, x, threads, a.reps, a.gap_ms / 1e3)
            scale_rows.append(f"| {name} | " + " | ".join(f"{sc[t] * 1e3:.1f}" for t in threads) +
                              f" | **{sc[threads[0]] / sc[threads[-1]]:.2f}x** |")
            print(scale_rows[-1], flush=True)
        for t in threads:
            med = bench(path, ebnn, x, t, a.reps, modes, a.gap_ms / 1e3)
            ours = med["edgebnn"]
            cells = " | ".join(f"{med[m] * 1e3:.1f} ({med[m] / ours:.2f}x)" for m in modes)
            rows.append(f"| {name} | {t} | {ours * 1e3:.1f} | {cells} |")
            print(rows[-1], flush=True)
    from importlib.metadata import version
    lines = [f"# larq-zoo QuickNets converted by LCE: edgebnn vs LCE's interpreter", "",
             f"`python benchmarks/networks/lce_zoo.py --reps {a.reps} --threads {a.threads} --gap-ms {a.gap_ms:g}` on "
             f"{platform.machine()} ({os.cpu_count()} cores visible; 1-minute load average {load0:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end: other work shares them); larq-compute-engine "
             f"{version('larq-compute-engine')}. Medians of {a.reps} interleaved forward passes (batch 1, "
             "224x224x3, the same random input); each .tflite made by `larq_compute_engine.convert_keras_model` "
             "from larq-zoo with weights=None and randomized BatchNorm statistics, imported by `edgebnn.convert`. "
             f"Each timed run starts {a.gap_ms:g} ms after the previous one ended: without the pause, at 2 threads the "
             "previous engine's still-spinning workers (pthreadpool, ruy) starve the next engine's and the medians "
             "measure that (edgebnn's 2-thread QuickNet went from ~13 ms alone to ~350 ms interleaved).", "",
             "## Import check (edgebnn runtime vs LCE's interpreter, default mode, 1 thread)", "",
             "| network | .tflite | binary layers | outputs | first difference |", "| --- | ---: | ---: | --- | --- |", *checks, "",
             "## Latency, ms (in brackets: LCE time / edgebnn time; above 1 means edgebnn is faster)", "",
             f"| network | threads | edgebnn | {' | '.join(modes)} |",
             "| --- | ---: | ---: |" + " ---: |" * len(modes), *rows, ""]
    if scale_rows:
        lines += [f"## edgebnn threads, ms (interleaved, runs {a.gap_ms:g} ms apart; last column: "
                  f"{threads[0]} thread(s) / {threads[-1]} threads)", "",
                  "| network | " + " | ".join(f"{t} thread(s)" for t in threads) + " | speedup |",
                  "| --- |" + " ---: |" * (len(threads) + 1), *scale_rows, ""]
    if mem_rows:
        lines += ["## Peak resident memory, MiB (one inference, 1 thread, a fresh process each; in brackets: "
                  "LCE / edgebnn)", "",
                  "`edgebnn run model.ebnn` against LCE's interpreter (Python wrapper, file read into memory) on "
                  "the .tflite it came from; the last column is a Python process that only imports NumPy, "
                  "the floor under both.", "",
                  "| network | edgebnn run | LCE default | LCE indirect BGEMM | python + numpy alone |",
                  "| --- | ---: | ---: | ---: | ---: |", *mem_rows, ""]
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
