"""The methods table: every method on the same CNN backbone, MNIST and Fashion-MNIST.

    python benchmarks/methods/run_methods.py               # train what is missing, then write the table
    python benchmarks/methods/run_methods.py --table-only  # re-render docs/methods.md from saved results

Each (method, dataset) run trains `binarynet_cnn` (edgebnn/zoo/mnist.py) with
one recipe for every method, the one the shipped mnist_bnn was trained with
(5 epochs, Adam lr 0.01 with cosine decay, batch 128, seed 0, one thread),
and evaluates on the full 10,000-image test set. Results go to benchmarks/methods/results/<method>-<dataset>.json, so
an interrupted run resumes; the table is rendered into docs/methods.md
between the methods-table markers.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from edgebnn.datasets import load_split  # noqa: E402
from edgebnn.nn import count_ops, weight_bits  # noqa: E402
from edgebnn.nn.training import TrainConfig, accuracy, fit, recalibrate_batchnorm  # noqa: E402
from edgebnn.zoo import create  # noqa: E402

RESULTS = ROOT / "benchmarks" / "methods" / "results"
DOC = ROOT / "docs" / "methods.md"
START, END = "<!-- methods-table:start -->", "<!-- methods-table:end -->"
SHAPE = (1, 28, 28)
CALIBRATION_IMAGES = 10_000  # training images (no labels) for BN re-estimation
DATASETS = ("mnist", "fashion-mnist")

# (row label, W/A bits, zoo kwargs). Same backbone, only the method changes.
ROWS = (
    ("float", "32 / 32", {"method": "float"}),
    ("BinaryConnect det.", "1 / 32", {"method": "bc_det"}),
    ("BinaryConnect stoch.", "1 / 32", {"method": "bc_stoch"}),
    ("XNOR-Net", "1 / 1", {"method": "xnor"}),
    ("HORQ order 2", "1 / 1×2", {"method": "horq", "bits": 2}),
    ("HWGQ 2-bit", "1 / 2", {"method": "hwgq", "bits": 2}),
    ("HetConv P=4", "32 / 32", {"method": "hetconv", "part": 4}),
    ("BinaryNet (shipped mnist_bnn)", "1 / 1", {"method": "bnn"}),
)


def run_key(kwargs: dict, dataset: str, seed: int = 0) -> str:
    # The table shows seed 0; other seeds (--seed N) only measure run-to-run spread.
    return f"{kwargs['method']}-{dataset}" + (f"-seed{seed}" if seed else "")


def set_stochastic_eval(model, mode: str) -> None:
    for module in model.modules():
        if hasattr(module, "stochastic_eval"):
            module.stochastic_eval = mode


def train_one(kwargs: dict, dataset: str, config: TrainConfig) -> dict:
    train_x, train_y = load_split(dataset, "train")
    test_x, test_y = load_split(dataset, "test")
    torch.manual_seed(config.seed)
    model = create("binarynet_cnn", **kwargs)
    started = time.perf_counter()
    fit(model, train_x, train_y, SHAPE, config)
    result = {
        "kwargs": kwargs, "dataset": dataset, "epochs": config.epochs, "lr": config.lr, "seed": config.seed,
        "train_seconds": round(time.perf_counter() - started, 1), "test_images": int(len(test_y)),
        "accuracy": accuracy(model, test_x, test_y, SHAPE),
    }
    if kwargs["method"] == "bc_stoch":
        # The paper evaluated with the real-valued weights; a binary deployment
        # uses sign(w). BN learned the statistics of *sampled* weights, so
        # each is also measured after re-estimating BN for its weights.
        set_stochastic_eval(model, "real")
        result["accuracy_real_weights"] = accuracy(model, test_x, test_y, SHAPE)
        for mode in ("sign", "real"):
            set_stochastic_eval(model, mode)
            recalibrate_batchnorm(model, train_x[:CALIBRATION_IMAGES], SHAPE)
            result[f"accuracy_{mode}_bn_recalibrated"] = accuracy(model, test_x, test_y, SHAPE)
    return result


def cost(kwargs: dict, stochastic_eval: str = "sign") -> dict:
    model = create("binarynet_cnn", **kwargs)
    set_stochastic_eval(model, stochastic_eval)
    ops = count_ops(model, torch.zeros(1, *SHAPE))
    return {"weight_kib": weight_bits(model) / 8 / 1024, "float_macs": ops.float_macs,
            "addonly_macs": ops.addonly_macs, "binary_macs": ops.binary_macs, "ops": ops.ops}


def _pct(result: dict, key: str, recalibrated_key: str | None = None) -> str:
    if key not in result:
        return "—"
    text = f"{100 * result[key]:.2f}"
    if recalibrated_key and recalibrated_key in result:
        text += f" ({100 * result[recalibrated_key]:.2f})"
    return text


def _m(v):
    return f"{v / 1e6:.2f}M" if v else "0"


def render_table(results: dict) -> str:
    base = cost({"method": "float"})
    lines = [
        "| Method | W / A bits | MNIST acc. % | Fashion-MNIST acc. % | Weights KiB (× smaller) "
        "| MACs float / add-only / binary | OPs = FLOPs + BOPs/64 (× fewer) |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(label, bits, kw, key="accuracy", recalibrated_key=None, stochastic_eval="sign"):
        c = cost(kw, stochastic_eval)
        accs = [_pct(results.get(run_key(kw, d), {}), key, recalibrated_key) for d in DATASETS]
        lines.append(
            f"| {label} | {bits} | {accs[0]} | {accs[1]} | "
            f"{c['weight_kib']:.1f} ({base['weight_kib'] / c['weight_kib']:.1f}×) | "
            f"{_m(c['float_macs'])} / {_m(c['addonly_macs'])} / {_m(c['binary_macs'])} | "
            f"{c['ops'] / 1e6:.2f}M ({base['ops'] / c['ops']:.1f}×) |"
        )

    for label, bits, kw in ROWS:
        if kw["method"] == "bc_stoch":
            row(f"{label}, sign(w) eval [BN re-est.]", bits, kw, "accuracy", "accuracy_sign_bn_recalibrated")
            row(f"{label}, real-w eval (paper) [BN re-est.]", "32 / 32", kw, "accuracy_real_weights",
                "accuracy_real_bn_recalibrated", "real")
        else:
            row(label, bits, kw)
    return "\n".join(lines)


def render_spread(results: dict) -> str:
    """One line per (method, dataset) trained with more than one seed: the spread to read the table with."""
    lines = []
    for label, _, kw in ROWS:
        for dataset in DATASETS:
            accs = [r["accuracy"] for r in results.values()
                    if r["kwargs"] == kw and r["dataset"] == dataset]
            if len(accs) > 1:
                lines.append(f"{label} on {dataset}, seeds 0–{len(accs) - 1}: "
                             f"{100 * min(accs):.2f}–{100 * max(accs):.2f} % "
                             f"(mean {100 * sum(accs) / len(accs):.2f})")
    return ("\nRun-to-run spread (same recipe, other seeds):\n\n" + "\n".join(f"- {x}" for x in lines)) if lines else ""


def write_doc(table: str) -> None:
    text = DOC.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="*", help="only these methods (float, bc_det, ..., bnn)")
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="re-run even when a result file exists")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed)
    if not args.table_only:
        # HORQ last: it is the slow one (im2col in PyTorch), the rest resumes from files.
        for _, _, kw in sorted(ROWS, key=lambda row: row[2]["method"] == "horq"):
            if args.methods and kw["method"] not in args.methods:
                continue
            for dataset in args.datasets:
                path = RESULTS / f"{run_key(kw, dataset, args.seed)}.json"
                if path.exists() and not args.force:
                    continue
                result = train_one(kw, dataset, config)
                path.write_text(json.dumps(result, indent=2) + "\n")
                print(f"{run_key(kw, dataset, args.seed)}: {100 * result['accuracy']:.2f} % "
                      f"({result['train_seconds']:.0f} s)", flush=True)
    results = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json")}
    table = render_table(results) + "\n" + render_spread(results)
    print(table)
    if DOC.exists():
        write_doc(table)


if __name__ == "__main__":
    main()
