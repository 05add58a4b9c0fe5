"""`edgebnn export`: a packed .ebnn model out to another format, to check it with other tools."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError


def _export_onnx(graph, output: Path):
    from ..converters.export.onnx import export_onnx
    export_onnx(graph, output)


def _export_lce(graph, output: Path):
    try:
        from ..converters.export.lce import export_lce
    except ImportError:
        raise UserError("LCE export is not available in this build") from None
    export_lce(graph, output)


# One writer per target: a new format is one function and one entry here.
_TARGETS = {"onnx": (_export_onnx, ".onnx"), "lce": (_export_lce, ".tflite")}


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "target", type=click.Choice(sorted(_TARGETS)), required=True,
              help="Target format: onnx (the float-simulated model, binarization as standard ops) or lce.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write [default: MODEL with the target's suffix].")
def export(model: Path, target: str, output: Path | None):
    """Export MODEL (.ebnn) to another format.

    \b
    --to onnx writes the float-simulated model that onnxruntime runs: binary layers are Conv /
    MatMul on ±1 values built with Where(x < t, -1, 1), weights unpacked to ±1, then the layer's
    multiplier/bias or its thresholds; binary accumulators match the runtime exactly. int8 layers
    are simulated in float (dequantize, float op, requantize) and may differ from the runtime by
    one unit. Inputs and outputs keep the layout the model declares (NCHW for PyTorch models).

    \b
    Example:
      edgebnn export model.ebnn --to onnx -o model.onnx
    """
    from ..format import load

    if not model.exists():
        raise UserError(f"model file {model} does not exist")
    write, suffix = _TARGETS[target]
    out = output or model.with_suffix(suffix)
    if out.resolve() == model.resolve():
        raise UserError(f"output {out} would overwrite the input model; choose another -o")
    if not out.parent.is_dir():
        raise UserError(f"output folder {out.parent} does not exist; create it or choose another -o")
    graph = load(model)
    write(graph, out)
    click.echo(f"wrote {out} ({out.stat().st_size:,} bytes, {len(graph.ops)} layers as {target})")
