"""Per-op tests: build a one-op graph, save it, run it, compare with NumPy.

Every test builds its graph with ``edgebnn.ir.GraphBuilder``, writes it with
``edgebnn.format.save`` and runs it through ``edgebnn.Runtime``, then checks
the result against ``numpy_ref`` (the NumPy twin of the C reference kernels).

- Binary ops take packed inputs, so float data goes through ``sign_pack``
  inside the graph and the reference works on the +-1 arrays.
- Binary accumulators are checked bit for bit: with multiplier=None and
  bias=None the float output is exactly the integer accumulator (|acc| is far
  below 2**24), and packed outputs are ``unpack``-ed in the graph.
- Float ops are checked to float32 tolerance.
- Tensor-valued parameters (weights, bias, multipliers, thresholds, slopes,
  scales) are passed as constants made by ``b.const`` / ``b.const_bits``.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgebnn import Runtime
from edgebnn.format import save
from edgebnn.ir import GraphBuilder

try:  # tests/python as a package, or as a plain rootdir on sys.path
    from . import numpy_ref as R
except ImportError:
    import numpy_ref as R

INF = float("inf")
ACT = {None: (-INF, INF), "relu": (0.0, INF), "relu6": (0.0, 6.0)}


# ---- helpers ------------------------------------------------------------------

@pytest.fixture(autouse=True, params=["default", "ref"])
def backend(request, monkeypatch):
    """Every case twice: with the build's fast backends (XNNPACK for float conv, FC,
    pooling and add when built with it, the fused HetConv) and on the reference kernels
    alone (both switches are read when a model loads)."""
    if request.param == "ref":
        monkeypatch.setenv("EDGEBNN_XNNPACK", "0")
        monkeypatch.setenv("EDGEBNN_KERNELS", "ref")
    return request.param


def rng_for(*key):
    """A fixed-seed generator per test case, independent of test order and of
    PYTHONHASHSEED (FNV-1a of the case's repr)."""
    h = 2166136261
    for ch in repr(key).encode():
        h = ((h ^ ch) * 16777619) % (2**32)
    return np.random.default_rng(h)


def run(tmp_path, b, *inputs):
    path = tmp_path / "m.ebnn"
    save(b.build(), path)
    return Runtime(path, threads=1).run(*inputs)


def pads_of(padding, ih, iw, kh, kw, strides, dilations):
    """API padding ('valid' | 'same' | (t, l, b, r)) -> explicit pads."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return R.same_pads(ih, iw, kh, kw, strides, dilations)
    return tuple(int(p) for p in padding)


def pm1(rng, *shape):
    return np.where(rng.random(shape) < 0.5, -1, 1).astype(np.int8)


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def assert_close(got, want, rtol=1e-4):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    atol = rtol * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def assert_exact(got, want):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


def pad_id(p):
    return p if isinstance(p, str) else "p" + "".join(str(v) for v in p)


def conv_id(n, ih, iw, ic, oc, k, s, d, padding, extra=""):
    return (f"n{n}_{ih}x{iw}x{ic}_oc{oc}_k{k[0]}x{k[1]}_s{s[0]}{s[1]}"
            f"_d{d[0]}{d[1]}_{pad_id(padding)}{extra}")


# ---- float convolutions ----------------------------------------------------------

# (n, ih, iw, ic, oc, kernel, strides, dilations, padding, groups, activation, bias)
CONV_CASES = [
    (1, 8, 8, 3, 8, (3, 3), (1, 1), (1, 1), "same", 1, None, True),
    (2, 7, 9, 3, 5, (3, 3), (2, 2), (1, 1), "valid", 1, "relu", True),
    (1, 9, 7, 4, 6, (3, 3), (1, 1), (2, 2), "same", 2, "relu6", False),
    (1, 8, 8, 6, 6, (1, 1), (1, 1), (1, 1), "valid", 3, None, True),
    (1, 10, 6, 12, 8, (3, 3), (2, 1), (1, 2), (1, 0, 2, 1), 4, None, True),
    (1, 6, 6, 65, 7, (3, 3), (1, 2), (1, 1), (0, 2, 1, 0), 1, "relu", True),
    (1, 5, 5, 1, 1, (5, 5), (1, 1), (1, 1), "same", 1, None, False),
    (1, 8, 8, 8, 8, (3, 3), (2, 2), (1, 1), "same", 8, None, True),
]


@pytest.mark.parametrize(
    "n,ih,iw,ic,oc,k,s,d,padding,groups,act,has_bias",
    [pytest.param(*c, id=conv_id(*c[:9], f"_g{c[9]}_{c[10]}_b{int(c[11])}"))
     for c in CONV_CASES])
def test_conv2d(tmp_path, n, ih, iw, ic, oc, k, s, d, padding, groups, act,
                has_bias):
    rng = rng_for("conv2d", n, ih, iw, ic, oc, k, s, d, padding, groups)
    x = f32(rng, n, ih, iw, ic)
    w = f32(rng, oc, k[0], k[1], ic // groups)
    bias = f32(rng, oc) if has_bias else None
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    y = b.conv2d(xi, b.const(w), bias=None if bias is None else b.const(bias),
                 strides=s, dilations=d, padding=padding, groups=groups,
                 activation=act)
    b.output(y)
    got = run(tmp_path, b, x)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    want = R.conv2d(x, w, bias, s, d, pads, groups, *ACT[act])
    assert_close(got, want)


# (n, ih, iw, ic, multiplier, kernel, strides, dilations, padding, activation)
DW_CASES = [
    (1, 8, 8, 3, 1, (3, 3), (1, 1), (1, 1), "same", None),
    (1, 8, 8, 3, 2, (3, 3), (2, 2), (1, 1), "same", "relu6"),
    (2, 7, 5, 65, 1, (3, 3), (1, 1), (2, 2), "valid", "relu"),
    (1, 9, 9, 16, 2, (5, 3), (2, 1), (1, 1), (2, 1, 1, 0), None),
    (1, 6, 6, 1, 2, (3, 3), (1, 2), (1, 2), "same", None),
]


@pytest.mark.parametrize(
    "n,ih,iw,ic,m,k,s,d,padding,act",
    [pytest.param(*c, id=conv_id(c[0], c[1], c[2], c[3], c[3] * c[4], *c[5:9],
                                  f"_m{c[4]}_{c[9]}")) for c in DW_CASES])
def test_depthwise_conv2d(tmp_path, n, ih, iw, ic, m, k, s, d, padding, act):
    rng = rng_for("dw", n, ih, iw, ic, m, k, s, d, padding)
    x = f32(rng, n, ih, iw, ic)
    w = f32(rng, k[0], k[1], ic * m)
    bias = f32(rng, ic * m)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    y = b.depthwise_conv2d(xi, b.const(w), bias=b.const(bias), strides=s,
                           dilations=d, padding=padding, activation=act)
    b.output(y)
    got = run(tmp_path, b, x)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    want = R.depthwise_conv2d(x, w, bias, s, d, pads, *ACT[act])
    assert_close(got, want)


@pytest.mark.parametrize("n,k,o,act,has_bias", [
    pytest.param(1, 3, 5, None, True, id="n1_k3_o5"),
    pytest.param(2, 65, 10, "relu", True, id="n2_k65_o10_relu"),
    pytest.param(3, 130, 7, "relu6", False, id="n3_k130_o7_relu6_nobias"),
    pytest.param(1, 1, 1, None, False, id="n1_k1_o1"),
])
def test_fully_connected(tmp_path, n, k, o, act, has_bias):
    rng = rng_for("fc", n, k, o)
    x = f32(rng, n, k)
    w = f32(rng, o, k)
    bias = f32(rng, o) if has_bias else None
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    y = b.fully_connected(xi, b.const(w),
                          bias=None if bias is None else b.const(bias),
                          activation=act)
    b.output(y)
    assert_close(run(tmp_path, b, x), R.fully_connected(x, w, bias, *ACT[act]))


# (n, ih, iw, ic, oc, part, kernel, strides, dilations, padding, activation)
HET_CASES = [
    (1, 8, 8, 8, 8, 2, (3, 3), (1, 1), (1, 1), "same", None),
    (1, 8, 8, 16, 12, 4, (3, 3), (1, 1), (1, 1), "same", "relu"),
    (2, 9, 7, 8, 6, 4, (3, 3), (2, 2), (1, 1), "same", None),
    (1, 9, 9, 12, 5, 2, (3, 3), (1, 1), (2, 2), "valid", "relu6"),
    (1, 7, 8, 64, 16, 4, (3, 3), (2, 1), (1, 1), (1, 0, 2, 1), None),
]


@pytest.mark.parametrize(
    "n,ih,iw,ic,oc,part,k,s,d,padding,act",
    [pytest.param(*c, id=conv_id(*c[:5], *c[6:10], f"_P{c[5]}_{c[10]}"))
     for c in HET_CASES])
def test_hetconv2d(tmp_path, n, ih, iw, ic, oc, part, k, s, d, padding, act):
    rng = rng_for("het", n, ih, iw, ic, oc, part, k, s, d, padding)
    x = f32(rng, n, ih, iw, ic)
    w3 = f32(rng, oc, k[0], k[1], ic // part)
    w1 = f32(rng, oc, ic - ic // part)
    bias = f32(rng, oc)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    y = b.hetconv2d(xi, b.const(w3), b.const(w1), part, bias=b.const(bias),
                    strides=s, dilations=d, padding=padding, activation=act)
    b.output(y)
    got = run(tmp_path, b, x)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    want = R.hetconv2d(x, w3, w1, part, bias, s, d, pads, *ACT[act])
    assert_close(got, want)


# ---- sign / pack / unpack ----------------------------------------------------------

@pytest.mark.parametrize("c", [1, 3, 63, 64, 65, 130])
@pytest.mark.parametrize("with_thr", [False, True], ids=["thr0", "thr"])
def test_sign_pack_unpack(tmp_path, c, with_thr):
    rng = rng_for("pack", c, with_thr)
    x = f32(rng, 2, 3, 4, c)
    x.flat[::5] = 0.0  # sign(0) = +1
    thr = f32(rng, c, scale=0.5) if with_thr else None
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    xb = b.sign_pack(xi, thresholds=None if thr is None else b.const(thr))
    b.output(b.unpack(xb))
    assert_exact(run(tmp_path, b, x), R.sign(x, thr))


@pytest.mark.parametrize("shape,to", [((2, 3, 3, 64), (2, 576)), ((1, 2, 2, 128), (1, 8, 64)),
                                      ((1, 3, 2, 64), (2, 6, 32)), ((1, 5, 64), (1, 4, 80)),
                                      ((1, 3, 4, 10), (1, 120)), ((2, 3, 65), (2, 195))],
                         ids=lambda v: "x".join(map(str, v)))
def test_reshape_bits(tmp_path, shape, to):
    # packed rows pad each to whole words: a reshape moves bits between words (word-aligned
    # sources take the fast path)
    rng = rng_for("reshape bits", shape, to)
    x = f32(rng, *shape)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.unpack(b.reshape(b.sign_pack(xi), to)))
    assert_exact(run(tmp_path, b, x), R.sign(x, None).reshape(to))


# ---- binary convolution ---------------------------------------------------------------

# (n, ih, iw, ic, oc, kernel, strides, dilations, padding)
BCONV_SHAPES = [
    (1, 8, 8, 64, 16, (3, 3), (1, 1), (1, 1), "same"),
    (1, 7, 9, 1, 4, (3, 3), (1, 1), (1, 1), "same"),
    (2, 8, 8, 3, 8, (3, 3), (2, 2), (1, 1), "same"),
    (1, 9, 9, 63, 10, (3, 3), (1, 1), (2, 2), "same"),
    (1, 8, 7, 65, 9, (3, 3), (2, 1), (1, 1), (2, 0, 1, 1)),
    (1, 6, 6, 130, 7, (3, 3), (1, 1), (1, 1), "valid"),
    (1, 10, 10, 130, 5, (5, 3), (2, 2), (1, 2), (1, 2, 0, 3)),
    (1, 5, 5, 65, 3, (1, 1), (2, 2), (1, 1), "valid"),
]
BCONV_IDS = [conv_id(*c) for c in BCONV_SHAPES]


def _bconv_inputs(rng, n, ih, iw, ic, oc, k):
    x = f32(rng, n, ih, iw, ic)
    w = pm1(rng, oc, k[0], k[1], ic)
    return x, w


@pytest.mark.parametrize("pad_value", [0, 1], ids=["pad0", "pad1"])
@pytest.mark.parametrize("n,ih,iw,ic,oc,k,s,d,padding", BCONV_SHAPES,
                         ids=BCONV_IDS)
def test_bconv2d_acc(tmp_path, n, ih, iw, ic, oc, k, s, d, padding, pad_value):
    """Float output with no multiplier/bias is the accumulator, bit-exact."""
    rng = rng_for("bconv", n, ih, iw, ic, oc, k, s, d, padding)
    x, w = _bconv_inputs(rng, n, ih, iw, ic, oc, k)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    y = b.bconv2d(b.sign_pack(xi), b.const_bits(w), strides=s, dilations=d,
                  padding=padding, pad_value=pad_value)
    b.output(y)
    got = run(tmp_path, b, x)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    acc = R.bconv2d_acc(R.sign(x), w, s, d, pads, pad_value)
    assert_exact(got, acc.astype(np.float32))


@pytest.mark.parametrize("act", [None, "relu", "relu6"])
@pytest.mark.parametrize("n,ih,iw,ic,oc,k,s,d,padding",
                         BCONV_SHAPES[2:6], ids=BCONV_IDS[2:6])
def test_bconv2d_float_output(tmp_path, n, ih, iw, ic, oc, k, s, d, padding,
                              act):
    """y = clamp(mult * acc + bias): the per-channel float output stage."""
    rng = rng_for("bconv_f", n, ih, iw, ic, oc, k, s, d, padding, act)
    x, w = _bconv_inputs(rng, n, ih, iw, ic, oc, k)
    mult = (rng.random(oc) * 0.2).astype(np.float32)
    bias = f32(rng, oc)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    y = b.bconv2d(b.sign_pack(xi), b.const_bits(w), strides=s, dilations=d,
                  padding=padding, multiplier=b.const(mult),
                  bias=b.const(bias), activation=act)
    b.output(y)
    got = run(tmp_path, b, x)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    acc = R.bconv2d_acc(R.sign(x), w, s, d, pads, 0)
    assert_close(got, R.acc_to_f32(acc, mult, bias, *ACT[act]), rtol=1e-5)


@pytest.mark.parametrize("pad_value", [0, 1], ids=["pad0", "pad1"])
@pytest.mark.parametrize("n,ih,iw,ic,oc,k,s,d,padding",
                         [BCONV_SHAPES[i] for i in (0, 2, 4, 6)],
                         ids=[BCONV_IDS[i] for i in (0, 2, 4, 6)])
def test_bconv2d_bits_output(tmp_path, n, ih, iw, ic, oc, k, s, d, padding,
                             pad_value):
    """Thresholded packed output (BatchNorm + sign folded), unpacked in-graph."""
    rng = rng_for("bconv_b", n, ih, iw, ic, oc, k, s, d, padding, pad_value)
    x, w = _bconv_inputs(rng, n, ih, iw, ic, oc, k)
    span = max(1, ic * k[0] * k[1] // 8)
    thr = rng.integers(-span, span + 1, oc).astype(np.int32)
    direction = np.where(rng.random(oc) < 0.5, -1, 1).astype(np.int32)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    yb = b.bconv2d(b.sign_pack(xi), b.const_bits(w), strides=s, dilations=d,
                   padding=padding, pad_value=pad_value,
                   thresholds=b.const(thr), directions=b.const(direction))
    b.output(b.unpack(yb))
    got = run(tmp_path, b, x)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    acc = R.bconv2d_acc(R.sign(x), w, s, d, pads, pad_value)
    want = R.acc_to_bits(acc, thr, direction).astype(np.float32)
    assert_exact(got, want)


# (groups, in channels per group, filters per group, kernel, strides, dilations, padding): channels per
# group mid-word (the ref path) and whole words with 32 / 64 filters per group (the fast kernels per group)
BCONV_GROUPS = [
    (2, 3, 2, (3, 3), (1, 1), (1, 1), "same"),
    (3, 63, 5, (3, 3), (2, 2), (1, 1), "same"),
    (2, 65, 3, (3, 3), (1, 2), (2, 1), (1, 0, 2, 1)),
    (2, 64, 32, (3, 3), (1, 1), (1, 1), "same"),
    (4, 64, 64, (3, 3), (2, 2), (1, 1), "same"),
    (3, 128, 32, (1, 1), (1, 1), (1, 1), "valid"),
    (2, 64, 33, (3, 3), (1, 1), (2, 2), "same"),
]


@pytest.mark.parametrize("out", ["acc", "affine", "bits"])
@pytest.mark.parametrize("pad_value", [0, 1], ids=["pad0", "pad1"])
@pytest.mark.parametrize("groups,icg,ocg,k,s,d,padding", BCONV_GROUPS, ids=lambda v: str(v))
def test_bconv2d_grouped(tmp_path, groups, icg, ocg, k, s, d, padding, pad_value, out):
    """Grouped binary conv: accumulators, float and packed outputs, bit-exact with NumPy."""
    rng = rng_for("bconv_g", groups, icg, ocg, k, s, d, padding, pad_value, out)
    n, ih, iw, ic, oc = 2, 9, 8, groups * icg, groups * ocg
    x, w = f32(rng, n, ih, iw, ic), pm1(rng, oc, k[0], k[1], icg)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    acc = R.bconv2d_acc(R.sign(x), w, s, d, pads, pad_value, groups=groups)
    b = GraphBuilder()
    xi = b.sign_pack(b.input("x", x.shape, dtype="f32"))
    kw = dict(strides=s, dilations=d, padding=padding, pad_value=pad_value, groups=groups)
    if out == "acc":
        b.output(b.bconv2d(xi, b.const_bits(w), **kw))
        want = acc.astype(np.float32)
    elif out == "affine":
        mult, bias = (rng.random(oc) * 0.2).astype(np.float32), f32(rng, oc)
        b.output(b.bconv2d(xi, b.const_bits(w), multiplier=b.const(mult), bias=b.const(bias), activation="relu", **kw))
        want = R.acc_to_f32(acc, mult, bias, *ACT["relu"])
    else:
        span = max(1, icg * k[0] * k[1] // 8)
        thr = rng.integers(-span, span + 1, oc).astype(np.int32)
        direction = np.where(rng.random(oc) < 0.5, -1, 1).astype(np.int32)
        b.output(b.unpack(b.bconv2d(xi, b.const_bits(w), thresholds=b.const(thr), directions=b.const(direction),
                                    **kw)))
        want = R.acc_to_bits(acc, thr, direction).astype(np.float32)
    assert_exact(run(tmp_path, b, x), want)


def test_bconv2d_groups_that_do_not_fit():
    b = GraphBuilder()
    x = b.sign_pack(b.input("x", (1, 4, 4, 10), dtype="f32"))
    with pytest.raises(ValueError, match="group"):
        b.bconv2d(x, b.const_bits(np.ones((6, 3, 3, 3), np.int8)), groups=3)   # 3 * 3 != 10
    with pytest.raises(ValueError, match="group"):
        b.bconv2d(x, b.const_bits(np.ones((5, 3, 3, 5), np.int8)), groups=2)   # 5 filters in 2 groups


@pytest.mark.parametrize("n,k,o", [(1, 1, 3), (2, 63, 10), (1, 64, 64),
                                   (3, 65, 7), (2, 130, 130), (1, 300, 5)],
                         ids=lambda v: str(v))
def test_bfully_connected(tmp_path, n, k, o):
    rng = rng_for("bfc", n, k, o)
    x = f32(rng, n, k)
    w = pm1(rng, o, k)
    acc = R.bfc_acc(R.sign(x), w)

    # accumulators, bit-exact
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.bfully_connected(b.sign_pack(xi), b.const_bits(w)))
    assert_exact(run(tmp_path, b, x), acc.astype(np.float32))

    # float output stage with ReLU
    mult = (rng.random(o) * 0.1).astype(np.float32)
    bias = f32(rng, o)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.bfully_connected(b.sign_pack(xi), b.const_bits(w),
                                multiplier=b.const(mult), bias=b.const(bias),
                                activation="relu"))
    assert_close(run(tmp_path, b, x), R.acc_to_f32(acc, mult, bias, 0.0, INF),
                 rtol=1e-5)

    # thresholded packed output
    span = max(1, k // 8)
    thr = rng.integers(-span, span + 1, o).astype(np.int32)
    direction = np.where(rng.random(o) < 0.5, -1, 1).astype(np.int32)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    yb = b.bfully_connected(b.sign_pack(xi), b.const_bits(w),
                            thresholds=b.const(thr),
                            directions=b.const(direction))
    b.output(b.unpack(yb))
    assert_exact(run(tmp_path, b, x),
                 R.acc_to_bits(acc, thr, direction).astype(np.float32))


# ---- K-bit (HWGQ) and HORQ ---------------------------------------------------------------

# (n, ih, iw, ic, oc, kernel, strides, dilations, padding, bits, step)
KBIT_CASES = [
    (1, 8, 8, 64, 8, (3, 3), (1, 1), (1, 1), "same", 2, 0.5),
    (1, 7, 9, 3, 5, (3, 3), (2, 2), (1, 1), "same", 2, 0.25),
    (2, 6, 6, 65, 6, (3, 3), (1, 1), (2, 2), "valid", 1, 1.0),
    (1, 8, 8, 130, 4, (3, 3), (2, 1), (1, 1), (1, 0, 2, 1), 3, 0.3),
    (1, 5, 5, 63, 7, (1, 1), (1, 1), (1, 1), "valid", 4, 0.2),
]


@pytest.mark.parametrize(
    "n,ih,iw,ic,oc,k,s,d,padding,bits,step",
    [pytest.param(*c, id=conv_id(*c[:9], f"_b{c[9]}_st{c[10]}"))
     for c in KBIT_CASES])
def test_kbit_conv2d(tmp_path, n, ih, iw, ic, oc, k, s, d, padding, bits,
                     step):
    rng = rng_for("kbit", n, ih, iw, ic, oc, k, s, d, padding, bits)
    x = f32(rng, n, ih, iw, ic, scale=step * 2 ** bits / 2)
    w = pm1(rng, oc, k[0], k[1], ic)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    acc = R.kbit_conv2d_acc(x, w, bits, step, s, d, pads)

    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.kbit_conv2d(xi, b.const_bits(w), bits=bits, step=step,
                           strides=s, dilations=d, padding=padding))
    assert_exact(run(tmp_path, b, x), acc.astype(np.float32))

    mult = np.full(oc, step, np.float32)
    bias = f32(rng, oc)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.kbit_conv2d(xi, b.const_bits(w), bits=bits, step=step,
                           multiplier=b.const(mult), bias=b.const(bias),
                           strides=s, dilations=d, padding=padding,
                           activation="relu"))
    assert_close(run(tmp_path, b, x),
                 R.acc_to_f32(acc, mult, bias, 0.0, INF), rtol=1e-5)


# (n, ih, iw, ic, oc, kernel, strides, dilations, padding, order)
HORQ_CASES = [
    (1, 8, 8, 64, 8, (3, 3), (1, 1), (1, 1), "same", 1),
    (1, 8, 8, 64, 8, (3, 3), (1, 1), (1, 1), "same", 2),
    (1, 7, 9, 3, 5, (3, 3), (2, 2), (1, 1), "same", 2),
    (2, 6, 6, 65, 6, (3, 3), (1, 1), (2, 2), "valid", 3),
    (1, 8, 8, 130, 4, (3, 3), (2, 1), (1, 1), (1, 0, 2, 1), 2),
    (1, 5, 5, 1, 3, (1, 1), (1, 1), (1, 1), "valid", 4),
]


@pytest.mark.parametrize(
    "n,ih,iw,ic,oc,k,s,d,padding,order",
    [pytest.param(*c, id=conv_id(*c[:9], f"_o{c[9]}")) for c in HORQ_CASES])
def test_horq_conv2d(tmp_path, n, ih, iw, ic, oc, k, s, d, padding, order):
    rng = rng_for("horq", n, ih, iw, ic, oc, k, s, d, padding, order)
    x = f32(rng, n, ih, iw, ic)
    w = pm1(rng, oc, k[0], k[1], ic)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, d)
    for mult, bias, act in [(None, None, None),
                            ((rng.random(oc) * 0.5).astype(np.float32),
                             f32(rng, oc), "relu")]:
        b = GraphBuilder()
        xi = b.input("x", x.shape, dtype="f32")
        b.output(b.horq_conv2d(
            xi, b.const_bits(w), order=order,
            multiplier=None if mult is None else b.const(mult),
            bias=None if bias is None else b.const(bias),
            strides=s, dilations=d, padding=padding, activation=act))
        want = R.horq_conv2d(x, w, order, mult, bias, s, d, pads, *ACT[act])
        assert_close(run(tmp_path, b, x), want, rtol=1e-5)


# ---- pooling ---------------------------------------------------------------------

# (n, ih, iw, c, kernel, strides, padding)
POOL_CASES = [
    (1, 8, 8, 3, (2, 2), (2, 2), "valid"),
    (2, 7, 9, 65, (3, 3), (2, 2), "same"),
    (1, 9, 9, 1, (3, 3), (1, 1), "same"),
    (1, 6, 10, 130, (3, 2), (1, 2), (1, 0, 1, 1)),
    (1, 5, 5, 64, (5, 5), (1, 1), "valid"),
]
POOL_IDS = [f"n{c[0]}_{c[1]}x{c[2]}x{c[3]}_k{c[4][0]}{c[4][1]}"
            f"_s{c[5][0]}{c[5][1]}_{pad_id(c[6])}" for c in POOL_CASES]


@pytest.mark.parametrize("kind", ["max", "avg", "avg_incl_pad", "bmax"])
@pytest.mark.parametrize("n,ih,iw,c,k,s,padding", POOL_CASES, ids=POOL_IDS)
def test_pool2d(tmp_path, n, ih, iw, c, k, s, padding, kind):
    rng = rng_for("pool", n, ih, iw, c, k, s, padding, kind)
    x = f32(rng, n, ih, iw, c)
    pads = pads_of(padding, ih, iw, k[0], k[1], s, (1, 1))
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    if kind == "max":
        b.output(b.max_pool2d(xi, kernel=k, strides=s, padding=padding))
        assert_exact(run(tmp_path, b, x), R.max_pool2d(x, k, s, pads))
    elif kind == "bmax":
        yb = b.bmax_pool2d(b.sign_pack(xi), kernel=k, strides=s,
                           padding=padding)
        b.output(b.unpack(yb))
        assert_exact(run(tmp_path, b, x), R.bmax_pool2d(R.sign(x), k, s, pads))
    else:
        incl = kind == "avg_incl_pad"
        b.output(b.avg_pool2d(xi, kernel=k, strides=s, padding=padding,
                              count_include_pad=incl))
        assert_close(run(tmp_path, b, x),
                     R.avg_pool2d(x, k, s, pads, count_include_pad=incl),
                     rtol=1e-5)


@pytest.mark.parametrize("n,h,w,c", [(1, 7, 7, 3), (2, 4, 5, 65), (1, 1, 1, 130)],
                         ids=lambda v: str(v))
def test_global_avg_pool(tmp_path, n, h, w, c):
    rng = rng_for("gap", n, h, w, c)
    x = f32(rng, n, h, w, c)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.global_avg_pool(xi))
    assert_close(run(tmp_path, b, x), R.global_avg_pool(x), rtol=1e-5)


# ---- elementwise -------------------------------------------------------------------

@pytest.mark.parametrize("act", [None, "relu", "relu6"])
def test_add(tmp_path, act):
    rng = rng_for("add", act)
    a = f32(rng, 2, 5, 6, 65, scale=4.0)
    c = f32(rng, 2, 5, 6, 65, scale=4.0)
    b = GraphBuilder()
    ai = b.input("a", a.shape, dtype="f32")
    ci = b.input("c", c.shape, dtype="f32")
    b.output(b.add(ai, ci, activation=act))
    assert_exact(run(tmp_path, b, a, c), R.add(a, c, *ACT[act]))


@pytest.mark.parametrize("op", ["relu", "relu6", "hardtanh", "hardtanh_0_2"])
def test_activations(tmp_path, op):
    rng = rng_for("act", op)
    x = f32(rng, 1, 4, 5, 7, scale=5.0)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    if op == "relu":
        y, want = b.relu(xi), R.relu(x)
    elif op == "relu6":
        y, want = b.relu6(xi), R.relu6(x)
    elif op == "hardtanh":
        y, want = b.hardtanh(xi), R.hardtanh(x)
    else:
        y, want = b.hardtanh(xi, min_val=0.0, max_val=2.0), R.hardtanh(x, 0, 2)
    b.output(y)
    assert_exact(run(tmp_path, b, x), want)


@pytest.mark.parametrize("c", [1, 3, 65])
def test_prelu(tmp_path, c):
    rng = rng_for("prelu", c)
    x = f32(rng, 2, 3, 4, c)
    slope = f32(rng, c, scale=0.3)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.prelu(xi, b.const(slope)))
    assert_close(run(tmp_path, b, x), R.prelu(x, slope), rtol=1e-6)


@pytest.mark.parametrize("c", [1, 3, 65])
def test_abs_channel_mean_mul(tmp_path, c):
    """XNOR-Net's input scale: K = mean_c |x|, then y * K broadcast over channels."""
    rng = rng_for("xnor-scale", c)
    x = f32(rng, 2, 3, 4, c, scale=3.0)
    y = f32(rng, 2, 3, 4, c)
    b = GraphBuilder()
    xi, yi = b.input("x", x.shape), b.input("y", y.shape)
    k = b.channel_mean(b.abs(xi))
    b.output(b.mul(yi, k))
    b.output(b.mul(yi, xi))
    path = save(b.build(), tmp_path / "m.ebnn")
    out = Runtime(path).run(x, y)
    k_want = R.channel_mean(np.abs(x))
    assert_exact(out[0], (y * k_want).astype(np.float32))
    assert_exact(out[1], (y * x).astype(np.float32))
    bad = GraphBuilder()
    with pytest.raises(ValueError):
        bad.mul(bad.input("a", (1, 2, 2, 4)), bad.input("b", (1, 2, 2, 2)))


@pytest.mark.parametrize("act", [None, "relu", "relu6"])
@pytest.mark.parametrize("c", [1, 65])
def test_affine(tmp_path, c, act):
    rng = rng_for("affine", c, act)
    x = f32(rng, 2, 3, 4, c, scale=3.0)
    scale = f32(rng, c)
    bias = f32(rng, c)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.affine(xi, b.const(scale), b.const(bias), activation=act))
    assert_close(run(tmp_path, b, x), R.affine(x, scale, bias, *ACT[act]),
                 rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 10), (1, 1), (2, 3, 3, 65)],
                         ids=lambda v: "x".join(map(str, v)))
