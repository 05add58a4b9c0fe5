"""What a conversion did, layer by layer: kind, parameters, packed bytes, ops, and why a layer
stayed in float. Printed by `edgebnn convert`, saved with `--report file.json`."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from edgebnn.ir.cost import layer_kind, op_cost
from edgebnn.ir.graph import Graph
from edgebnn.ir.ops import OpType

# Ops that are layers in the report (the rest are data movement or cheap elementwise ops).
_LAYER_OPS = {OpType.CONV2D, OpType.DEPTHWISE_CONV2D, OpType.FULLY_CONNECTED, OpType.HETCONV2D,
              OpType.BCONV2D, OpType.BFULLY_CONNECTED, OpType.KBIT_CONV2D, OpType.HORQ_CONV2D}


@dataclass
class LayerReport:
    name: str
    op: str
    kind: str            # binary, k-bit, int8, fp32, data
    source: str          # module path and source line
    params: int          # weight elements
    packed_bytes: int    # constant bytes as stored in the file
    fp32_bytes: int      # the same constants in fp32
    binary_ops: int
    flops: int
    why_float: str = ""
    error: float | None = None        # --int8: relative RMS error of the output vs float, calibration data
    error_alone: float | None = None  # the same with only this layer in int8


@dataclass
class ConversionReport:
    source: str
    output: str | None
    layers: list[LayerReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    file_bytes: int = 0
    input_shape: tuple = ()
    verify: dict = field(default_factory=dict)  # runtime vs the source framework on the example input
    reference: str = "PyTorch"                  # what the runtime was checked against
    int8: dict = field(default_factory=dict)    # --int8: calibration samples, method, tolerance, kept_float

    @property
    def fp32_file_bytes(self) -> int:
        return sum(layer.fp32_bytes for layer in self.layers)

    @property
    def binary_share(self) -> float:
        b = sum(layer.binary_ops for layer in self.layers)
        total = b + sum(layer.flops for layer in self.layers)
        return b / total if total else 0.0

    @property
    def op_share(self) -> dict[str, float]:
        """Share of all ops (binary ops and FLOPs alike) by the arithmetic that runs them."""
        ops = {"binary": 0, "int8": 0, "fp32": 0}
        for layer in self.layers:
            ops["binary"] += layer.binary_ops
            ops["int8" if layer.kind == "int8" else "fp32"] += layer.flops
        total = sum(ops.values())
        return {k: round(v / total, 4) if total else 0.0 for k, v in ops.items()}

    @property
    def float_layers(self) -> list[LayerReport]:
        return [layer for layer in self.layers if layer.op in {t.name for t in _LAYER_OPS} and layer.kind == "fp32"]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["totals"] = {
            "file_bytes": self.file_bytes,
            "weight_bytes": sum(layer.packed_bytes for layer in self.layers),
            "fp32_weight_bytes": self.fp32_file_bytes,
            "compression": round(self.fp32_file_bytes / max(1, sum(layer.packed_bytes for layer in self.layers)), 2),
            "binary_ops": sum(layer.binary_ops for layer in self.layers),
            "flops": sum(layer.flops for layer in self.layers),
            "binary_share": round(self.binary_share, 4),
            "op_share": self.op_share,
            "layers_by_kind": {k: sum(1 for layer in self.layers if layer.kind == k and layer.op in
                                      {t.name for t in _LAYER_OPS})
                               for k in ("binary", "k-bit", "int8", "fp32")},
        }
        return d

    def save_json(self, path) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, default=str)

    def format_text(self) -> str:
        q = bool(self.int8)
        rows = [layer for layer in self.layers if layer.op in {t.name for t in _LAYER_OPS} or layer.kind == "binary"
                or (q and layer.error is not None)]
        err_head = f" {'err %':>6} {'alone':>6}" if q else ""
        head = f"{'layer':<24} {'kind':<7} {'params':>9} {'bytes':>9} {'ops':>9}{err_head}  source / why float"
        lines = [head, "-" * len(head)]
        for r in rows:
            ops = r.binary_ops + r.flops
            note = r.why_float or r.source
            err = ""
            if q:
                err = " ".join(f"{'' if v is None else f'{100 * v:.2f}':>6}" for v in (r.error, r.error_alone))
                err = " " + err
            lines.append(f"{r.name[:24]:<24} {r.kind:<7} {r.params:>9,} {r.packed_bytes:>9,} {_si(ops):>9}{err}  {note}")
        d = self.to_dict()["totals"]
        lines.append("")
        lines.append(f"file {d['file_bytes']:,} bytes; weights {d['weight_bytes']:,} bytes packed vs "
                     f"{d['fp32_weight_bytes']:,} in fp32 ({d['compression']}x smaller); "
                     f"{100 * d['binary_share']:.1f} % of ops binary")
        kinds = d["layers_by_kind"]
        lines.append("layers: " + ", ".join(f"{v} {k}" for k, v in kinds.items() if v) + "; ops: " +
                     ", ".join(f"{100 * v:.1f} % {k}" for k, v in d["op_share"].items() if v))
        if q:
            i = self.int8
            tol = "off" if i["tolerance"] is None else f"{100 * i['tolerance']:g} %"
            lines.append(f"int8: {i['calibration_samples']} calibration samples, {i['method']} ranges, "
                         f"tolerance {tol}; err % = relative RMS error of the layer's output against float "
                         f"on the calibration data, in the int8 model and with the layer alone in int8")
        if self.verify:
            v = self.verify
            lines.append(f"checked: runtime vs {self.reference} on the example input: max |diff| {v['max_abs_diff']:.3g} "
                         f"(outputs up to {v['max_abs_output']:.3g}), same argmax: {v['same_argmax']}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)


def _si(n: float) -> str:
    for unit, f in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= f:
            return f"{n / f:.1f}{unit}"
    return str(int(n))


def build_report(graph: Graph, layer_of_op: dict, wgraph, source: str, output) -> ConversionReport:
    rep = ConversionReport(source=str(source), output=None if output is None else str(output))
    for i, op in enumerate(graph.ops):
        c = op_cost(graph, i)
        wid = layer_of_op.get(op.name)
        wn = wgraph.nodes.get(wid) if wid is not None else None
        params = sum(math.prod(graph.tensors[t].shape) for t in op.inputs[1:2] if t is not None
                     and graph.tensors[t].is_const)
        if op.type is OpType.HETCONV2D:
            params += math.prod(graph.tensors[op.inputs[2]].shape)
        rep.layers.append(LayerReport(
            name=op.name, op=op.type.name, kind=layer_kind(graph, i), source=wn.source if wn else "",
            params=params, packed_bytes=c.weight_bytes, fp32_bytes=c.weight_fp32_bytes,
            binary_ops=c.binary_ops, flops=c.flops,
            why_float=(wn.attrs.get("why_float", "") if wn is not None and layer_kind(graph, i) == "fp32" else "")))
    rep.notes = list(wgraph.notes)
    return rep
