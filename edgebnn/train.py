"""`edgebnn train`: train a zoo model on MNIST or Fashion-MNIST, evaluate it, save it.

Saves MODEL.pt (a state_dict; torch.load(..., weights_only=True)) and
MODEL.json beside it: the zoo name and constructor kwargs that rebuild the
network, the measured test accuracy, the command and seed that made it.
torch is imported inside the command so that `edgebnn --help` stays fast on
a runtime-only install.
"""
from __future__ import annotations

import ast
import inspect
import json
import shlex
import sys
import time
from pathlib import Path

import click

DEFAULTS = dict(epochs=5, batch_size=128, lr=2e-3, seed=0, threads=1)


def parse_kwargs(pairs: tuple[str, ...]) -> dict:
    """KEY=VALUE pairs; values are Python literals when they parse as one (2, 0.5, (32, 64, 64)), else strings."""
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--kw")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def canonical_command(model_name, dataset, kwargs, epochs, batch_size, lr, seed, limit, output) -> str:
    """The command line that reproduces a run, whatever way it was invoked."""
    parts = ["edgebnn", "train", model_name, "--dataset", dataset]
    kwargs = dict(kwargs)
    if "method" in kwargs:
        parts += ["--method", kwargs.pop("method")]
    parts += [f"--kw={k}={v}" if isinstance(v, str) else f"--kw={k}={v!r}" for k, v in kwargs.items()]
    parts += ["--epochs", str(epochs), "--batch-size", str(batch_size), "--lr", f"{lr:g}", "--seed", str(seed)]
    if limit:
        parts += ["--limit", str(limit)]
    parts += ["-o", str(output)]
    return " ".join(shlex.quote(p) for p in parts)


def full_kwargs(builder, given: dict) -> dict:
    """Every keyword the builder takes, defaults filled in: the sidecar then rebuilds
    the same network even if a default changes later."""
    full = {
        name: p.default
        for name, p in inspect.signature(builder).parameters.items()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.default is not inspect.Parameter.empty
    }
    full.update(given)
    return full


def training_input_shape(native: tuple[int, int, int], image_size: int | None) -> tuple[int, int, int]:
    """Digits are 1×28×28; CIFAR- and ImageNet-shape nets get them zero-padded to 32×32
    (every zoo net pools adaptively, and 224×224 training is not a CPU job)."""
    if image_size is None:
        image_size = native[1] if native[1] <= 32 else 32
    return (1, image_size, image_size)


@click.command("train")
@click.argument("model_name", metavar="MODEL")
@click.option("--dataset", type=click.Choice(["mnist", "fashion-mnist"]), default="mnist", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), help="folder with the IDX files "
              "(default: ../shared/data/<dataset>, then /usr/share/datasets/<dataset>)")
@click.option("--method", help="compression method for zoo models that take one (float, bnn, bc_det, "
              "bc_stoch, xnor, horq, hwgq, bireal, react, hetconv)")
@click.option("--kw", "kw", multiple=True, metavar="KEY=VALUE", help="extra constructor argument, repeatable "
              "(e.g. --kw bits=2 --kw part=4)")
@click.option("--epochs", type=int, default=DEFAULTS["epochs"], show_default=True)
@click.option("--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True)
@click.option("--lr", type=float, default=DEFAULTS["lr"], show_default=True, help="Adam learning rate (cosine decay)")
@click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True)
@click.option("--threads", type=int, default=DEFAULTS["threads"], show_default=True,
              help="torch CPU threads (1 leaves the other cores to everyone else)")
@click.option("--image-size", type=int, help="train at this square size (default: 28 for digit nets, 32 otherwise)")
@click.option("--limit", type=int, default=0, help="use only the first N images of each split (smoke runs)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="weights file (default MODEL-DATASET.pt); "
              "a .json sidecar is written beside it")
@click.option("--name", help="name recorded in the sidecar (default: the output file's stem)")
@click.option("--export", "export_path", type=click.Path(dir_okay=False),
              help="also save a torch.export ExportedProgram (.pt2) of the trained model")
