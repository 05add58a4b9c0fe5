"""The pretrained binary MNIST CNN shipped in the package (the README demo's model)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from edgebnn.datasets import load_split
from edgebnn.nn import BinaryConv2d, BinaryLinear
from edgebnn.nn.training import accuracy, predict
from edgebnn.zoo import PRETRAINED_DIR, load_pretrained, load_sample_digits, pretrained_info, pretrained_names

MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def model():
    return load_pretrained("mnist_bnn")


def test_shipped_files_are_small_and_safe_to_load():
    info = pretrained_info("mnist_bnn")
    weights = PRETRAINED_DIR / info["weights"]
    assert weights.stat().st_size < 1_000_000
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert "mnist_bnn" in pretrained_names()


def test_sidecar_says_how_it_was_made():
    info = pretrained_info("mnist_bnn")
    assert info["zoo"] == "binarynet_cnn" and info["kwargs"]["method"] == "bnn"
    assert info["dataset"] == "mnist" and info["test_images"] == 10_000
    assert info["test_accuracy"] >= 0.98
    assert info["command"].startswith("edgebnn train binarynet_cnn") and isinstance(info["seed"], int)


def test_load_pretrained_is_in_eval_mode(model):
    assert not model.training
    with pytest.raises(ValueError, match="shipped"):
        pretrained_info("imagenet_giant")


def test_binary_layers_hold_plus_minus_one_weights(model):
    layers = [m for m in model.modules() if isinstance(m, (BinaryConv2d, BinaryLinear))]
    assert len(layers) == 3
    for layer in layers:
        assert set(layer.quantized_weight().unique().tolist()) <= {-1.0, 1.0}
        assert layer.binary_input
        assert getattr(layer, "pad_value", 0) == 0  # zero padding: the runtime's default


def test_sample_digits_are_classified(model):
    images, labels = load_sample_digits()
    assert images.dtype == np.uint8 and images.shape == (20, 28, 28)
    assert np.bincount(labels, minlength=10).tolist() == [2] * 10
    assert (predict(model, images, SHAPE) == labels).sum() >= 19


def test_exported_program_predicts_the_same(model):
    images, _ = load_sample_digits()
    x = torch.as_tensor(images).float().div(255).unsqueeze(1)
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), model(x))


@pytest.mark.skipif(not MNIST.exists(),
                    reason=f"MNIST reference data not found at {MNIST} (../shared beside the checkout)")
def test_reaches_98_percent_on_the_full_mnist_test_set(model):
    images, labels = load_split("mnist", "test", MNIST)
    acc = accuracy(model, images, labels, SHAPE)
    assert acc >= 0.98
    assert acc == pytest.approx(pretrained_info("mnist_bnn")["test_accuracy"], abs=1e-4)


def test_shipped_packed_file_is_a_fresh_conversion_of_the_shipped_weights(tmp_path):
    """A runtime-only install (no torch) runs the shipped .ebnn: it must be what converting gives today."""
    from edgebnn.commands.demo import convert_pretrained, shipped_packed_model
    from edgebnn.format import load
    from edgebnn.format.writer import to_bytes
    convert_pretrained(tmp_path / "m.ebnn")
    fresh, shipped = load(tmp_path / "m.ebnn"), load(shipped_packed_model())
    assert shipped.metadata["producer"].startswith("edgebnn convert (PyTorch")
    fresh.metadata["producer"] = shipped.metadata["producer"]  # names the torch version only
    assert to_bytes(fresh) == to_bytes(shipped), \
        "the shipped mnist_bnn.ebnn is stale: python benchmarks/methods/ship_pretrained.py --packed"
