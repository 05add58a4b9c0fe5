"""Trained models through the whole path a user takes, compared with PyTorch on a full test set.

    python benchmarks/convert/verify_trained.py [--epochs 1] [--dataset mnist] [--data-dir DIR] [--out docs/convert.md]

For each method of the methods table: `edgebnn train binarynet_cnn --method M --export M.pt2`
(the user's PyTorch model, as a torch.export program), `edgebnn convert M.pt2`, then every
test image through the C runtime and through the exported PyTorch module. Reports how many
predictions are identical, both accuracies, the layer kinds and the file size.
Needs the IDX files (../shared/data/<dataset> or /usr/share/datasets/<dataset>).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

METHODS = ["bnn", "xnor", "bireal", "react", "horq", "hwgq", "hetconv", "bc_det", "float"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--data-dir", help="folder with the IDX files (default: edgebnn's search path)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "docs" / "convert.md")
    a = ap.parse_args()

    import torch

    from edgebnn import Runtime
    from edgebnn.converters import convert
    from edgebnn.datasets import load_split

    images, labels = load_split(a.dataset, "test", a.data_dir)
    data_args = ["--data-dir", a.data_dir] if a.data_dir else []
    x = images.astype(np.float32).reshape(-1, 1, 28, 28) / 255
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for m in a.methods.split(","):
            pt2, pt = Path(d) / f"{m}.pt2", Path(d) / f"{m}.pt"
            subprocess.run([sys.executable, "-m", "edgebnn", "train", "binarynet_cnn", "--method", m, "--dataset",
                            a.dataset, "--epochs", str(a.epochs), "-o", str(pt), "--export", str(pt2), *data_args],
                           check=True, stdout=subprocess.DEVNULL)
            report = convert(pt2, output=Path(d) / f"{m}.ebnn")
            with torch.no_grad():
                module = torch.export.load(str(pt2)).module()
                want = np.concatenate([module(torch.from_numpy(x[i:i + 1])).argmax(1).numpy()
                                       for i in range(len(x))])
            rt = Runtime(Path(d) / f"{m}.ebnn")
            got = np.array([int(rt.run(x[i:i + 1]).argmax()) for i in range(len(x))])
            kinds = report.to_dict()["totals"]["layers_by_kind"]
            rows.append((m, int((got == want).sum()), len(x), float((want == labels).mean()),
                         float((got == labels).mean()), ", ".join(f"{v} {k}" for k, v in kinds.items() if v),
                         report.file_bytes))
            print(rows[-1], file=sys.stderr)
    lines = ["# Converted models against PyTorch", "",
             f"`python benchmarks/convert/verify_trained.py --epochs {a.epochs} --dataset {a.dataset}`: each method "
             f"of the methods table trained with `edgebnn train binarynet_cnn --method M --epochs {a.epochs} "
             f"--export M.pt2`, converted with `edgebnn convert M.pt2`, and run on all {len(x):,} {a.dataset} test "
             "images by the C runtime and by the exported PyTorch module.", "",
             "| method | identical predictions | PyTorch acc. % | edgebnn acc. % | layers | file bytes |",
             "| --- | ---: | ---: | ---: | --- | ---: |"]
    for m, same, n, acc_pt, acc_rt, kinds, size in rows:
        lines.append(f"| {m} | {same:,} / {n:,} | {100 * acc_pt:.2f} | {100 * acc_rt:.2f} | {kinds} | {size:,} |")
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
