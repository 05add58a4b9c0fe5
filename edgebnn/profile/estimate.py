"""A cost model: per-layer and total latency of a graph on a device, from shapes alone.

Every number it makes is an estimate and is labelled so wherever it appears.

Per layer:  time = max(compute, memory) + op overhead
  compute = work / (peak per core x clock x efficiency[kind] x thread speedup)
            work is FLOPs (fp32), int8 ops, or binary ops (xor-popcount), from edgebnn.ir.cost
  memory  = DRAM bytes / bandwidth(threads); weights always stream from DRAM, activations
            only when a layer's input and output do not fit in the last-level cache
Engines:
  "optimized"  well-tuned SIMD kernels on every layer (what XNNPACK or Larq Compute Engine
               reach): the peaks in the device file times efficiency[kind]
  "edgebnn"    this runtime's kernels as they stand: scalar C references ("ref") at scalar
               rates, and the word-popcount binary kernels ("portable"/"popcnt"), all single-threaded
The efficiencies and rates below are defaults; a device file may override any in [cost].
docs/profile.md compares predictions with published measurements.
"""
from __future__ import annotations

from ..ir.cost import op_cost
from ..ir.dtypes import DType
from ..ir.graph import Graph
from ..ir.ops import Attr, OpType

DEFAULTS = {
    # fraction of the SIMD peak a tuned kernel sustains, by layer kind (engine "optimized")
    "eff_conv": 0.45, "eff_depthwise": 0.2, "eff_fc": 0.4, "eff_binary": 0.4, "eff_elementwise": 0.25,
    # this runtime's scalar reference kernels, per core per cycle (engine "edgebnn")
    "scalar_flops_per_cycle": 2.0, "eff_scalar": 0.35,
    "scalar_binary_ops_per_cycle": 24.0,
    # threads: each extra core adds this fraction of one core
    "thread_efficiency": 0.85,
    "op_overhead_us": 2.0,
    "thread_sync_us": 8.0,
}

_BINARY = {OpType.BCONV2D, OpType.BFULLY_CONNECTED, OpType.KBIT_CONV2D, OpType.HORQ_CONV2D}
_NO_WORK = {OpType.RESHAPE}


def params(device) -> dict:
    p = dict(DEFAULTS)
    p.update({k: float(v) for k, v in device.cost.items() if k in DEFAULTS})
    return p


def layer_class(graph: Graph, index: int) -> str:
    op = graph.ops[index]
    if op.type in _BINARY:
        return "binary"
    if op.type is OpType.DEPTHWISE_CONV2D:
        return "depthwise"
    if op.type is OpType.CONV2D:
        w = graph.tensors[op.inputs[1]]
        groups = int(op.attrs.get(Attr.GROUPS, (1,))[0])
        return "depthwise" if groups > 1 and w.shape[3] == 1 else "conv"
    if op.type is OpType.HETCONV2D:
        return "conv"
    if op.type is OpType.FULLY_CONNECTED:
        return "fc"
    return "elementwise"


def expected_backend(op_type: OpType, arch: str) -> str:
    """The kernel family this runtime picks for an op on `arch` (kernels.c's run-time choice)."""
    if op_type in (OpType.BCONV2D, OpType.BFULLY_CONNECTED, OpType.KBIT_CONV2D, OpType.HORQ_CONV2D,
                   OpType.SIGN_PACK, OpType.BMAX_POOL2D):
        return {"x86_64": "avx2", "aarch64": "neon", "armv7": "neon"}.get(arch, "scalar")
    if op_type in (OpType.CONV2D, OpType.DEPTHWISE_CONV2D, OpType.FULLY_CONNECTED, OpType.ADD, OpType.MAX_POOL2D,
                   OpType.AVG_POOL2D, OpType.GLOBAL_AVG_POOL):
        return "xnnpack"  # Debian and Raspberry Pi OS ship libxnnpack-dev
    if op_type is OpType.HETCONV2D:
        return "hetconv-fused"
    return "ref"


def effective_cores(device, threads: int) -> float:
    n = min(max(threads, 1), device.cores)
    big = int(device.cpu.get("big_cores", device.cores))
    return min(n, big) + float(device.cpu.get("little_speed", 1.0)) * max(0, n - big)


