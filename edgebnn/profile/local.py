"""Measuring on this machine, in process, through edgebnn.Runtime.

Produces the same raw record edgebnn-bench prints on a board (init_ms, first_ms, runs_ms,
ops with mean_ns, peak RSS), so one piece of code turns either into a result.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import numpy.random  # noqa: F401  imported up front: its first import (~5 MiB) must not count as the model's memory

from ..runtime import Runtime
from . import energy as _energy


def _inputs(rt: Runtime, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = []
    for spec in rt.inputs:
        if spec.dtype.kind == "f":
            xs.append(rng.uniform(-1, 1, spec.shape).astype(spec.dtype))
        else:
            info = np.iinfo(spec.dtype)
            xs.append(rng.integers(info.min, info.max, spec.shape, dtype=spec.dtype, endpoint=True))
    return xs


def _peak_rss_kib() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r


def _rss_bytes() -> int | None:
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except Exception:
        return None


def measure(model: Path, threads: int, runs: int, warmup: int, progress=None, sensor=None,
            idle_seconds: float = 1.0) -> dict:
    """Time `model` here. With a sensor, its idle power is read first and energy over the timed runs."""
    idle_w = _energy.idle_watts(sensor, idle_seconds) if sensor else None
    rss0, peak0 = _rss_bytes(), _peak_rss_kib()
    t0 = time.perf_counter()
    rt = Runtime(model, threads=threads)
    init_ms = (time.perf_counter() - t0) * 1e3
    xs = _inputs(rt)
    t0 = time.perf_counter()
    rt.run(*xs)
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        rt.run(*xs)
    times = []
    meter = _energy.Meter(sensor) if sensor else None
    if meter:
        meter.start()
    timed0 = time.perf_counter()
    step = max(1, runs // 20)
    for i in range(runs):
        t0 = time.perf_counter()
        rt.run(*xs)
        times.append((time.perf_counter() - t0) * 1e3)
        if progress and (i + 1) % step == 0:
            progress(f"run {i + 1}/{runs}", transient=True)
    timed_ms = (time.perf_counter() - timed0) * 1e3
    energy = None
    if meter:
        joules, secs, samples = meter.stop()
        energy = _energy.measured(sensor.name, joules, secs, runs, idle_w, samples)
    rss1 = _rss_bytes()
    # Per-op times from a second session with the timer hook, so the runs above carry none.
    sums: list[int] = [0] * len(rt.ops)

    def hook(i, ns):
        sums[i] += ns
    with Runtime(model, threads=threads, op_timer=hook) as trt:
        trt.run(*xs)
        sums[:] = [0] * len(sums)
        for _ in range(runs):
            trt.run(*xs)
    ops = [{"name": o.name, "type": o.type, "backend": o.backend, "mean_ns": s / runs} for o, s in zip(rt.ops, sums)]
    raw = {"bench": "edgebnn.Runtime (in process)", "arch": None, "model": str(model),
           "file_bytes": model.stat().st_size, "weight_bytes": rt.weight_bytes, "arena_bytes": rt.arena_bytes,
           "threads": threads, "runs": runs, "warmup": warmup, "init_ms": init_ms, "first_ms": first_ms,
           "timed_ms": timed_ms, "runs_ms": times, "ops": ops,
           "peak_rss_before_kib": peak0, "peak_rss_after_kib": _peak_rss_kib(),
           "rss_growth_bytes": (rss1 - rss0) if rss0 is not None and rss1 is not None else None}
    rt.close()
    return raw, energy