def test_softmax(tmp_path, shape):
    rng = rng_for("softmax", shape)
    x = f32(rng, *shape, scale=8.0)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.softmax(xi))
    got = run(tmp_path, b, x)
    want = R.softmax(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


# ---- data movement -------------------------------------------------------------------

@pytest.mark.parametrize("axis", [1, 2, 3])
def test_concat(tmp_path, axis):
    rng = rng_for("concat", axis)
    shapes = [[1, 4, 5, 3], [1, 4, 5, 3], [1, 4, 5, 3]]
    for i, extra in enumerate((2, 1, 4)):
        shapes[i][axis] = extra
    xs = [f32(rng, *s) for s in shapes]
    b = GraphBuilder()
    ins = [b.input(f"x{i}", x.shape, dtype="f32") for i, x in enumerate(xs)]
    b.output(b.concat(ins, axis=axis))
    assert_exact(run(tmp_path, b, *xs), R.concat(xs, axis))


@pytest.mark.parametrize("c,groups", [(6, 2), (12, 3), (65, 5), (8, 8)],
                         ids=lambda v: str(v))
def test_channel_shuffle(tmp_path, c, groups):
    rng = rng_for("shuffle", c, groups)
    x = f32(rng, 2, 3, 4, c)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.channel_shuffle(xi, groups))
    assert_exact(run(tmp_path, b, x), R.channel_shuffle(x, groups))


