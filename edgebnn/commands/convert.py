"""`edgebnn convert`: a PyTorch or ONNX / QONNX model to a packed .ebnn file and a report of what became binary."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import click

from ..errors import UserError


def _progress():
    """One line per calibration run, updated in place on a terminal."""
    tty = click.get_text_stream("stderr").isatty()

    def report(stage: str, done: int, total: int):
        if tty:
            click.echo(f"\rint8: {stage}: {done}/{total}", err=True, nl=done == total)
        elif done == total:
            click.echo(f"int8: {stage}: {total} samples", err=True)
    return report


@click.command("convert")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Packed file to write [default: MODEL with the suffix .ebnn].")
@click.option("--input-shape", metavar="N,C,H,W",
              help="Input shape, when the file does not carry one (a .pt2 does; a saved module does not; "
                   "an .onnx file with dynamic dimensions needs it).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report as JSON.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Text file with one class label per line, stored in the model's metadata.")
@click.option("--allow-pickle/--no-pickle", default=True, show_default=True,
              help="Load modules saved whole with torch.save(model). That is a pickle: loading it runs code "
                   "from the file. Use --no-pickle for files you do not trust (.pt2 and TorchScript are safe).")
@click.option("--int8", is_flag=True,
              help="Post-training int8 for the float layers (conv, depthwise, FC and the pools and adds between "
                   "them); binary layers stay binary and read int8 through their sign. Needs --calibration.")
@click.option("--calibration", type=click.Path(exists=True, path_type=Path), metavar="DATA",
              help="Calibration inputs for --int8: a .npy / .npz of preprocessed inputs (S, ...input shape "
                   "without the batch) in the model's layout, or a folder of images (read with --preprocess). "
                   "A few hundred representative samples are enough.")
@click.option("--calibration-method", type=click.Choice(["minmax", "percentile", "mse"]), default="minmax",
              show_default=True, help="How a tensor's int8 range is chosen: its min/max over the calibration "
                                      "data, the 99.99th percentiles, or the clip with the least squared error.")
@click.option("--keep-float", multiple=True, metavar="NAME",
              help="Keep this layer in float with --int8 (a name from the report, or a glob like 'linear*'); "
                   "repeat for more.")
@click.option("--int8-tolerance", type=float, default=0.1, show_default=True, metavar="FRACTION",
              help="With --int8, keep in float any layer whose output in int8 alone is off by more than this "
                   "(relative RMS error on the calibration data); 'inf' keeps none.")
@click.option("--int8-min-k", type=click.IntRange(0), default=16, show_default=True, metavar="K",
              help="With --int8, keep in float a conv / FC with fewer than K products per output (a 3x3 stem "
                   "on a 1-channel image has 9): int8 kernels run no faster there. 0 quantizes them too.")
@click.option("--preprocess", metavar="JSON",
              help='How an image becomes the input, stored for `edgebnn run` and used for a --calibration '
                   'folder: {"grayscale": true, "scale": 0.00392, "mean": [..], "std": [..], "invert": false}.')
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary line.")
def convert(model: Path, output: Path | None, input_shape: str | None, report_path: Path | None,
            labels: Path | None, allow_pickle: bool, int8: bool, calibration: Path | None, calibration_method: str,
            keep_float: tuple[str, ...], int8_tolerance: float, int8_min_k: int, preprocess: str | None,
            quiet: bool):
    """Convert a PyTorch, ONNX / QONNX or TFLite / LCE model to the packed format and report what
    each layer became.

    \b
    MODEL is one of:
      model.pt2   torch.export.save(torch.export.export(model, (x,)), "model.pt2")  (safe; carries shapes)
      model.pt    torch.save(model, "model.pt")  (a whole module; needs --input-shape)
      model.pt    torch.jit.save(torch.jit.script(model), "model.pt")  (TorchScript)
      model.onnx  ONNX (torch.onnx.export, ...) or QONNX (Brevitas: BipolarQuant, Quant, Trunc)
      model.tflite  TFLite float32 / int8 / uint8 (MobileNet-family ops), and Larq Compute Engine's
                  binary ops (LceQuantize, LceBconv2d, LceBMaxPool2d, LceDequantize)
    A state_dict alone is not a model: save the module, or call edgebnn.converters.convert(module)
    from Python.

    \b
    A layer runs binary (xor-popcount) when its input comes from a sign-like op (sign, where(x >= t,
    1, -1), the STE forms of Bi-Real, ReActNet, BinaryNet) and its weights take two values ±α per
    output channel; BatchNorm folds into it, and sign after it becomes integer thresholds so binary
    layers chain on packed bits. A k-bit QONNX Quant before binary weights runs as the K-bit
    conv; other k-bit quantizers are emulated in float. Every layer left in float is listed with
    the reason.

    \b
    With --int8 the float layers become int8 as TFLite's converter makes them: per-channel
    symmetric weights, per-tensor asymmetric activations with ranges from --calibration, int32
    biases, TFLite's requantization. The report then gives each layer's output error against
    float on the calibration data. Layers already int8 in the source keep their scales.

    \b
    Examples:
      edgebnn convert model.pt2
      edgebnn convert model.pt --input-shape 1,3,224,224 -o model.ebnn --report report.json
      edgebnn convert TFC_1W1A.onnx
      edgebnn convert model.pt2 --int8 --calibration calib.npy --keep-float linear_1
    """
    from ..converters import convert as run_convert

    out = output or model.with_suffix(".ebnn")
    if out.resolve() == model.resolve():
        raise UserError(f"output {out} would overwrite the input model; choose another -o")
    label_list = None
    if labels:
        label_list = [s.strip() for s in labels.read_text().splitlines() if s.strip()]
    pre = None
    if preprocess:
        try:
            pre = json.loads(preprocess)
            assert isinstance(pre, dict)
        except (ValueError, AssertionError):
            raise UserError(f"--preprocess {preprocess!r}: expected a JSON object like '{{\"scale\": 0.00392}}'") from None
    if (calibration or keep_float) and not int8:
        raise UserError("--calibration and --keep-float go with --int8")
    q = None
    if int8:
        if calibration is None:
            raise UserError("--int8 needs calibration data: --calibration inputs.npy (or .npz, or a folder of images)")
        q = {"calibration": calibration, "method": calibration_method, "keep_float": list(keep_float),
             "tolerance": None if math.isinf(int8_tolerance) else int8_tolerance, "min_k": int8_min_k}
    report = run_convert(model, output=out, input_shape=input_shape, allow_pickle=allow_pickle, labels=label_list,
                         preprocess=pre, int8=q, progress=None if quiet else _progress())
    if report_path:
        tmp = report_path.with_name(report_path.name + f".tmp{os.getpid()}")
        report.save_json(tmp)
        os.replace(tmp, report_path)
    if not quiet:
        click.echo(report.format_text())
    d = report.to_dict()["totals"]
    click.echo(f"wrote {out} ({report.file_bytes:,} bytes, {100 * d['binary_share']:.1f} % of ops binary)")
