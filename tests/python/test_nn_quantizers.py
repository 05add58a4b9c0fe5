"""Each quantizer's forward values and backward gradients against the papers' formulas."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgebnn.nn import (
    HWGQ,
    BinaryConv2d,
    BinaryLinear,
    RPReLU,
    RSign,
    approx_sign,
    binary_sign,
    binaryconnect_det,
    binaryconnect_stoch,
    clip_binary_weights_,
    gaussian_step,
    hard_sigmoid,
    horq_approx,
    sign_ste,
    xnor_input_scale_conv,
    xnor_weight,
)
from edgebnn.nn.hwgq import hwgq_grad


def grad_of(fn, x, upstream=None):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    y.backward(torch.ones_like(y) if upstream is None else upstream)
    return y.detach(), x.grad


# --- sign family -----------------------------------------------------------

def test_binary_sign_maps_zero_to_plus_one():
    x = torch.tensor([-2.0, -1e-6, 0.0, -0.0, 1e-6, 3.0])
    assert binary_sign(x).tolist() == [-1, -1, 1, 1, 1, 1]


def test_sign_ste_gradient_is_hard_tanh_window():
    x = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.7, 1.0, 1.01, 5.0])
    y, g = grad_of(sign_ste, x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1]
    assert g.tolist() == [0, 1, 1, 1, 1, 1, 0, 0]


def test_approx_sign_gradient_is_birealnet_polynomial():
    x = torch.tensor([-1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0])
    y, g = grad_of(approx_sign, x)
    assert y.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1, 1]
    expected = [0, 0, 1, 1.5, 2, 1.5, 1, 0, 0]  # 2+2x on [-1,0), 2-2x on [0,1), 0 outside
    assert torch.allclose(g, torch.tensor(expected))


# --- BinaryConnect ----------------------------------------------------------

def test_binaryconnect_det_forward_sign_backward_identity():
    w = torch.tensor([-0.9, -0.1, 0.0, 0.4, 2.0])
    y, g = grad_of(binaryconnect_det, w, upstream=torch.arange(5.0))
    assert y.tolist() == [-1, -1, 1, 1, 1]
    assert g.tolist() == [0, 1, 2, 3, 4]  # straight through, no cancellation


def test_binaryconnect_stoch_follows_hard_sigmoid_with_given_noise():
    w = torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.5])
    p = hard_sigmoid(w)
    assert p.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    noise = torch.tensor([0.0, 0.2, 0.6, 0.7, 0.999])
    y, g = grad_of(lambda t: binaryconnect_stoch(t, noise), w, upstream=torch.arange(5.0))
    assert y.tolist() == [-1, 1, -1, 1, 1]  # +1 exactly where noise < p
    assert g.tolist() == [0, 1, 2, 3, 4]


def test_binaryconnect_stoch_mean_is_2p_minus_1():
    torch.manual_seed(0)
    w = torch.full((200_000,), 0.4)
    mean = binaryconnect_stoch(w).mean().item()
    assert mean == pytest.approx(2 * 0.7 - 1, abs=0.01)


def test_clipping_applies_to_binaryconnect_and_binarynet_only():
    layers = {q: BinaryLinear(4, 3, weight_quant=q) for q in ("bc_det", "bc_stoch", "sign", "xnor")}
    for layer in layers.values():
        with torch.no_grad():
            layer.weight.fill_(3.0)
    clip_binary_weights_(torch.nn.ModuleList(layers.values()))
    for q in ("bc_det", "bc_stoch", "sign"):
        assert layers[q].weight.max().item() == 1.0
    assert layers["xnor"].weight.max().item() == 3.0


def test_binaryconnect_latent_weights_start_over_the_clip_range():
    # Small latent weights would make p = hard_sigmoid(w) ≈ 1/2: pure noise.
    torch.manual_seed(0)
    w = BinaryConv2d(64, 64, 3, weight_quant="bc_stoch").weight
    assert w.abs().max() <= 1 and w.abs().mean() > 0.4


def test_stochastic_layer_evaluates_with_sign_or_real_weights():
    layer = BinaryLinear(5, 2, weight_quant="bc_stoch", input_quant="none").eval()
    x = torch.randn(3, 5)
    assert torch.equal(layer(x), x @ binary_sign(layer.weight).t())
    layer.stochastic_eval = "real"
    assert torch.allclose(layer(x), x @ layer.weight.t())


# --- XNOR-Net ---------------------------------------------------------------

def test_xnor_weight_forward_alpha_per_output_filter():
    w = torch.randn(4, 3, 3, 3)
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(xnor_weight(w), alpha * binary_sign(w))


def test_xnor_weight_backward_matches_paper():
    torch.manual_seed(0)
    w = torch.randn(4, 2, 3, 3) * 1.2  # some |w| > 1 so the STE window matters
    upstream = torch.randn_like(w)
    _, g = grad_of(xnor_weight, w, upstream)
    n = 2 * 3 * 3
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = upstream * (1 / n + alpha * (w.abs() <= 1).float())
    assert torch.allclose(g, expected)


def test_xnor_input_scale_is_box_filtered_channel_mean():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6)
    k = xnor_input_scale_conv(x, (3, 3), (2, 2), (1, 1))
    padded = F.pad(x.abs(), (1, 1, 1, 1))
    for i in range(k.shape[2]):
        for j in range(k.shape[3]):
            window = padded[:, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            assert torch.allclose(k[:, 0, i, j], window.mean(dim=(1, 2, 3)))


def test_xnor_conv_is_binary_conv_times_k_times_alpha():
    torch.manual_seed(0)
    layer = BinaryConv2d(3, 4, 3, stride=1, padding=1, weight_quant="xnor", input_quant="xnor").eval()
    x = torch.randn(2, 3, 6, 6)
    w = layer.weight
    alpha = w.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
    k = F.avg_pool2d(x.abs().mean(1, keepdim=True), 3, 1, 1, count_include_pad=True)
    expected = F.conv2d(binary_sign(x), binary_sign(w), padding=1) * k * alpha
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_xnor_input_backward_is_hard_tanh_ste_through_sign():
    layer = BinaryLinear(3, 1, weight_quant="none", input_quant="sign")
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.tensor([[-2.0, 0.5, 1.5]])
    _, g = grad_of(layer, x)
    assert g.tolist() == [[0.0, 1.0, 0.0]]


# --- HORQ -------------------------------------------------------------------

def horq_patch_reference(patch: np.ndarray, order: int) -> list:
    """The algorithms.md recurrence, literally, on one flat patch."""
    r, planes = patch.astype(np.float64), []
    for _ in range(order):
        h = np.where(r >= 0, 1.0, -1.0)
        beta = np.abs(r).mean()
        planes.append((beta, h))
        r = r - beta * h
    return planes


@pytest.mark.parametrize("order,pad_value", [(1, 0), (2, 0), (3, 0), (2, 1)])
def test_horq_conv_matches_per_patch_reference(order, pad_value):
    torch.manual_seed(order)
    layer = BinaryConv2d(2, 3, 3, stride=2, padding=1, weight_quant="xnor", input_quant="horq", input_bits=order,
                         pad_value=pad_value)
    x = torch.randn(1, 2, 5, 5)
    y = layer.eval()(x).detach().numpy()
    w = layer.weight.detach().numpy()
    alpha = np.abs(w).mean(axis=(1, 2, 3))
    wb = np.where(w >= 0, 1.0, -1.0).reshape(3, -1)
    # The padding taps are real values of r (zeros by default) and go through the recurrence.
    xp = np.pad(x.numpy()[0], ((0, 0), (1, 1), (1, 1)), constant_values=pad_value)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            patch = xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].reshape(-1)
            planes = horq_patch_reference(patch, order)
            for o in range(3):
                expected = sum(beta * (h @ wb[o]) for beta, h in planes) * alpha[o]
                assert y[0, o, i, j] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_horq_residual_shrinks_with_order():
    torch.manual_seed(0)
    r = torch.randn(8, 72)
    errors = [(horq_approx(r, k, dim=-1) - r).norm().item() for k in (1, 2, 3, 4)]
    assert errors == sorted(errors, reverse=True)


def test_horq_gradient_is_straight_through_to_input():
    torch.manual_seed(0)
    layer = BinaryConv2d(2, 3, 3, padding=1, weight_quant="none", input_quant="horq", input_bits=2)
    x = torch.randn(2, 2, 4, 4)
    upstream = torch.randn(2, 3, 4, 4)
    _, g = grad_of(layer, x, upstream)
    _, g_ref = grad_of(lambda t: F.conv2d(t, layer.weight.detach(), padding=1), x, upstream)
    assert torch.allclose(g, g_ref, atol=1e-5)


# --- HWGQ -------------------------------------------------------------------

def half_gaussian_mse(step: float, bits: int) -> float:
    x = np.linspace(0, 12, 400_001)
    q = step * np.clip(np.floor(x / step + 0.5), 0, 2**bits - 1)
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return float(((x - q) ** 2 * pdf).sum() * (x[1] - x[0]))


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_hwgq_step_minimises_half_gaussian_error(bits):
    step = gaussian_step(bits)
    best = half_gaussian_mse(step, bits)
    assert best < half_gaussian_mse(step * 1.02, bits)
    assert best < half_gaussian_mse(step * 0.98, bits)


def test_hwgq_two_bit_step_value():
    # Optimal uniform step for the positive half of N(0, 1); the paper quotes 0.538
    # (see docs/methods.md for why this definition gives 0.6508).
    assert gaussian_step(2) == pytest.approx(0.6508, abs=1e-4)


def test_hwgq_forward_levels():
    q = HWGQ(bits=2)
    d = q.step
    x = torch.tensor([-1.0, 0.0, 0.49 * d, 0.51 * d, 1.4 * d, 2.6 * d, 10.0])
    expected = torch.tensor([0, 0, 0, d, d, 3 * d, 3 * d])
    assert torch.allclose(q(x), expected)


@pytest.mark.parametrize("kind", ["relu", "clipped", "log_tailed"])
def test_hwgq_backward_variants(kind):
    q = HWGQ(bits=2, backward=kind)
    q_max = 3 * q.step
    x = torch.tensor([-0.5, 0.5, q_max - 0.01, q_max + 0.5, q_max + 3.0])
    y, g = grad_of(q, x)
    assert torch.allclose(y, HWGQ(bits=2)(x))
    tau = q_max - 1
    expected = {
        "relu": [0, 1, 1, 1, 1],
        "clipped": [0, 1, 1, 0, 0],
        "log_tailed": [0, 1, 1, 1 / (q_max + 0.5 - tau), 1 / (q_max + 3.0 - tau)],
    }[kind]
    assert torch.allclose(g, torch.tensor(expected, dtype=torch.float32))
    assert torch.allclose(hwgq_grad(x, q_max, kind), g)


# --- ReActNet ---------------------------------------------------------------

def test_rsign_thresholds_per_channel_with_approx_sign_gradient():
    rsign = RSign(2)
    with torch.no_grad():
        rsign.threshold.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[[0.25, 0.75]], [[-0.75, -0.25]]]).view(1, 2, 1, 2).requires_grad_(True)
    y = rsign(x)
    assert y.flatten().tolist() == [-1, 1, -1, 1]
    y.sum().backward()
    z = (x - rsign.threshold.view(1, 2, 1, 1)).detach()
    slope = torch.where(z < 0, 2 + 2 * z, 2 - 2 * z) * ((z >= -1) & (z < 1))
    assert torch.allclose(x.grad, slope)
    assert torch.allclose(rsign.threshold.grad, -slope.sum(dim=(0, 2, 3)))


def test_rprelu_formula():
    act = RPReLU(2)
    with torch.no_grad():
        act.shift_in.copy_(torch.tensor([1.0, -1.0]))
        act.slope.copy_(torch.tensor([0.1, 0.5]))
        act.shift_out.copy_(torch.tensor([2.0, 0.0]))
    x = torch.tensor([[0.0, 3.0], [-3.0, 0.0]]).view(1, 2, 2)  # channel dim 1
    z = x - act.shift_in.view(1, 2, 1)
    expected = torch.where(z >= 0, z, act.slope.view(1, 2, 1) * z) + act.shift_out.view(1, 2, 1)
    assert torch.allclose(act(x), expected)
    assert act(x)[0, 0].tolist() == pytest.approx([-0.1 + 2.0, 2.0 + 2.0])