@pytest.mark.parametrize("perm", [(0, 3, 1, 2), (0, 2, 1, 3), (3, 2, 1, 0)],
                         ids=lambda v: "".join(map(str, v)))
def test_transpose(tmp_path, perm):
    rng = rng_for("transpose", perm)
    x = f32(rng, 2, 3, 4, 5)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.transpose(xi, perm))
    assert_exact(run(tmp_path, b, x), R.transpose(x, perm))


def test_reshape_flatten(tmp_path):
    rng = rng_for("reshape")
    x = f32(rng, 2, 3, 4, 5)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.reshape(xi, (2, 12, 5)))
    assert_exact(run(tmp_path, b, x), x.reshape(2, 12, 5))

    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.flatten(xi))
    assert_exact(run(tmp_path, b, x), x.reshape(2, 60))


# BIT1 reshapes: rows padded to whole words on either side (bit by bit), or on neither
# (64-channel multiples, BinaryNet's flatten before its binary FC: the words themselves)
@pytest.mark.parametrize("c,shape", [(64, (2, 192)), (128, (2, 3, 128)), (5, (2, 15)), (64, (4, 96)),
                                     (65, (2, 195)), (130, (12, 65))], ids=str)
def test_reshape_bits_rows(tmp_path, c, shape):
    rng = rng_for("reshape_bits", c, shape)
    x = f32(rng, 2, 3, 1, c)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    b.output(b.unpack(b.reshape(b.sign_pack(xi), shape)))
    assert_exact(run(tmp_path, b, x), R.sign(x, None).reshape(shape))


