"""`edgebnn demo`: the whole job on a built-in model, on a fresh install, offline."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import click
import numpy as np

from ..demo_model import build_demo_bnn
from ..format import save
from ..runtime import Runtime
from .inspect import inspect


def _samples(rng) -> tuple[np.ndarray, str]:
    """Digits shipped with the package when present, else seeded noise."""
    p = Path(__file__).resolve().parents[1] / "zoo" / "pretrained" / "mnist_digits.npz"
    if p.exists():
        d = np.load(p)
        x = d[d.files[0]] if "images" not in d else d["images"]
        return (x[:8].astype(np.float32) / 255.0).reshape(-1, 1, 1, 28, 28), "shipped sample digits"
    return rng.random((8, 1, 1, 28, 28), dtype=np.float32), "seeded noise images"


@click.command("demo")
@click.option("--out", "out_dir", default="edgebnn-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder for the packed model.")
@click.option("--runs", default=50, show_default=True, type=click.IntRange(1), help="Timed runs.")
@click.pass_context
def demo(ctx, out_dir: Path, runs: int):
    """Build a small binary CNN, pack it, inspect it, run it and time it.

    Needs nothing but this package: no network, no data folder, no torch.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "demo_bnn.ebnn"
    click.secho("1. build + pack", bold=True)
    save(build_demo_bnn(), path)
    click.echo(f"   wrote {path} ({path.stat().st_size} bytes)")
    click.secho("2. inspect", bold=True)
    ctx.invoke(inspect, model=path, as_json=False)
    click.secho("3. run", bold=True)
    rng = np.random.default_rng(0)
    xs, what = _samples(rng)
    with Runtime(path) as rt:
        preds = [int(np.argmax(rt.run(x))) for x in xs]
        click.echo(f"   {len(xs)} {what} -> classes {preds} (random weights: meaningless until a trained model is converted)")
        times = []
        for _ in range(3):
            rt.run(xs[0])
        for _ in range(runs):
            t0 = time.perf_counter()
            rt.run(xs[0])
            times.append(time.perf_counter() - t0)
    click.secho("4. time (this machine, reference kernels, 1 thread)", bold=True)
    p90 = float(np.percentile(times, 90))
    click.echo(f"   {runs} runs: median {statistics.median(times) * 1e3:.3f} ms, p90 {p90 * 1e3:.3f} ms, "
               f"min {min(times) * 1e3:.3f} ms")
    profile_step(path, runs)
    click.echo(f"next: edgebnn run {path} --input <image.png>   |   edgebnn profile {path} --report profile.html")


def profile_step(path: Path, runs: int) -> None:
    """The demo's last step: a short `edgebnn profile` of the model it just built."""
    from ..profile import profile
    from ..profile.report import terminal
    click.secho("5. profile (edgebnn profile: per-layer times, memory, energy)", bold=True)
    result = profile(path, "host", runs=min(runs, 20), warmup=2, idle_seconds=0.3)
    click.echo("\n".join("   " + line for line in terminal(result).splitlines()))
