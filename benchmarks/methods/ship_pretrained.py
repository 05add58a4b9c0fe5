"""Train and package the pretrained model shipped in edgebnn/zoo/pretrained/.

    python benchmarks/methods/ship_pretrained.py        # from the repository root, after pip install '.[convert]'

Runs `edgebnn train` for the binary MNIST CNN (the `bnn` row of the methods
table), then writes mnist_digits.npz: the first two test digits of every
class, uint8, for the README demo (which must work without ../shared), and
mnist_bnn.ebnn: the model converted, which a runtime-only install (no torch)
runs in `edgebnn demo`. After changing the converter or the format, rerun
only that step: python benchmarks/methods/ship_pretrained.py --packed
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PRETRAINED = ROOT / "edgebnn" / "zoo" / "pretrained"
TRAIN = ["binarynet_cnn", "--method", "bnn", "--dataset", "mnist", "--epochs", "5", "--batch-size", "128",
         "--lr", "0.01", "--seed", "0", "--threads", "1",
         "-o", "edgebnn/zoo/pretrained/mnist_bnn.pt", "--name", "mnist_bnn"]
MAX_BYTES = 1_000_000


def write_digits(per_class: int = 2) -> Path:
    from edgebnn.datasets import load_split

    images, labels = load_split("mnist", "test")
    picks = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    picks.sort()  # keep test-set order: digits[i] is test image picks[i]
    out = PRETRAINED / "mnist_digits.npz"
    np.savez_compressed(out, images=images[picks], labels=labels[picks], test_index=picks.astype(np.int32))
    return out


def write_packed() -> Path:
    from edgebnn.commands.demo import convert_pretrained  # the installed package: it has the converters

    out = PRETRAINED / "mnist_bnn.ebnn"
    if convert_pretrained(out) is None:
        sys.exit("converting needs PyTorch: pip install '.[convert]'")
    return out


def main() -> None:
    if sys.argv[1:] == ["--packed"]:
        print(f"wrote {write_packed()}")
        return
    subprocess.run([sys.executable, "-m", "edgebnn.train", *TRAIN], cwd=ROOT, check=True)
    weights = PRETRAINED / "mnist_bnn.pt"
    if weights.stat().st_size >= MAX_BYTES:
        sys.exit(f"{weights} is {weights.stat().st_size} bytes; the package budget is {MAX_BYTES}")
    print(f"wrote {write_digits()} and {write_packed()}; {weights} is {weights.stat().st_size} bytes")


if __name__ == "__main__":
    main()
