"""`edgebnn profile`: latency, memory and energy of a model on a device, measured or estimated.

    from edgebnn.profile import profile
    result = profile("model.ebnn", "host", runs=50)            # measured here
    result = profile("model.ebnn", "rpi4b", host="pi@pi4.local")  # measured on the board over SSH
    result = profile("model.ebnn", "rpi4b")                    # estimated (no board reachable)

Three ways to a result, one result format (docs/profile.md, "JSON schema"):
  local     this machine is the board (or --device host): edgebnn.Runtime in process
  remote    --host: edgebnn-bench copied to the board over SSH (remote.py)
  estimate  neither: the cost model (estimate.py), labelled estimated everywhere
Nothing here imports torch.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from .. import __version__
from ..devices import Device, get_device, host_matches
from ..errors import UserError

SCHEMA = "edgebnn.profile/1"


def latency_stats(runs_ms: list[float]) -> dict:
    s = sorted(runs_ms)

    def pct(q):  # linear interpolation between closest ranks (numpy's default)
        k = (len(s) - 1) * q / 100
        lo, hi = math.floor(k), math.ceil(k)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)
    return {"median": statistics.median(s), "mean": statistics.fmean(s),
            "std": statistics.stdev(s) if len(s) > 1 else 0.0, "p90": pct(90), "p99": pct(99),
            "min": s[0], "max": s[-1], "n": len(s)}


def _summary(model: Path) -> dict:
    from ..commands.inspect import summarize
    return summarize(model)


def _layers(summary: dict, raw: dict | None, est: dict | None, label: str) -> list[dict]:
    out = []
    total_ns = sum(o["mean_ns"] for o in raw["ops"]) if raw else 0
    for i, l in enumerate(summary["layers"]):
        ops = l["flops"] + l["binary_ops"]
        row = {"index": i, "name": l["name"], "op": l["op"], "kind": l["kind"], "backend": l["backend"],
               "flops": l["flops"], "binary_ops": l["binary_ops"], "label": label}
        if raw:
            o = raw["ops"][i]
            t = o["mean_ns"] / 1e6
            row.update(backend=o["backend"], time_ms=t, share=o["mean_ns"] / total_ns if total_ns else 0.0,
                       ops_per_s=ops / (t / 1e3) if t > 0 and ops else None)
        if est:
            e = est["layers"][i]
            row.update(estimated_ms=e["time_ms"], estimated_bound=e["bound"])
            if not raw:
                row.update(time_ms=e["time_ms"], share=e["share"],
                           ops_per_s=ops / (e["time_ms"] / 1e3) if e["time_ms"] > 0 and ops else None)
        out.append(row)
    return out


def _memory(summary: dict, raw: dict | None, device: Device) -> dict:
    m = {"file_bytes": summary["file_bytes"], "weight_bytes": summary["totals"]["weight_bytes"],
         "arena_bytes": summary["arena_bytes"], "device_memory_mib": device.memory["size_mib"],
         "rss_growth_bytes": None, "peak_rss_growth_bytes": None}
    if raw:
        m["weight_bytes"] = raw.get("weight_bytes", m["weight_bytes"])
        m["arena_bytes"] = raw.get("arena_bytes", m["arena_bytes"])
        m["rss_growth_bytes"] = raw.get("rss_growth_bytes")
        if raw.get("peak_rss_after_kib", -1) >= 0 and raw.get("peak_rss_before_kib", -1) >= 0:
            m["peak_rss_growth_bytes"] = (raw["peak_rss_after_kib"] - raw["peak_rss_before_kib"]) * 1024
            m["peak_rss_bytes"] = raw["peak_rss_after_kib"] * 1024
    m["meaning"] = {
        "file_bytes": "the .ebnn file; mmap'd, so only the pages the kernels touch become resident",
        "weight_bytes": "constant tensors (packed 1-bit, int8, fp32) inside the file",
        "arena_bytes": "the one activation + scratch buffer a session allocates (planned at load)",
        "rss_growth_bytes": "resident memory after the runs minus before loading (in-process only)",
        "peak_rss_growth_bytes": "growth of the process's peak RSS (getrusage); 0 when an earlier peak "
                                 "(e.g. Python's imports) was higher",
    }
    return m


def profile(model, device="host", host: str | None = None, threads: int = 1, runs: int = 50, warmup: int = 5,
            estimate_only: bool = False, engine: str = "edgebnn", bench: Path | None = None, ssh_port: int | None = None,
            identity: Path | None = None, ssh_options=(), timeout: float = 300, idle_seconds: float = 1.0,
            sensor_root: Path | None = None, progress=None) -> dict:
    from ..format import load
    from . import energy as _energy
    from . import env as _env
    from .estimate import estimate, fits_memory

    model = Path(model)
    if not model.is_file():
        raise UserError(f"model file {model} does not exist")
    dev = device if isinstance(device, Device) else get_device(device)
    say = progress or (lambda *a, **k: None)
    summary = _summary(model)
    need = summary["file_bytes"] + summary["arena_bytes"]
    ok, budget = fits_memory(summary["file_bytes"], summary["arena_bytes"], dev)
    if not ok:
        raise UserError(f"model needs {need / 2**20:.1f} MiB (file + arena) but {dev.name} has "
                        f"{budget / 2**20:.0f} MiB usable ({dev.memory['size_mib']} MiB, a quarter kept for the OS): "
                        "use a smaller model, or a --device with more memory")
    graph = load(model)
    if host:
        where = "remote"
    elif not estimate_only and host_matches(dev):
        where = "local"
    else:
        where = "none"
    backends = [l["backend"] for l in summary["layers"]] if where == "local" else None
    est = estimate(graph, dev, threads=threads, engine=engine, backends=backends)
    raw, energy, env, warnings = None, None, {}, []
    if where == "local":
        sensors = _energy.find_sensors(sensor_root or Path("/"))
        sensor = sensors[0] if sensors else None
        if sensor:
            say(f"energy from {sensor.name}: reading idle power for {idle_seconds:g} s")
        from . import local
        raw, energy = local.measure(model, threads, runs, warmup, progress=say, sensor=sensor,
                                    idle_seconds=idle_seconds)
        env = _env.collect_local()
        raw["arch"] = env.get("machine")
    elif where == "remote":
        from . import remote
        from .bench import find_bench
        exe = find_bench(dev.arch, dev.triple, bench, progress=say)
        ssh = remote.SSH(host, port=ssh_port, identity=identity, options=list(ssh_options))
        raw, idle, env = remote.measure(ssh, dev, model, exe, threads, runs, warmup, need, timeout, say,
                                        idle_seconds=idle_seconds)
        energy = _remote_energy(raw, idle, runs)
    label = "estimated" if where == "none" else ("emulated" if dev.emulated else "measured")
    if raw and energy is None:
        if dev.emulated:
            energy = {"label": "none", "why": "emulated board: energy is not meaningful under qemu"}
        else:
            median_s = latency_stats(raw["runs_ms"])["median"] / 1e3
            energy = _energy.estimated(dev, threads, median_s, "no readable power sensor " +
                                       ("on the board" if where == "remote" else "on this machine"))
    elif energy is None:
        energy = _energy.estimated(dev, threads, est["total_ms"] / 1e3, "no board measured: time is estimated too")
    env.update(threads=threads, edgebnn_version=__version__, bench=(raw or {}).get("bench"),
               bench_version=(raw or {}).get("version"), arch=(raw or {}).get("arch") or dev.arch)
    warnings += _env.warnings(env)
    if dev.emulated:
        warnings.append("emulated: the board is qemu on another CPU; timings show the path works, not the board's speed")
    result = {
        "schema": SCHEMA, "label": label, "where": where, "host": host, "device": dev.as_dict(),
        "model": {"path": str(model), "name": model.name, "file_bytes": summary["file_bytes"],
                  "ops": len(summary["layers"]), "flops": summary["totals"]["flops"],
                  "binary_ops": summary["totals"]["binary_ops"]},
        "settings": {"threads": threads, "runs": runs if raw else 0, "warmup": warmup if raw else 0},
        "latency_ms": None, "estimate": {k: est[k] for k in ("label", "engine", "total_ms", "threads",
                                                            "effective_cores")},
        "layers": _layers(summary, raw, est, label), "memory": _memory(summary, raw, dev),
        "energy": energy, "environment": env, "warnings": warnings}
    if raw:
        result["latency_ms"] = {"label": label, "init": raw["init_ms"], "first": raw["first_ms"],
                                **latency_stats(raw["runs_ms"])}
        result["runs_ms"] = raw["runs_ms"]
    return result


def _remote_energy(raw: dict, idle: dict, runs: int) -> dict | None:
    from .energy import from_power_log, measured
    if idle.get("power_log") is not None and raw.get("timed_unix_ms"):
        return from_power_log(idle["power_log"], idle["power_sensor"], tuple(raw["timed_unix_ms"]), runs)
    counters = [c for c in raw.get("energy", []) if c.get("before_uj") is not None and c.get("after_uj") is not None]
    if not counters or any(c["after_uj"] < c["before_uj"] for c in counters):
        return None
    joules = sum(c["after_uj"] - c["before_uj"] for c in counters) / 1e6
    secs = raw["timed_ms"] / 1e3
    idle_w = idle["idle_uj"] / 1e6 / idle["idle_seconds"] if idle.get("idle_uj") is not None else None
    names = ", ".join(c["file"] for c in counters)
    return measured(f"energy counters on the board ({names})", joules, secs, runs, idle_w, 2)
