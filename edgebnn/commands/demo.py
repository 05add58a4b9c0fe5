"""`edgebnn demo`: the whole job on a built-in model, on a fresh install, offline."""
from __future__ import annotations

import shutil
from pathlib import Path

import click
import numpy as np

from ..demo_model import build_demo_bnn
from ..format import save
from ..runtime import Runtime
from .inspect import inspect


def _samples(rng):
    """(images, labels, what): the digits shipped with the package when present, else seeded noise."""
    p = _pretrained_dir() / "mnist_digits.npz"
    if p.exists():
        with np.load(p) as d:
            x, y = d["images"], d["labels"]
        return (x.astype(np.float32) / 255.0).reshape(-1, 1, 1, 28, 28), y, "shipped MNIST test digits"
    return rng.random((8, 1, 1, 28, 28), dtype=np.float32), None, "seeded noise images"


def _pretrained_dir() -> Path:
    # zoo.pretrained.PRETRAINED_DIR, without importing torch (that module loads the weights)
    return Path(__file__).resolve().parents[1] / "zoo" / "pretrained"


def shipped_packed_model() -> Path:
    """The shipped MNIST BNN already converted (benchmarks/methods/ship_pretrained.py writes it, and a
    test holds it byte-equal to a fresh conversion): what a runtime-only install runs."""
    return _pretrained_dir() / "mnist_bnn.ebnn"


def convert_pretrained(path: Path):
    """Convert the shipped MNIST BNN with the PyTorch front-end: (info, report), or None without torch."""
    try:
        import torch

        from ..converters import convert
        from ..zoo.pretrained import load_pretrained, pretrained_info
    except ImportError:
        return None
    info = pretrained_info("mnist_bnn")
    model = load_pretrained("mnist_bnn")
    report = convert(model, example_input=torch.zeros(info["input"]["shape"]), output=path,
                     labels=info.get("labels"), preprocess={"grayscale": True, "scale": 1 / 255})
    return info, report


def _convert_step(path: Path) -> tuple[Path, bool]:
    """Step 1: convert the pretrained model, or without PyTorch copy the shipped conversion of it.
    Returns (the packed file, whether it holds the trained weights)."""
    converted = convert_pretrained(path)
    if converted is not None:
        info, report = converted
        click.echo(f"   PyTorch model: edgebnn zoo '{info['zoo']}' trained on MNIST "
                   f"({100 * info['test_accuracy']:.2f} % test accuracy in PyTorch)")
        for line in report.format_text().splitlines():
            click.echo("   " + line)
        return path, True
    shipped = shipped_packed_model()
    if shipped.exists():
        shutil.copyfile(shipped, path)
        click.echo(f"   PyTorch is not installed (pip install 'edgebnn[convert]' to convert): using the "
                   f"packed file shipped with the package, converted from the same model")
        return path, True
    path = path.with_name("demo_bnn.ebnn")
    save(build_demo_bnn(), path)
    click.echo(f"   PyTorch is not installed and this package ships no packed model: packed a random-weight "
               f"binary CNN instead ({path}); pip install 'edgebnn[convert]' to convert the pretrained model")
    return path, False


@click.command("demo")
@click.option("--out", "out_dir", default="edgebnn-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder for the packed model.")
@click.option("--runs", default=50, show_default=True, type=click.IntRange(1), help="Timed runs.")
@click.pass_context
def demo(ctx, out_dir: Path, runs: int):
    """Convert the shipped pretrained MNIST binary CNN, run it on shipped digits and profile it.

    Offline: the model and the digits ship inside the package. Converting needs PyTorch
    (pip install 'edgebnn[convert]'); without it the demo runs the packed file shipped with the
    package, converted from the same model.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "mnist_bnn.ebnn"
    click.secho("1. convert (PyTorch -> packed .ebnn)", bold=True)
    path, trained = _convert_step(path)
    click.echo(f"   wrote {path} ({path.stat().st_size:,} bytes)")
    click.secho("2. inspect", bold=True)
    ctx.invoke(inspect, model=path, as_json=False)
    click.secho("3. run", bold=True)
    rng = np.random.default_rng(0)
    xs, labels, what = _samples(rng)
    with Runtime(path) as rt:
        preds = [int(np.argmax(rt.run(x))) for x in xs]
        click.echo(f"   {len(xs)} {what} -> predicted {preds}")
        if trained and labels is not None:
            correct = sum(int(p == t) for p, t in zip(preds, labels))
            click.echo(f"   true labels          {[int(t) for t in labels]}: {correct}/{len(xs)} correct "
                       f"({100 * correct / len(xs):.1f} %)")
        elif not trained:
            click.echo("   (random weights: the classes mean nothing)")
    profile_step(path, runs)
    click.echo(f"next: edgebnn run {path} --input <image.png>   |   edgebnn profile {path} --report profile.html")


def profile_step(path: Path, runs: int) -> None:
    """The demo's last step: a short `edgebnn profile` of the model it just built."""
    from ..profile import profile
    from ..profile.report import terminal
    click.secho("4. profile (edgebnn profile: per-layer times, memory, energy)", bold=True)
    result = profile(path, "host", runs=min(runs, 20), warmup=2, idle_seconds=0.3)
    click.echo("\n".join("   " + line for line in terminal(result).splitlines()))