def train(model_name, dataset, data_dir, method, kw, epochs, batch_size, lr, seed, threads, image_size, limit,
          output, name, export_path):
    """Train zoo MODEL on real digits, evaluate it on the full test set and save it.

    \b
    Examples:
      edgebnn train binarynet_cnn --method bnn                  # the shipped mnist_bnn
      edgebnn train binarynet_cnn --method horq --kw bits=2 --dataset fashion-mnist
      edgebnn train mobilenet_v1 --kw width=0.25 --epochs 1
    Deterministic for a given --seed and --threads on the same machine.
    """
    try:
        import torch
    except ImportError:
        from .errors import UserError
        raise UserError("training needs PyTorch: pip install 'edgebnn[train]'") from None

    from .datasets import CLASS_NAMES, DatasetNotFound, load_split
    from .nn.training import TrainConfig, accuracy, fit
    from .zoo import get_entry

    try:
        entry = get_entry(model_name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="MODEL") from None
    torch.set_num_threads(threads)
    given = parse_kwargs(kw)
    if method:
        given["method"] = method
    kwargs = {"num_classes": 10, "in_channels": 1, **given}
    shape = training_input_shape(entry.input_shape, image_size)
    try:
        train_x, train_y = load_split(dataset, "train", data_dir)
        test_x, test_y = load_split(dataset, "test", data_dir)
    except DatasetNotFound as e:
        raise click.ClickException(str(e)) from None
    if limit:
        train_x, train_y, test_x, test_y = train_x[:limit], train_y[:limit], test_x[:limit], test_y[:limit]

    torch.manual_seed(seed)  # the model's initial weights come from this seed too
    try:
        model = entry.builder(**kwargs)
    except (TypeError, ValueError) as e:
        raise click.BadParameter(f"{model_name}: {e}", param_hint="--method/--kw") from None

    output = Path(output or f"{model_name}-{dataset}.pt")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    steps = epochs * ((len(train_x) + batch_size - 1) // batch_size)
    started = time.perf_counter()
    with click.progressbar(length=steps, label=f"training {model_name} on {dataset}", file=sys.stderr,
                           show_pos=True, item_show_func=lambda loss: loss) as bar:
        def on_step(step, loss):
            bar.update(1, f"loss {loss:.3f}")

        history = fit(model, train_x, train_y, shape, config, on_step=on_step)
    train_seconds = time.perf_counter() - started
    test_acc = accuracy(model, test_x, test_y, shape)
    click.echo(f"{model_name} on {dataset}: test accuracy {100 * test_acc:.2f} % "
               f"({len(test_y)} images), {train_seconds:.0f} s training")

    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), output)
    sidecar = {
        "name": name or output.stem,
        "zoo": model_name,
        "kwargs": full_kwargs(entry.builder, kwargs),
        "weights": output.name,
        "dataset": dataset,
        "test_accuracy": round(test_acc, 6),
        "test_images": int(len(test_y)),
        "command": canonical_command(model_name, dataset, given, epochs, batch_size, lr, seed, limit, output),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "threads": threads,
        "epoch_loss": [round(v, 5) for v in history],
        "train_seconds": round(train_seconds, 1),
        "torch_version": torch.__version__,
        "input": {"shape": [1, *shape], "layout": "NCHW", "dtype": "float32",
                  "preprocess": "uint8 image / 255 (grayscale, values in [0, 1])"
                                + ("; zero-padded to the shape" if shape[1] != 28 else "")},
        "labels": CLASS_NAMES[dataset],
    }
    output.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    click.echo(f"saved {output} and {output.with_suffix('.json')}")
    if export_path:
        example = torch.zeros(1, *shape)
        torch.export.save(torch.export.export(model.eval(), (example,)), export_path)
        click.echo(f"saved {export_path} (torch.export)")


if __name__ == "__main__":
    train()
