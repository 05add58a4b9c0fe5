"""int8 layers (TFLite quantization): CONV2D, DEPTHWISE_CONV2D, FULLY_CONNECTED, ADD and
the pools with int8 tensors, against the NumPy twin of TFLite's reference arithmetic
(numpy_ref, "int8 layers").

Each case runs in one process on the reference kernels (EDGEBNN_KERNELS=ref when the model
loads), on the q8 kernels for conv/FC/add (EDGEBNN_Q8=1: the best variant for this CPU), on
the portable q8 variant (EDGEBNN_Q8=portable), all of which must match NumPy bit for bit,
on the default path (q8 where its AVX512-VNNI variant runs, else XNNPACK when the build has it),
and, where the build has XNNPACK, with the q8 backend off (EDGEBNN_Q8=0): XNNPACK
requantizes in float (round to nearest even after a float multiply) rather than TFLite's
fixed-point multiplier, so its int8 outputs may differ by one; the test bounds that at 1
and checks most outputs are identical.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgebnn import Runtime
from edgebnn.format import save
from edgebnn.ir import GraphBuilder

try:
    from . import numpy_ref as R
    from .test_ops import ACT, pads_of, rng_for
except ImportError:
    import numpy_ref as R
    from test_ops import ACT, pads_of, rng_for

SX, ZX = np.float32(0.05), -3


def i8(rng, *shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


def run_both(tmp_path, b, monkeypatch, *inputs):
    """{path: outputs} for ref, default, portable (and xnnpack where the build has it), and the
    backends of the default run."""
    path = tmp_path / "m.ebnn"
    save(b.build(), path)
    outs = {}
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_KERNELS", "ref")
        mp.setenv("EDGEBNN_XNNPACK", "0")
        ref_rt = Runtime(path)
        assert all(o.backend == "ref" for o in ref_rt.ops)
        outs["ref"] = ref_rt.run(*inputs)
    rt = Runtime(path)
    backends = [o.backend for o in rt.ops]
    outs["default"] = rt.run(*inputs)
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_Q8", "portable")
        outs["portable"] = Runtime(path).run(*inputs)
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_Q8", "1")  # exact on any CPU: the best q8 variant here
        outs["q8"] = Runtime(path).run(*inputs)
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_Q8", "0")
        rt = Runtime(path)
        if any(o.backend == "xnnpack" for o in rt.ops):
            outs["xnnpack"] = rt.run(*inputs)
    return outs, backends


def check(outs, want, backends):
    # the default path is q8 (exact) where its fast variant runs, else XNNPACK (within 1)
    on_xnn = any(b == "xnnpack" for b in backends)
    if on_xnn:
        outs = dict(outs)
        outs.setdefault("xnnpack", outs.pop("default"))
    for path in ("ref", "default", "portable", "q8"):
        if path not in outs:
            continue
        assert outs[path].dtype == np.int8
        np.testing.assert_array_equal(outs[path], want, err_msg=f"{path} path ({backends})")
    if "xnnpack" in outs:
        d = np.abs(outs["xnnpack"].astype(np.int32) - want.astype(np.int32))
        assert d.max() <= 1, f"XNNPACK: int8 output off by {d.max()}"
        assert (d == 0).mean() >= 0.9, f"XNNPACK: only {(d == 0).mean():.2%} of outputs exact"
    # outputs must not be saturated into meaninglessness: the scales below spread them
    assert len(np.unique(want)) > min(20, want.size // 2)


def out_scale_for(real):
    """An output scale that puts +-3 sigma of the real output across the int8 range."""
    return np.float32(max(float(np.std(real)), 1e-3) * 6 / 255)


def deq(q, scale, zp=0, axis=None):
    s = np.asarray(scale, np.float64)
    if axis is not None and s.ndim:
        shape = [1] * q.ndim
        shape[axis] = -1
        s = s.reshape(shape)
    return (q.astype(np.float64) - zp) * s


def q8_expected(backends, want_q8=True):
    """The layer ran on the q8 kernels (or, want_q8=False, on ref: a shape q8 leaves there)."""
    try:
        import edgebnn._clib  # noqa: F401
    except ImportError:
        return
    if want_q8:
        assert all(bk.startswith("q8-") for bk in backends), backends
    else:
        assert backends == ["ref"], backends


# (n, ih, iw, ic, oc, kernel, strides, dilations, padding, groups, act, per_channel, bias)
CONV = [
    (1, 8, 8, 3, 8, 3, 1, 1, "same", 1, None, True, True),
    (2, 7, 9, 16, 5, 3, 2, 1, "valid", 1, "relu", True, True),
    (1, 9, 7, 4, 6, 3, 1, 2, "same", 2, "relu6", False, False),
    (1, 6, 6, 65, 7, 3, (1, 2), 1, (0, 2, 1, 0), 1, "relu", True, True),
    (1, 8, 8, 64, 63, 1, 1, 1, "valid", 1, None, True, True),
    (1, 5, 5, 130, 17, 5, 1, 1, "same", 1, None, True, False),
]


@pytest.mark.parametrize("n,ih,iw,ic,oc,k,s,d,padding,groups,act,per_channel,has_bias", CONV,
                         ids=[f"c{i}" for i in range(len(CONV))])
def test_conv2d_i8(tmp_path, monkeypatch, n, ih, iw, ic, oc, k, s, d, padding, groups, act, per_channel, has_bias):
    rng = rng_for("conv_i8", n, ih, iw, ic, oc, k, s, d, padding, groups)
    s2, d2 = (s, s) if np.isscalar(s) else s, (d, d)
    x = i8(rng, n, ih, iw, ic)
    w = rng.integers(-127, 128, (oc, k, k, ic // groups)).astype(np.int8)
    ws = (rng.random(oc) * 0.01 + 0.002).astype(np.float32) if per_channel else np.float32(0.006)
    bias = rng.integers(-2000, 2000, oc).astype(np.int32) if has_bias else None
    pads = pads_of(padding, ih, iw, k, k, s2, d2)
    sy = out_scale_for(R.conv2d(deq(x, SX, ZX), deq(w, ws, axis=0), None, s2, d2, pads, groups))
    zy = 4
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="i8", scale=SX, zero_point=ZX)
    b.output(b.conv2d(xi, b.const(w, scale=ws, axis=0), bias=bias, strides=s2, dilations=d2, padding=padding,
                      groups=groups, activation=act, out_scale=sy, out_zero_point=zy))
    outs, backends = run_both(tmp_path, b, monkeypatch, x)
    want = R.conv2d_i8(x, SX, ZX, w, ws, bias, sy, zy, s2, d2, pads, groups, *ACT[act])
    check(outs, want, backends)
    q8_expected(backends, groups == 1)


@pytest.mark.parametrize("c,m,k,s,padding,act", [(3, 1, 3, 1, "same", None), (32, 1, 3, 2, "same", "relu6"),
                                                 (65, 2, 5, 1, (2, 1, 2, 1), "relu"), (8, 3, 3, 1, "valid", None)],
                         ids=lambda v: str(v))
def test_depthwise_i8(tmp_path, monkeypatch, c, m, k, s, padding, act):
    rng = rng_for("dw_i8", c, m, k, s, padding)
    x = i8(rng, 1, 9, 8, c)
    w = rng.integers(-127, 128, (k, k, c * m)).astype(np.int8)
    ws = (rng.random(c * m) * 0.01 + 0.002).astype(np.float32)
    bias = rng.integers(-500, 500, c * m).astype(np.int32)
    pads = pads_of(padding, 9, 8, k, k, (s, s), (1, 1))
    sy, zy = out_scale_for(R.depthwise_conv2d(deq(x, SX, ZX), deq(w, ws, axis=2), None, (s, s), (1, 1), pads)), -6
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="i8", scale=SX, zero_point=ZX)
    b.output(b.depthwise_conv2d(xi, b.const(w, scale=ws, axis=2), bias=bias, strides=s, padding=padding,
                                activation=act, out_scale=sy, out_zero_point=zy))
    outs, backends = run_both(tmp_path, b, monkeypatch, x)
    want = R.depthwise_conv2d_i8(x, SX, ZX, w, ws, bias, sy, zy, (s, s), (1, 1), pads, *ACT[act])
    check(outs, want, backends)
    q8_expected(backends, m == 1)


@pytest.mark.parametrize("n,k,o,act", [(1, 64, 10, None), (3, 130, 65, "relu"), (2, 1, 33, None)],
                         ids=lambda v: str(v))
def test_fully_connected_i8(tmp_path, monkeypatch, n, k, o, act):
    rng = rng_for("fc_i8", n, k, o)
    x = i8(rng, n, k)
    w = rng.integers(-127, 128, (o, k)).astype(np.int8)
    ws = (rng.random(o) * 0.01 + 0.002).astype(np.float32)
    bias = rng.integers(-500, 500, o).astype(np.int32)
    sy, zy = out_scale_for(R.fully_connected(deq(x, SX, ZX), deq(w, ws, axis=0))), 1
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="i8", scale=SX, zero_point=ZX)
    b.output(b.fully_connected(xi, b.const(w, scale=ws, axis=0), bias=bias, activation=act, out_scale=sy,
                               out_zero_point=zy))
    outs, backends = run_both(tmp_path, b, monkeypatch, x)
    want = R.fully_connected_i8(x, SX, ZX, w, ws, bias, sy, zy, *ACT[act])
    check(outs, want, backends)
    q8_expected(backends)


@pytest.mark.parametrize("sa,za,sb,zb,sy,zy,act", [(0.05, -3, 0.03, 2, 0.08, 5, "relu"),
                                                   (0.1, 0, 0.1, 0, 0.1, 0, None),
                                                   (0.02, 10, 0.07, -20, 0.06, -1, "relu6")],
                         ids=lambda v: str(v))
def test_add_i8(tmp_path, monkeypatch, sa, za, sb, zb, sy, zy, act):
    rng = rng_for("add_i8", sa, sb, sy)
    a, c = i8(rng, 2, 5, 6, 13), i8(rng, 2, 5, 6, 13)
    sa, sb, sy = np.float32(sa), np.float32(sb), np.float32(sy)
    b = GraphBuilder()
    ai = b.input("a", a.shape, dtype="i8", scale=sa, zero_point=za)
    ci = b.input("c", c.shape, dtype="i8", scale=sb, zero_point=zb)
    b.output(b.add(ai, ci, activation=act, out_scale=sy, out_zero_point=zy))
    outs, backends = run_both(tmp_path, b, monkeypatch, a, c)
    want = R.add_i8(a, sa, za, c, sb, zb, sy, zy, *ACT[act])
    check(outs, want, backends)
    q8_expected(backends)


@pytest.mark.parametrize("kind,k,s,padding", [("max", 2, 2, "valid"), ("max", 3, 1, "same"), ("max", 3, 2, "same"),
                                              ("avg", 2, 2, "valid"), ("avg", 3, 1, "same"),
                                              ("avg_incl_pad", 3, 2, "same"), ("avg_up", 2, 2, "valid"),
                                              ("avg_up", 3, 1, "same"), ("avg_up", 4, 4, "valid")],
                         ids=lambda v: str(v))
def test_pool_i8(tmp_path, monkeypatch, kind, k, s, padding):
    rng = rng_for("pool_i8", kind, k, s, padding)
    x = i8(rng, 2, 9, 8, 65)
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="i8", scale=SX, zero_point=ZX)
    if kind == "max":
        b.output(b.max_pool2d(xi, kernel=k, strides=s, padding=padding))
    else:
        b.output(b.avg_pool2d(xi, kernel=k, strides=s, padding=padding, count_include_pad=kind == "avg_incl_pad",
                              rounding="up" if kind == "avg_up" else "away"))
    outs, backends = run_both(tmp_path, b, monkeypatch, x)
    pads = pads_of(padding, 9, 8, k, k, (s, s), (1, 1))
    if kind == "max":
        want = R.max_pool2d_i8(x, k, s, pads)
        # a max has nothing to round: XNNPACK (where the build has it) is exact too
        for path, out in outs.items():
            np.testing.assert_array_equal(out, want, err_msg=path)
    else:
        want = R.avg_pool2d_i8(x, ZX, k, s, pads, count_include_pad=kind == "avg_incl_pad",
                               rounding="up" if kind == "avg_up" else "away")
        if kind == "avg_up":   # the two roundings differ on negative ties: the test must see some
            assert (want != R.avg_pool2d_i8(x, ZX, k, s, pads)).any()
        assert backends == ["ref"]  # this XNNPACK has no int8 average pooling
    check(outs, want, backends)


@pytest.mark.parametrize("h,w,c", [(7, 7, 3), (4, 5, 65), (1, 1, 130)], ids=lambda v: str(v))
def test_global_avg_pool_i8(tmp_path, monkeypatch, h, w, c):
    rng = rng_for("gap_i8", h, w, c)
    x = i8(rng, 2, h, w, c)
    sy, zy = np.float32(0.02), -7
    b = GraphBuilder()
    xi = b.input("x", x.shape, dtype="i8", scale=SX, zero_point=ZX)
    b.output(b.global_avg_pool(xi, out_scale=sy, out_zero_point=zy))
    outs, backends = run_both(tmp_path, b, monkeypatch, x)
    want = R.global_avg_pool_i8(x, SX, ZX, sy, zy)
    for path in ("ref", "default", "portable", "q8"):  # XNNPACK's float requantization stays off by default
        np.testing.assert_array_equal(outs[path], want, err_msg=path)
    # a q8 kernel (one build for all CPUs) where q8 is on, the reference loop otherwise
    assert backends in (["q8-portable"], ["ref"]), backends
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_Q8", "1")
        assert [o.backend for o in Runtime(tmp_path / "m.ebnn").ops] == ["q8-portable"]
    if "xnnpack" in outs:
        assert np.abs(outs["xnnpack"].astype(np.int32) - want.astype(np.int32)).max() <= 1


def test_int8_layer_errors():
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 3), dtype="i8", scale=0.1, zero_point=0)
    w = np.ones((2, 1, 1, 3), np.int8)
    with pytest.raises(ValueError, match="out_scale"):
        b.conv2d(x, b.const(w, scale=0.1), bias=None)
    with pytest.raises(ValueError, match="symmetric"):
        b.conv2d(x, b.const(w, scale=[0.1, 0.2], zero_point=[0, 3]), out_scale=0.1)
    with pytest.raises(ValueError, match="integers"):
        b.conv2d(x, b.const(w, scale=0.1), bias=np.ones(2, np.float32), out_scale=0.1)


@pytest.mark.parametrize("kind", ["conv", "depthwise", "fc"])
@pytest.mark.parametrize("w_zp", [-128, -37, 0, 41, 127])
def test_asymmetric_weights_i8(tmp_path, monkeypatch, kind, w_zp):
    """Per-tensor weights with a zero point (TFLite uint8 models shifted to int8): the reference
    kernels subtract it exactly like TFLite's filter_offset, and the q8 kernels fold it into per-row
    corrections; XNNPACK's symmetric qc8 never takes them."""
    rng = np.random.default_rng(abs(w_zp) * 3 + len(kind))
    b = GraphBuilder()
    ws = np.float32(0.02)
    if kind == "fc":
        x = i8(rng, 3, 130)
        xv = b.input("x", x.shape, dtype="i8", scale=SX, zero_point=ZX)
        w, bias = i8(rng, 65, 130), rng.integers(-3000, 3000, 65).astype(np.int32)
        real = ((x.astype(np.float64) - ZX) * SX) @ ((w.astype(np.float64) - w_zp) * ws).T
        sy = out_scale_for(real)
        b.output(b.fully_connected(xv, b.const(w, scale=ws, zero_point=w_zp), bias, out_scale=sy, out_zero_point=5))
        want = R.fully_connected_i8(x, SX, ZX, w, ws, bias, sy, 5, w_zp=w_zp)
    else:
        x = i8(rng, 1, 9, 7, 63)
        xv = b.input("x", x.shape, dtype="i8", scale=SX, zero_point=ZX)
        pads = (1, 1, 1, 1)
        if kind == "conv":
            w = i8(rng, 65, 3, 3, 63)
            wf = (w.astype(np.float64) - w_zp) * ws
            real = R.conv2d((x.astype(np.float32) - ZX) * SX, wf.astype(np.float32), None, (2, 2), (1, 1), pads)
            sy = out_scale_for(real)
            b.output(b.conv2d(xv, b.const(w, scale=ws, zero_point=w_zp), None, 2, 1, pads, out_scale=sy,
                              out_zero_point=-4))
            want = R.conv2d_i8(x, SX, ZX, w, ws, None, sy, -4, (2, 2), (1, 1), pads, w_zp=w_zp)
        else:
            w = i8(rng, 3, 3, 63)
            sy = np.float32(0.05)
            b.output(b.depthwise_conv2d(xv, b.const(w, scale=ws, zero_point=w_zp, axis=2), None, 1, 1, pads,
                                        out_scale=sy, out_zero_point=-4))
            want = R.depthwise_conv2d_i8(x, SX, ZX, w, ws, None, sy, -4, (1, 1), (1, 1), pads, w_zp=w_zp)
    outs, backends = run_both(tmp_path, b, monkeypatch, x)
    for path in ("ref", "default", "portable"):
        np.testing.assert_array_equal(outs[path], want, err_msg=path)
    q8_expected(backends)
    assert "xnnpack" not in outs or w_zp == 0
    assert len(np.unique(want)) > 10


def test_quantize_reports_the_backend_that_runs_it(tmp_path, monkeypatch):
    """QUANTIZE runs through the q8 table when q8 is on (same bytes as ref): inspect/profile say so."""
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 8))
    b.output(b.dequantize(b.quantize(x, 0.1, 3, name="q"), name="dq"), "y")
    path = tmp_path / "q.ebnn"
    save(b.build(), path)
    xs = np.random.default_rng(0).standard_normal((1, 4, 4, 8)).astype(np.float32) * 10
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_Q8", "1")
        rt = Runtime(path)
        assert next(o for o in rt.ops if o.type == "QUANTIZE").backend.startswith("q8")
        got = rt.run(xs)
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_KERNELS", "ref")
        rt = Runtime(path)
        assert next(o for o in rt.ops if o.type == "QUANTIZE").backend == "ref"
        np.testing.assert_array_equal(rt.run(xs), got)