def _act_bytes(graph: Graph, op) -> int:
    t = graph.tensors
    return sum(t[i].nbytes for i in list(op.inputs) + list(op.outputs) if i is not None and not t[i].is_const)


def estimate(graph: Graph, device, threads: int = 1, engine: str = "edgebnn", numeric: str = "as-is",
             backends: list[str] | None = None) -> dict:
    """Predicted per-layer and total latency. numeric="int8" prices float convs and FC layers at
    int8 rates (for comparing with int8 engines whose graphs the IR builds as float)."""
    if engine not in ("edgebnn", "optimized"):
        raise ValueError(f"engine must be 'edgebnn' or 'optimized', got {engine!r}")
    p = params(device)
    hz = float(device.cpu["clock_ghz"]) * 1e9
    comp = device.compute
    cores = effective_cores(device, threads)
    scaled = 1 + (cores - 1) * p["thread_efficiency"]
    bw_all = float(device.memory["bandwidth_gbs"]) * 1e9
    bw_one = min(bw_all, float(device.memory.get("single_core_bandwidth_gbs", bw_all / 1e9)) * 1e9)
    bw = min(bw_all, bw_one * cores) if engine == "optimized" else bw_one
    llc = 1024 * max(float(device.cpu.get("l3_kib", 0)), float(device.cpu.get("l2_kib", 256)))
    layers, total = [], 0.0
    for i, op in enumerate(graph.ops):
        c = op_cost(graph, i)
        kind = layer_class(graph, i)
        backend = backends[i] if backends else (expected_backend(op.type, device.arch)
                                                if engine == "edgebnn" else "optimized")
        int8 = numeric == "int8" or any(graph.tensors[j].dtype is DType.I8 for j in op.inputs if j is not None)
        if kind == "binary":
            work = c.binary_ops + c.flops
            if engine == "optimized" or backend not in ("ref", "scalar"):  # SIMD binary kernels
                rate = float(comp["binary_ops_per_cycle"]) * p["eff_binary"]
            else:
                rate = p["scalar_binary_ops_per_cycle"]
        else:
            work = c.flops
            if engine == "optimized" or backend not in ("ref",):
                peak = float(comp["int8_ops_per_cycle"] if int8 and kind != "elementwise"
                             else comp["fp32_flops_per_cycle"])
                rate = peak * p[f"eff_{kind}"]
            else:
                rate = p["scalar_flops_per_cycle"] * p["eff_scalar"]
        # this runtime's kernels do not split work across threads yet
        speed = scaled if engine == "optimized" else 1.0
        compute_s = work / (rate * hz * speed) if work and op.type not in _NO_WORK else 0.0
        act = _act_bytes(graph, op)
        dram = c.weight_bytes + (act if act > llc else 0)
        if int8 and engine == "optimized" and numeric == "int8":
            dram = c.weight_bytes // 4 + (act // 4 if act > llc else 0)
        memory_s = dram / bw
        overhead = p["op_overhead_us"] * 1e-6 + (p["thread_sync_us"] * 1e-6 if engine == "optimized" and threads > 1
                                                  and work else 0.0)
        t = max(compute_s, memory_s) + overhead
        total += t
        layers.append({"index": i, "name": op.name, "op": op.type.name, "class": kind, "backend": backend,
                       "ops": c.flops + c.binary_ops, "dram_bytes": dram,
                       "bound": "memory" if memory_s > compute_s else "compute", "time_ms": t * 1e3})
    for l in layers:
        l["share"] = l["time_ms"] / (total * 1e3) if total else 0.0
    return {"label": "estimated", "engine": engine, "numeric": numeric, "threads": threads,
            "device": device.name, "total_ms": total * 1e3, "layers": layers,
            "effective_cores": cores, "params": p}


def fits_memory(file_bytes: int, arena_bytes: int, device) -> tuple[bool, int]:
    """Whether model + arena fit in the board's RAM with room for the OS (a quarter kept free)."""
    budget = int(float(device.memory["size_mib"]) * (1 << 20) * 0.75)
    return file_bytes + arena_bytes <= budget, budget
