"""`edgebnn inspect`: what is inside a packed model, layer by layer."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UserError
from ..format import load
from ..ir.cost import layer_kind, op_cost
from ..runtime import Runtime


def _si(n: float, unit: str = "") -> str:
    for k, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= k:
            return f"{n / k:.2f} {s}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def _bytes(n: int) -> str:
    for k, s in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= k:
            return f"{n / k:.1f} {s}"
    return f"{n} B"


def summarize(path: Path) -> dict:
    """Everything `inspect` prints, as data (the profiler and reports reuse it)."""
    with Runtime(path) as rt:  # the C loader's checks and its arena plan are the truth
        arena, backends = rt.arena_bytes, [o.backend for o in rt.ops]
    graph = load(path)
    layers, totals = [], {"flops": 0, "binary_ops": 0, "weight_bytes": 0, "weight_fp32_bytes": 0}
    for i, op in enumerate(graph.ops):
        c = op_cost(graph, i)
        out = graph.tensors[op.outputs[0]]
        layers.append({"index": i, "name": op.name, "op": op.type.name, "kind": layer_kind(graph, i),
                       "backend": backends[i], "output": f"{out.dtype.short}{list(out.shape)}",
                       "weight_bytes": c.weight_bytes, "weight_fp32_bytes": c.weight_fp32_bytes,
                       "flops": c.flops, "binary_ops": c.binary_ops})
        for k in totals:
            totals[k] += getattr(c, k)
    return {"model": str(path), "file_bytes": path.stat().st_size, "arena_bytes": arena,
            "inputs": [{"name": graph.tensors[i].name, "dtype": graph.tensors[i].dtype.short,
                        "shape": list(graph.tensors[i].shape), "layout": graph.tensors[i].io_layout}
                       for i in graph.inputs],
            "outputs": [{"name": graph.tensors[i].name, "dtype": graph.tensors[i].dtype.short,
                         "shape": list(graph.tensors[i].shape)} for i in graph.outputs],
            "metadata": graph.metadata, "layers": layers, "totals": totals}


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a table.")
def inspect(model: Path, as_json: bool):
    """Show MODEL's layers: op, arithmetic (binary/k-bit/int8/fp32), output, weights, op counts.

    \b
    Weight bytes are as packed in the file, next to what the same weights take as fp32.
    FLOPs count a multiply-add as 2; binary ops count a 1-bit multiply-add as 2 (64 per
    xor+popcount word). The arena is the one activation buffer a session allocates.
    """
    if not model.exists():
        raise UserError(f"model file {model} does not exist")
    s = summarize(model)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"{model.name}: {len(s['layers'])} ops, file {_bytes(s['file_bytes'])}, arena {_bytes(s['arena_bytes'])}")
    for io in s["inputs"]:
        click.echo(f"  input  {io['name']}: {io['dtype']}{io['shape']} (runtime NHWC; users feed {io['layout']})")
    for io in s["outputs"]:
        click.echo(f"  output {io['name']}: {io['dtype']}{io['shape']}")
    hdr = f"  {'#':>3} {'name':<28} {'op':<18} {'kind':<7} {'backend':<13} {'output':<22} {'weights':>10} {'as fp32':>10} {'FLOPs':>10} {'binary ops':>11}"
    click.echo(hdr)
    for l in s["layers"]:
        click.echo(f"  {l['index']:>3} {l['name'][:28]:<28} {l['op']:<18} {l['kind']:<7} {l['backend']:<13} "
                   f"{l['output'][:22]:<22} {_bytes(l['weight_bytes']) if l['weight_bytes'] else '-':>10} "
                   f"{_bytes(l['weight_fp32_bytes']) if l['weight_fp32_bytes'] else '-':>10} "
                   f"{_si(l['flops']) if l['flops'] else '-':>10} {_si(l['binary_ops']) if l['binary_ops'] else '-':>11}")
    t = s["totals"]
    ratio = t["weight_fp32_bytes"] / t["weight_bytes"] if t["weight_bytes"] else 1.0
    ops = t["flops"] + t["binary_ops"]
    click.echo(f"  weights: {_bytes(t['weight_bytes'])} packed vs {_bytes(t['weight_fp32_bytes'])} as fp32 "
               f"({ratio:.1f}x smaller)")
    click.echo(f"  ops: {_si(t['flops'], 'FLOPs')} float, {_si(t['binary_ops'])} binary "
               f"({100 * t['binary_ops'] / ops if ops else 0:.1f} % of all ops binary)")
    for k, v in sorted(s["metadata"].items()):
        click.echo(f"  meta {k}: {v if len(v) < 80 else v[:77] + '...'}")
