"""Datasets, the training loop and the `train` command (a few steps at most; no convergence)."""
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgebnn.datasets import DatasetNotFound, find_split, load_split, read_idx
from edgebnn.nn.training import TrainConfig, accuracy, fit, recalibrate_batchnorm, to_input
from edgebnn.train import canonical_command, parse_kwargs, train
from edgebnn.zoo import create

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MNIST = SHARED_DATA / "mnist"
needs_mnist = pytest.mark.skipif(
    not (MNIST / "t10k-images-idx3-ubyte.gz").exists(),
    reason=f"MNIST reference data not found at {MNIST} (it sits beside a project checkout, in ../shared)",
)
TINY = {"channels": (8, 16, 16), "hidden": 32}  # a few steps must stay well under a second


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def fake_digits(folder: Path, n: int = 64, seed: int = 0) -> Path:
    """A tiny learnable stand-in for MNIST: class = which 7-pixel-wide band is bright."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, :, 7 * c : 7 * c + 7] = 250
    folder.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


# --- datasets ----------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_parses_its_own_header(tmp_path, compress):
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / "x.idx", data, compress))
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    assert np.array_equal(out, data)


def test_read_idx_rejects_other_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(bad)


def test_missing_dataset_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGEBNN_DATA", str(tmp_path / "nowhere"))
    import edgebnn.datasets as ds

    monkeypatch.setattr(ds, "_REPO_ROOT", tmp_path)
    monkeypatch.setattr(ds, "candidate_dirs", lambda name, data_dir=None: [tmp_path / "nowhere" / name])
    with pytest.raises(DatasetNotFound, match="nowhere"):
        find_split("mnist", "test")


@needs_mnist
def test_mnist_test_split_matches_the_reference_readme():
    images, labels = load_split("mnist", "test", MNIST)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --- training loop -------------------------------------------------------------

def test_to_input_scales_pads_and_repeats():
    images = np.full((2, 28, 28), 255, np.uint8)
    x = to_input(images, (3, 32, 32))
    assert x.shape == (2, 3, 32, 32)
    assert x[:, :, 2:30, 2:30].min() == 1.0 and x[:, :, :2].max() == 0.0


def test_fit_is_deterministic_for_a_seed(tmp_path):
    fake_digits(tmp_path)
    images, labels = load_split("mnist", "train", tmp_path)
    config = TrainConfig(epochs=1, batch_size=16, seed=3)
    states = []
    for _ in range(2):
        torch.manual_seed(config.seed)
        model = create("binarynet_cnn", method="bc_stoch", num_classes=4, **TINY)
        fit(model, images, labels, (1, 28, 28), config)
        states.append(model.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_fit_learns_and_clips_latent_weights(tmp_path):
    fake_digits(tmp_path, n=128)
    images, labels = load_split("mnist", "train", tmp_path)
    torch.manual_seed(0)
    model = create("binarynet_cnn", method="bc_det", num_classes=4, **TINY)
    losses = fit(model, images, labels, (1, 28, 28), TrainConfig(epochs=3, batch_size=32, lr=5e-3))
    assert losses[-1] < losses[0]
    assert accuracy(model, images, labels, (1, 28, 28)) > 0.5
    latent = [m.weight for m in model.modules() if getattr(m, "clips_weights", False)]
    assert latent and all(w.abs().max() <= 1.0 for w in latent)


def test_recalibrate_batchnorm_measures_the_deterministic_network(tmp_path):
    fake_digits(tmp_path)
    images, _ = load_split("mnist", "train", tmp_path)
    x = to_input(images, (1, 28, 28))
    torch.manual_seed(0)
    model = create("binarynet_cnn", method="bc_stoch", num_classes=4, **TINY)
    with torch.no_grad():
        model.train()(x)  # running stats now describe *sampled* weights
    recalibrate_batchnorm(model, images, (1, 28, 28), batch_size=len(images))
    assert not model.training and model[4].momentum == 0.1
    # Reference: the stem BN normalising with batch statistics (as during re-estimation),
    # then the conv with its deterministic sign(w) weights.
    with torch.no_grad():
        h = model[0](x)
        h = torch.nn.functional.batch_norm(h, None, None, model[1].weight, model[1].bias, training=True)
        h = model[3](model[2](h))
    torch.testing.assert_close(model[4].running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)


# --- the command -------------------------------------------------------------------

def test_parse_kwargs_reads_literals():
    assert parse_kwargs(("bits=2", "width=0.5", "channels=(8, 16, 16)", "method=horq")) == {
        "bits": 2, "width": 0.5, "channels": (8, 16, 16), "method": "horq"}


def test_canonical_command_round_trips_the_options():
    cmd = canonical_command("binarynet_cnn", "mnist", {"method": "hwgq", "bits": 2}, 5, 128, 0.002, 0, 0, "m.pt")
    assert cmd == ("edgebnn train binarynet_cnn --dataset mnist --method hwgq --kw=bits=2 "
                   "--epochs 5 --batch-size 128 --lr 0.002 --seed 0 -o m.pt")


def test_train_command_trains_saves_and_reloads(tmp_path):
    data = fake_digits(tmp_path / "digits")
    out = tmp_path / "run" / "model.pt"
    result = CliRunner().invoke(train, ["binarynet_cnn", "--data-dir", str(data), "--method", "xnor",
                                        "--kw", "channels=(8, 16, 16)", "--kw", "hidden=32", "--epochs", "1",
                                        "--batch-size", "32", "-o", str(out), "--export", str(tmp_path / "m.pt2")])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["zoo"] == "binarynet_cnn" and sidecar["kwargs"]["method"] == "xnor"
    assert sidecar["seed"] == 0 and "--method xnor" in sidecar["command"]
    model = create(sidecar["zoo"], **sidecar["kwargs"])
    model.load_state_dict(torch.load(out, weights_only=True))
    assert (tmp_path / "m.pt2").exists()


def test_train_command_explains_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(train, ["no_such_model", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "unknown zoo model" in result.output
    result = runner.invoke(train, ["binarynet_cnn", "--data-dir", str(tmp_path / "empty"), "--dataset", "mnist"])
    assert result.exit_code != 0 and "not found" in result.output  # no silent fallback to another copy


@needs_mnist
def test_train_command_on_real_mnist_smoke(tmp_path):
    result = CliRunner().invoke(train, ["binarynet_cnn", "--data-dir", str(MNIST), "--limit", "256",
                                        "--kw", "channels=(8, 16, 16)", "--epochs", "1", "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["test_images"] == 256


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "edgebnn.train", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert proc.returncode == 0 and "Train zoo MODEL" in proc.stdout
