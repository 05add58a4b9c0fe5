"""BinaryConv2d / BinaryLinear semantics, HetConv, compact blocks, cost counting, torch.export."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgebnn.nn import (
    INPUT_QUANTIZERS,
    WEIGHT_QUANTIZERS,
    BinaryConv2d,
    BinaryLinear,
    ChannelShuffle,
    DepthwiseSeparable,
    HetConv2d,
    InvertedResidual,
    binary_sign,
    channel_shuffle,
    count_ops,
    weight_bits,
)


def export_matches_eager(module: nn.Module, x: torch.Tensor) -> torch.export.ExportedProgram:
    module.eval()
    program = torch.export.export(module, (x,))
    torch.testing.assert_close(program.module()(x), module(x))
    return program


# --- BinaryConv2d / BinaryLinear ---------------------------------------------

def test_binary_conv_zero_padding_taps_are_zero():
    torch.manual_seed(0)
    layer = BinaryConv2d(2, 3, 3, padding=1, weight_quant="sign", input_quant="sign").eval()
    x = torch.randn(1, 2, 4, 4)
    expected = F.conv2d(binary_sign(x), binary_sign(layer.weight), padding=1)
    assert torch.equal(layer(x), expected)


def test_binary_conv_one_padding_taps_are_plus_one():
    torch.manual_seed(0)
    layer = BinaryConv2d(2, 3, 3, padding=1, weight_quant="sign", input_quant="sign", pad_value=1).eval()
    x = torch.randn(1, 2, 4, 4)
    expected = F.conv2d(F.pad(binary_sign(x), (1, 1, 1, 1), value=1.0), binary_sign(layer.weight))
    assert torch.equal(layer(x), expected)
    # Every tap is ±1, so each output is an odd/even integer of the right parity: n = 18 taps.
    assert torch.all((layer(x) + 18) % 2 == 0)


def test_binary_conv_rejects_other_pad_values():
    with pytest.raises(ValueError, match="pad_value"):
        BinaryConv2d(2, 3, 3, padding=1, pad_value=-1)


def test_binary_linear_xnor_scales():
    torch.manual_seed(0)
    layer = BinaryLinear(6, 4, weight_quant="xnor", input_quant="xnor").eval()
    x = torch.randn(3, 6)
    alpha = layer.weight.abs().mean(dim=1)
    beta = x.abs().mean(dim=1, keepdim=True)
    expected = (binary_sign(x) @ binary_sign(layer.weight).t()) * beta * alpha
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_unknown_quantizer_names_are_rejected():
    with pytest.raises(ValueError, match="weight_quant"):
        BinaryConv2d(2, 2, weight_quant="ternary")
    with pytest.raises(ValueError, match="input_quant"):
        BinaryLinear(2, 2, input_quant="int8")


@pytest.mark.parametrize("weight_quant,input_quant", list(itertools.product(WEIGHT_QUANTIZERS, INPUT_QUANTIZERS)))
def test_every_quantizer_combination_trains_and_exports(weight_quant, input_quant):
    torch.manual_seed(0)
    layer = BinaryConv2d(4, 4, 3, padding=1, weight_quant=weight_quant, input_quant=input_quant)
    x = torch.randn(2, 4, 5, 5)
    layer.train()(x).square().mean().backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
    assert layer.weight.grad.abs().sum() > 0
    export_matches_eager(layer, x)


@pytest.mark.parametrize("input_quant", INPUT_QUANTIZERS)
def test_binary_linear_exports(input_quant):
    export_matches_eager(BinaryLinear(8, 3, input_quant=input_quant), torch.randn(2, 8))


# --- HetConv ------------------------------------------------------------------

@pytest.mark.parametrize("kernel,part,stride", [(3, 4, 1), (3, 4, 2), (3, 2, 1), (5, 4, 2), (3, 8, 1)])
def test_hetconv_equals_dense_conv_with_its_kernel(kernel, part, stride):
    torch.manual_seed(0)
    layer = HetConv2d(16, 8, kernel, part=part, stride=stride, bias=True)
    x = torch.randn(2, 16, 9, 7)
    expected = F.conv2d(x, layer.dense_weight(), layer.bias, stride, kernel // 2)
    torch.testing.assert_close(layer(x), expected, rtol=1e-4, atol=1e-5)


def test_hetconv_dense_weight_follows_the_shifted_arrangement():
    part, k = 4, 3
    layer = HetConv2d(8, 8, k, part=part)
    dense = layer.dense_weight()
    centre_only = torch.ones(k, k, dtype=torch.bool)
    centre_only[k // 2, k // 2] = False
    for j in range(8):
        big = [c for c in range(8) if c % part == j % part]
        rest = [c for c in range(8) if c % part != j % part]
        assert torch.equal(dense[j, big], layer.w3[j].detach())  # index i <-> channel (j%P) + i*P
        assert torch.equal(dense[j, rest, 1, 1], layer.w1[j].detach())  # increasing channel order
        assert torch.all(dense[j, rest][:, centre_only] == 0)


def test_hetconv_parameters_and_macs():
    layer = HetConv2d(64, 32, 3, part=4)
    assert layer.w3.shape == (32, 16, 3, 3)
    assert layer.w1.shape == (32, 48)
    assert layer.macs_per_position() == 32 * (64 * 9 // 4 + 64 - 16)
    ops = count_ops(layer, torch.zeros(1, 64, 8, 8))
    assert ops.float_macs == 64 * layer.macs_per_position()


def test_hetconv_requires_part_to_divide_channels():
    with pytest.raises(ValueError, match="part"):
        HetConv2d(6, 8, 3, part=4)


def test_hetconv_exports_without_a_dense_kernel():
    layer = HetConv2d(8, 8, 3, part=4, stride=2)
    program = export_matches_eager(layer, torch.randn(1, 8, 6, 6))
    convs = [n for n in program.graph.nodes if n.op == "call_function" and "conv" in str(n.target)]
    assert convs, "expected convolutions in the exported graph"
    for node in convs:
        weight_shape = node.args[1].meta["val"].shape
        assert tuple(weight_shape) != (8, 8, 3, 3)  # never the dense zero-filled kernel
        assert weight_shape[1] < 8  # every conv sees a channel subset (grouped)


# --- compact blocks -------------------------------------------------------------

def test_depthwise_separable_structure_and_export():
    block = DepthwiseSeparable(8, 16, stride=2)
    dw, pw = block[0][0], block[1][0]
    assert dw.groups == 8 and dw.kernel_size == (3, 3) and pw.kernel_size == (1, 1)
    program = export_matches_eager(block, torch.randn(1, 8, 10, 10))
    assert program.module()(torch.randn(1, 8, 10, 10)).shape == (1, 16, 5, 5)


def test_inverted_residual_adds_shortcut_only_when_shapes_match():
    same = InvertedResidual(8, 8, stride=1, expand_ratio=6)
    assert same.use_residual
    assert not InvertedResidual(8, 16, stride=1).use_residual
    assert not InvertedResidual(8, 8, stride=2).use_residual
    same.eval()
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(same(x), x + same.body(x))
    export_matches_eager(same, x)


def test_channel_shuffle_permutation():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    export_matches_eager(ChannelShuffle(3), torch.randn(1, 6, 2, 2))


# --- cost ---------------------------------------------------------------------------

def test_count_ops_splits_by_arithmetic():
    x = torch.zeros(1, 4, 6, 6)
    macs = 36 * 4 * 9 * 8  # positions × C·kh·kw × out
    assert count_ops(nn.Conv2d(4, 8, 3, padding=1), x).float_macs == macs
    binary_connect = BinaryConv2d(4, 8, 3, padding=1, weight_quant="bc_det", input_quant="none")
    assert count_ops(binary_connect, x).addonly_macs == macs
    assert count_ops(BinaryConv2d(4, 8, 3, padding=1), x).binary_macs == macs
    assert count_ops(BinaryConv2d(4, 8, 3, padding=1, input_quant="horq", input_bits=2), x).binary_macs == 2 * macs
    ops = count_ops(BinaryConv2d(4, 8, 3, padding=1, input_quant="hwgq", input_bits=2), x)
    assert ops.binary_macs == 2 * macs and ops.ops == 2 * macs / 64


def test_weight_bits_counts_one_bit_per_binary_weight():
    assert weight_bits(nn.Linear(10, 4, bias=False)) == 32 * 40
    assert weight_bits(BinaryLinear(10, 4, weight_quant="sign")) == 40
    assert weight_bits(BinaryLinear(10, 4, weight_quant="xnor")) == 40 + 32 * 4  # + α per output
    stoch = BinaryLinear(10, 4, weight_quant="bc_stoch")
    assert weight_bits(stoch) == 40
    stoch.stochastic_eval = "real"
    assert weight_bits(stoch) == 32 * 40
