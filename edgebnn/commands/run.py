"""`edgebnn run`: run a packed model on an input and print what it predicts."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from ..errors import UserError
from ..inputs import load_inputs
from ..runtime import Runtime


def _labels(rt: Runtime) -> list[str] | None:
    raw = rt.metadata("labels")
    if not raw:
        return None
    try:
        labels = json.loads(raw)
        return [str(s) for s in labels] if isinstance(labels, list) else None
    except json.JSONDecodeError:
        return None


@click.command("run")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "-i", "input_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A .npy of the input shape (or a batch of it), an .npz with arrays x (inputs) and y "
                   "(labels, to print accuracy), or an image (.png/.bmp/.jpg), preprocessed as the model's "
                   "metadata says. Without it, a random input.")
@click.option("--threads", "-t", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Worker threads for the kernels.")
@click.option("--top", "-k", "top", default=5, show_default=True, type=click.IntRange(1),
              help="How many classes to print for classifier outputs.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the first output (all inputs stacked) to this .npy file.")
def run(model: Path, input_path: Path | None, threads: int, top: int, output: Path | None):
    """Run MODEL (.ebnn) and print its predictions.

    \b
    Examples:
      edgebnn run model.ebnn                          # random input, prints top-5
      edgebnn run model.ebnn -i digit.png --top 3
      edgebnn run model.ebnn -i test.npz              # x and y arrays: prints accuracy
    """
    if not model.exists():
        raise UserError(f"model file {model} does not exist")
    rt = Runtime(model, threads=threads)
    xs, labels, what = load_inputs(input_path, rt)
    t0 = time.perf_counter()
    results = [rt.run(x) for x in xs]
    elapsed = time.perf_counter() - t0
    first = [r[0] if isinstance(r, tuple) else r for r in results]
    out_spec = rt.outputs[0]
    names = _labels(rt)
    click.echo(f"{model.name}: {what}, {len(xs)} run(s) in {elapsed * 1e3:.1f} ms, {threads} thread(s)")
    is_classifier = len(out_spec.shape) == 2 and out_spec.shape[0] == 1 and out_spec.shape[1] > 1
    if is_classifier:
        preds = np.array([int(np.argmax(r)) for r in first])
        for n, r in enumerate(first[:10]):
            scores = r.reshape(-1)
            order = np.argsort(-scores, kind="stable")[:top]
            shown = ", ".join(f"{names[c] if names and c < len(names) else c}: {scores[c]:.4g}" for c in order)
            prefix = f"  [{n}] " if len(first) > 1 else "  "
            truth = f"  (label {int(labels[n])})" if labels is not None else ""
            click.echo(f"{prefix}{shown}{truth}")
        if len(first) > 10:
            click.echo(f"  ... {len(first) - 10} more")
        if labels is not None:
            acc = float(np.mean(preds == np.asarray(labels).reshape(-1)))
            click.echo(f"accuracy: {acc * 100:.2f} % ({int(np.sum(preds == labels))}/{len(preds)})")
    else:
        r = first[0]
        click.echo(f"  output '{out_spec.name}' {out_spec.shape} {out_spec.layout}: min {r.min():.4g}, "
                   f"max {r.max():.4g}, mean {r.mean():.4g}")
    if output is not None:
        np.save(output, np.stack(first))
        click.echo(f"wrote {output}")