# ---- int8 -----------------------------------------------------------------------------

@pytest.mark.parametrize("scale,zp", [(0.1, 3), (0.05, -7), (0.5, 0), (1.0, 127)],
                         ids=lambda v: str(v))
def test_quantize_dequantize(tmp_path, scale, zp):
    rng = rng_for("quant", scale, zp)
    x = f32(rng, 1, 4, 6, 10, scale=6.0)
    # exact halfway cases: round half away from zero
    x.flat[:20] = ((np.arange(-10, 10) + 0.5) * np.float32(scale)).astype(
        np.float32)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    q = b.quantize(xi, scale=scale, zero_point=zp)
    b.output(q)
    b.output(b.dequantize(q))
    got_q, got_y = run(tmp_path, b, x)
    want_q = R.quantize_i8(x, scale, zp)
    assert got_q.dtype == np.int8
    assert_exact(got_q, want_q)
    assert_close(got_y, R.dequantize_i8(want_q, scale, zp), rtol=1e-6)


@pytest.mark.parametrize("axis", [None, 1, 3], ids=lambda v: f"axis{v}")
def test_dequantize_const(tmp_path, axis):
    rng = rng_for("dequant", axis)
    shape = (1, 3, 4, 5)
    x = f32(rng, *shape)
    qc = rng.integers(-128, 128, shape).astype(np.int8)
    if axis is None:
        scale, zp = 0.02, -4
        cq = dict(scale=scale, zero_point=zp)
    else:
        scale = (rng.random(shape[axis]) * 0.1 + 0.01).astype(np.float32)
        zp = rng.integers(-10, 10, shape[axis]).astype(np.int32)
        cq = dict(scale=scale, zero_point=zp, axis=axis)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="f32")
    deq = b.dequantize(b.const(qc, **cq))
    b.output(b.add(xi, deq))
    want = R.add(x, R.dequantize_i8(qc, scale, zp, axis=axis))
    assert_close(run(tmp_path, b, x), want, rtol=1e-6)
