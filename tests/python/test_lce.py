"""Larq Compute Engine: export the packed IR to LCE's TFLite ops, run it in LCE's own interpreter
against the runtime, and import the exported file back (round trip).

Binary layers compare exactly (float outputs with multiplier 1 and bias 0 are the integer dot
products; packed outputs are unpacked ±1); float outputs with a multiplier and bias within 1e-5
of the output's range (LCE folds K * multiplier into its bias: other roundings).
The peer is larq-compute-engine's interpreter extension, loaded without TensorFlow.
"""
from __future__ import annotations

import importlib.util
import os
import itertools
from pathlib import Path

import numpy as np
import pytest

from edgebnn.demo_model import build_demo_bnn
from edgebnn.errors import UserError
from edgebnn.format.writer import to_bytes
from edgebnn.ir import GraphBuilder
from edgebnn.ir.ops import Attr
from edgebnn.runtime import Runtime

pytest.importorskip("edgebnn.converters.export.lce")
from edgebnn.converters import convert  # noqa: E402
from edgebnn.converters.export.lce import export_lce, pack32, to_lce_bytes  # noqa: E402
from edgebnn.converters.tflite.flexbuffers import FlexError, dumps, loads  # noqa: E402
from edgebnn.converters.tflite.lce_ops import unpack32  # noqa: E402
from edgebnn.converters.tflite.schema import parse  # noqa: E402


def _lce_wrapper():
    """LCE's interpreter extension, or (None, why). Imported by path: the package's __init__ imports
    its TensorFlow-based converter, the extension itself needs only NumPy."""
    spec = importlib.util.find_spec("larq_compute_engine")
    if spec is None or not spec.submodule_search_locations:
        return None, "larq-compute-engine is not installed (pip install larq-compute-engine==0.16.0)"
    if int(np.__version__.split(".")[0]) >= 2:
        return None, (f"larq-compute-engine's interpreter is built for NumPy 1 (NumPy {np.__version__} inputs "
                      "arrive empty); run this suite with numpy<2")
    so = sorted((Path(spec.submodule_search_locations[0]) / "tflite" / "python").glob("interpreter_wrapper_lite*.so"))
    if not so:
        return None, "larq-compute-engine has no interpreter_wrapper_lite extension"
    s = importlib.util.spec_from_file_location("interpreter_wrapper_lite", so[0])
    mod = importlib.util.module_from_spec(s)
    try:
        s.loader.exec_module(mod)
    except ImportError as e:
        return None, f"LCE's interpreter does not load here: {e}"
    return mod, ""


@pytest.fixture(scope="module")
def lce():
    mod, why = _lce_wrapper()
    if mod is None:
        if os.environ.get("EDGEBNN_REQUIRE_LCE"):  # tests/run.sh sets it in its NumPy-1 venv: never skip there
            pytest.fail(why)
        pytest.skip(why)

    def run(data: bytes, x: np.ndarray) -> np.ndarray:
        it = mod.LiteInterpreter(data, 1, False, False, False)
        return it.predict([np.ascontiguousarray(x, np.float32)])[0]
    return run


def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1, 1).astype(np.int8)


def _bconv_graph(c, o, k, stride, padding, pad_value, out, dil=1, seed=0, h=9, w=8):
    """sign_pack -> bconv2d (out: 'dot' float mul 1, 'affine' float mul/bias + ReLU, 'packed' with
    thresholds and mixed directions) -> unpack when packed -> bmax_pool2d for packed."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", (2, h, w, c))
    hb = b.sign_pack(x, thresholds=rng.normal(0, 0.2, c).astype(np.float32), name="binarize")
    wb = b.const_bits(_pm1(rng, (o, k, k, c)), name="w")
    kw = dict(strides=stride, dilations=dil, padding=padding, pad_value=pad_value, name="bconv")
    if out == "packed":
        span = k * k * c
        y = b.bconv2d(hb, wb, thresholds=rng.integers(-span // 3, span // 3 + 1, o).astype(np.int32),
                      directions=np.where(rng.random(o) < 0.5, -1, 1).astype(np.int32), **kw)
        y = b.unpack(b.bmax_pool2d(y, 2, 1, "same", name="pool"), name="unpack")
    elif out == "affine":
        y = b.bconv2d(hb, wb, multiplier=rng.uniform(0.05, 2, o), bias=rng.normal(0, 1, o), activation="relu", **kw)
    else:
        y = b.bconv2d(hb, wb, **kw)
    b.output(y, "y")
    return b.build({"producer": "test"}), rng.standard_normal((2, h, w, c)).astype(np.float32)


def _close(got, want, exact):
    assert got.shape == want.shape
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))


CASES = [(c, stride, padding, pv, out) for c, stride, (padding, pv), out in itertools.product(
    [1, 3, 63, 64, 65, 130], [1, 2], [("valid", 0), ("same", 0), ("same", 1)], ["dot", "affine", "packed"])]


@pytest.mark.parametrize("c,stride,padding,pad_value,out", CASES)
def test_bconv_matches_lce(lce, c, stride, padding, pad_value, out):
    g, x = _bconv_graph(c, 33 if c != 64 else 64, 3, stride, padding, pad_value, out, seed=c + stride)
    want = Runtime(to_bytes(g)).run(x)
    _close(lce(to_lce_bytes(g), x), want, exact=out != "affine")


@pytest.mark.parametrize("dil,k", [(2, 3), (1, 1), (1, 5)])
def test_bconv_dilation_and_kernels(lce, dil, k):
    for padding, pv in (("valid", 0), ("same", 1), ("same", 0)):
        g, x = _bconv_graph(40, 70, k, 1, padding, pv, "packed", dil=dil, seed=k, h=11, w=12)
        _close(lce(to_lce_bytes(g), x), Runtime(to_bytes(g)).run(x), exact=True)


def _grouped_graph(groups, icg, ocg, out, padding, pad_value, stride=1, seed=0):
    """sign_pack -> grouped bconv2d (LCE's own converter emits these) with the three epilogues."""
    rng = np.random.default_rng(seed)
    c, o = groups * icg, groups * ocg
    b = GraphBuilder()
    x = b.input("x", (2, 9, 8, c))
    hb = b.sign_pack(x, thresholds=rng.normal(0, 0.2, c).astype(np.float32), name="binarize")
    wb = b.const_bits(_pm1(rng, (o, 3, 3, icg)), name="w")
    kw = dict(strides=stride, padding=padding, pad_value=pad_value, groups=groups, name="bconv")
    if out == "packed":
        span = 9 * icg
        y = b.unpack(b.bconv2d(hb, wb, thresholds=rng.integers(-span // 3, span // 3 + 1, o).astype(np.int32),
                               directions=np.where(rng.random(o) < 0.5, -1, 1).astype(np.int32), **kw))
    elif out == "affine":
        y = b.bconv2d(hb, wb, multiplier=rng.uniform(0.05, 2, o), bias=rng.normal(0, 1, o), activation="relu", **kw)
    else:
        y = b.bconv2d(hb, wb, **kw)
    b.output(y, "y")
    return b.build(), rng.standard_normal((2, 9, 8, c)).astype(np.float32)


GROUP_CASES = [(g, icg, ocg, out, pad, pv, s) for (g, icg, ocg), out, (pad, pv), s in itertools.product(
    [(2, 32, 8), (2, 64, 33), (4, 32, 16), (3, 96, 5), (2, 64, 64)], ["dot", "affine", "packed"],
    [("valid", 0), ("same", 0), ("same", 1)], [1, 2])]


@pytest.mark.parametrize("groups,icg,ocg,out,padding,pad_value,stride", GROUP_CASES)
def test_grouped_bconv_matches_lce(groups, icg, ocg, out, padding, pad_value, stride):
    """Grouped LceBconv2d: LCE 0.16 runs groups in its reference and indirect-BGEMM kernels (its default
    BGEMM kernel refuses them), both compared; exported, then imported back as a grouped BCONV2D."""
    mod, why = _lce_wrapper()
    if mod is None:
        if os.environ.get("EDGEBNN_REQUIRE_LCE"):
            pytest.fail(why)
        pytest.skip(why)
    g, x = _grouped_graph(groups, icg, ocg, out, padding, pad_value, stride, seed=groups * icg + ocg)
    want = Runtime(to_bytes(g)).run(x)
    data = to_lce_bytes(g)
    for reference, indirect in ((True, False), (False, True)):
        _close(mod.LiteInterpreter(data, 1, reference, indirect, False).predict([x])[0], want, exact=out != "affine")


@pytest.mark.parametrize("groups,icg,ocg,out,padding,pad_value,stride", GROUP_CASES[::5])
def test_grouped_round_trip(tmp_path, groups, icg, ocg, out, padding, pad_value, stride):
    g, x = _grouped_graph(groups, icg, ocg, out, padding, pad_value, stride, seed=icg)
    back = _round_trip(g, tmp_path)
    convs = [op for op in back.ops if op.type.name == "BCONV2D"]
    from edgebnn.ir.ops import Attr
    assert [int(op.attrs[Attr.GROUPS][0]) for op in convs] == [groups]
    _close(Runtime(to_bytes(back)).run(x), Runtime(to_bytes(g)).run(x), exact=out != "affine")


def test_grouped_not_exportable_is_one_line(tmp_path):
    g, _ = _grouped_graph(3, 21, 2, "dot", "same", 1)
    with pytest.raises(UserError, match="multiple of 32 channels per group") as e:
        export_lce(g, tmp_path / "m.tflite")
    assert "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())


def _dense_graph(k, o, packed_rows, seed=0):
    """bfully_connected after a packed reshape: the word-aligned path (K % 32 == 0) or the
    dequantize/reshape/quantize path."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", (3, 1, 1, k) if packed_rows else (3, 2, 2, k // 4))
    h = b.reshape(b.sign_pack(x), (3, k))
    w = b.const_bits(_pm1(rng, (o, k)))
    y = b.bfully_connected(h, w, multiplier=np.full(o, 0.25, np.float32), bias=np.zeros(o, np.float32),
                           activation="relu")
    b.output(b.softmax(b.fully_connected(y, rng.standard_normal((10, o)).astype(np.float32), bias=np.zeros(10))), "p")
    return b.build(), rng.standard_normal(b.graph.tensors[b.graph.inputs[0]].shape).astype(np.float32)


@pytest.mark.parametrize("k,o,rows", [(128, 40, True), (96, 33, False), (20, 7, False), (260, 65, True)])
def test_bfully_connected_matches_lce(lce, k, o, rows):
    g, x = _dense_graph(k, o, rows, seed=k)
    _close(lce(to_lce_bytes(g), x), Runtime(to_bytes(g)).run(x), exact=False)


def test_demo_model_matches_lce(lce):
    g = build_demo_bnn()
    data = to_lce_bytes(g)
    rt = Runtime(to_bytes(g))
    rng = np.random.default_rng(3)
    for _ in range(8):
        x = rng.random((1, 28, 28, 1), dtype=np.float32)        # the LCE model is NHWC
        want = rt.run(x.transpose(0, 3, 1, 2))                   # the demo is fed NCHW
        got = lce(data, x)
        _close(got, want, exact=False)
        assert got.argmax() == want.argmax()


def _round_trip(g, tmp_path):
    path = tmp_path / "model.tflite"
    export_lce(g, path)
    out = tmp_path / "back.ebnn"
    convert(str(path), output=str(out), verify=False)
    from edgebnn.format.reader import load
    return load(out)


@pytest.mark.parametrize("c,stride,padding,pad_value,out", [case for case in CASES if case[0] in (3, 65, 130)])
def test_round_trip_binary(tmp_path, c, stride, padding, pad_value, out):
    g, x = _bconv_graph(c, 33, 3, stride, padding, pad_value, out, seed=c)
    back = _round_trip(g, tmp_path)
    _close(Runtime(to_bytes(back)).run(x), Runtime(to_bytes(g)).run(x), exact=out != "affine")


def test_round_trip_demo_and_dense(tmp_path):
    g = build_demo_bnn()
    back = _round_trip(g, tmp_path)
    x = np.random.default_rng(5).random((4, 1, 28, 28, 1), dtype=np.float32)
    rt, rb = Runtime(to_bytes(g)), Runtime(to_bytes(back))
    for xi in x:
        _close(rb.run(xi), rt.run(xi.transpose(0, 3, 1, 2)), exact=False)
    ops = [op.type.name for op in back.ops]
    assert ops.count("BCONV2D") == 3 and ops.count("BMAX_POOL2D") == 2 and "SIGN_PACK" in ops
    for k, o, rows in [(128, 40, True), (96, 33, False)]:
        g, x = _dense_graph(k, o, rows, seed=k)
        _close(Runtime(to_bytes(_round_trip(g, tmp_path))).run(x), Runtime(to_bytes(g)).run(x), exact=False)


def test_exported_file_layout(tmp_path):
    """The file is a TFLite model with LCE's op names, options and 32-bit packed filters."""
    g, _ = _bconv_graph(65, 33, 3, 2, "same", 1, "packed")
    path = export_lce(g, tmp_path / "m.tflite")
    m = parse(path.read_bytes())
    names = [op.name for op in m.ops]
    assert names == ["ADD", "LceQuantize", "LceBconv2d", "LceBMaxPool2d", "LceDequantize"]
    bconv = m.ops[2]
    opts = loads(bconv.custom_options)
    assert opts == {"channels_in": 65, "dilation_height_factor": 1, "dilation_width_factor": 1,
                    "fused_activation_function": 0, "pad_values": 1, "padding": 0, "stride_height": 2,
                    "stride_width": 2}
    f = m.tensors[bconv.inputs[1]]
    assert f.type == 2 and f.shape == (33, 3, 3, 3)
    assert m.tensors[bconv.outputs[0]].shape == (2, 5, 4, 2)
    w, d = (g.tensors[i] for i in (g.ops[1].inputs[1], g.ops[1].inputs[5]))
    from edgebnn.ir.dtypes import unpack_bits
    flipped = unpack_bits(w.data.reshape(33, 3, 3, -1), 65) * d.data.reshape(33, 1, 1, 1)   # direction -1: -w
    np.testing.assert_array_equal(unpack32(f.data, 65), flipped)


def test_pack32_layout():
    v = np.ones((2, 70), np.int8)
    v[0, [0, 31, 32, 69]] = -1
    p = pack32(v)
    assert p.dtype == np.int32 and p.shape == (2, 3)
    assert [int(x) & 0xFFFFFFFF for x in p[0]] == [1 | 1 << 31, 1, 1 << 5] and not p[1].any()
    np.testing.assert_array_equal(unpack32(p, 70), v)


def test_flexbuffers_round_trip_and_corruption():
    opts = {"channels_in": 130, "padding": 1, "fused_activation_function": 0, "name": "SAME", "scale": 0.5}
    data = dumps(opts)
    assert loads(data) == opts
    try:
        from flatbuffers import flexbuffers as ref
    except ImportError:
        ref = None
    if ref is not None:   # the reference implementation reads ours and writes what we read
        assert ref.Loads(data) == opts
        for v in (opts, {"a": [1, 2, 3], "b": [1.5, -2.0], "c": {"x": -5, "y": "s"}, "t": True, "big": 1 << 40}):
            assert loads(ref.Dumps(v)) == v
    rng = np.random.default_rng(0)
    for i in range(len(data)):
        with pytest.raises(FlexError):
            loads(data[:i] if i < 3 else data[:i] + b"\xff\xff")
    for _ in range(500):   # corrupt bytes: a value or FlexError, never another exception
        bad = bytearray(data)
        bad[rng.integers(len(bad))] = rng.integers(256)
        try:
            loads(bytes(bad))
        except FlexError:
            pass


def test_unsupported_op_is_one_line(tmp_path):
    b = GraphBuilder()
    x = b.input("x", (1, 4, 4, 8))
    b.output(b.hardtanh(x), "y")
    with pytest.raises(UserError, match="cannot export HARDTANH 'hardtanh_0' to LCE") as e:
        export_lce(b.build(), tmp_path / "m.tflite")
    assert "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())



# -- float layers with PyTorch's explicit padding (a ResNet stem), run by TFLite with XNNPACK -----------
@pytest.fixture(scope="module")
def litert():
    """ai-edge-litert's interpreter with its default resolver: XNNPACK takes the float ops."""
    try:
        from ai_edge_litert import interpreter
    except Exception as e:  # noqa: BLE001 - a missing or broken install is a reason to skip
        pytest.skip(f"ai-edge-litert does not load here ({e}); pip install ai-edge-litert")

    def run(data: bytes, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
        it = interpreter.Interpreter(model_content=data, num_threads=1)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x, np.float32))
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"]), [o["op_name"] for o in it._get_ops_details()]
    return run


def _stem_graph(h, w, c, pool, seed=0):
    """conv 7x7/2 with padding 3 (+ bias), then a 3x3/2 pool with padding 1: neither is SAME for
    these shapes. 'max': no ReLU between them, the max pool sees negative values, so zero padding
    would be wrong where -inf padding is right; 'relu_max': a ReLU fused into the conv, zeros are
    exact."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", (2, h, w, c))
    y = b.conv2d(x, b.const(rng.standard_normal((16, 7, 7, c)).astype(np.float32), name="w"),
                 bias=rng.standard_normal(16).astype(np.float32), strides=2, padding=3,
                 activation="relu" if pool == "relu_max" else None, name="stem")
    if pool in ("max", "relu_max"):
        y = b.max_pool2d(y, 3, 2, 1, name="pool")
    elif pool == "avg_count_pad":
        y = b.avg_pool2d(y, 3, 2, 1, count_include_pad=True, name="pool")
    b.output(y, "y")
    return b.build(), rng.standard_normal((2, h, w, c)).astype(np.float32)


@pytest.mark.parametrize("h,w,c", [(32, 32, 3), (31, 30, 1), (17, 24, 5)])
@pytest.mark.parametrize("pool", ["max", "relu_max", "avg_count_pad", "none"])
def test_explicit_padding_matches_tflite(litert, h, w, c, pool):
    g, x = _stem_graph(h, w, c, pool, seed=h + c)
    want = Runtime(to_bytes(g)).run(x)
    got, ops = litert(to_lce_bytes(g), x)
    assert ops.count("PAD") == 1 + (pool in ("avg_count_pad", "relu_max")) and ops.count("PADV2") == (pool == "max")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
    if pool == "max":   # a zero-padded max pool differs here: the check above can fail
        assert (want < 0).any()


@pytest.mark.parametrize("h,w,c", [(32, 32, 3), (17, 24, 5)])
@pytest.mark.parametrize("pool", ["max", "relu_max", "avg_count_pad", "none"])
def test_explicit_padding_round_trip(tmp_path, h, w, c, pool):
    """The TFLite importer folds the exporter's PAD / PADV2 back into the conv and pool: the same
    ops with the same explicit padding, so the same numbers bit for bit."""
    g, x = _stem_graph(h, w, c, pool, seed=h + c)
    back = _round_trip(g, tmp_path)
    assert not {"PAD", "PADV2"} & {op.type.name for op in back.ops}
    pads = [tuple(op.attrs[Attr.PADS]) for op in back.ops if Attr.PADS in op.attrs]
    assert pads[0] == (3, 3, 3, 3) and (pool == "none" or pads[1] == (1, 1, 1, 1))
    np.testing.assert_array_equal(Runtime(to_bytes(back)).run(x), Runtime(to_bytes(g)).run(x))


def _pad_model(tmp_path, then: str, value: float | None = None) -> Path:
    """input [1, 6, 6, 2] -> PAD (PADV2 with `value`) by 1 -> `then` ('max' pool 3x3/2, or 'out')."""
    from edgebnn.converters.export.tflite_fb import FLOAT32, ModelBuilder, Table
    m = ModelBuilder()
    x = m.tensor("x", (1, 6, 6, 2), FLOAT32)
    p = m.tensor("padded", (1, 8, 8, 2), FLOAT32)
    widths = m.const("paddings", np.asarray([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
    if value is None:
        m.op(34, [x, widths], [p])
    else:
        m.op(60, [x, widths, m.const("value", np.asarray([value], np.float32))], [p])
    y = p
    if then == "max":
        y = m.tensor("y", (1, 3, 3, 2), FLOAT32)
        opts = Table({0: ("b", 1), 1: ("i", 2), 2: ("i", 2), 3: ("i", 3), 4: ("i", 3), 5: ("b", 0)})
        m.op(17, [p], [y], 22, opts)  # MAX_POOL_2D, Pool2DOptions, VALID
    path = tmp_path / f"pad_{then}_{value}.tflite"
    path.write_bytes(m.finish([x], [y], "pad test"))
    return path


def test_pad_import_folds_or_says_why(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 2)).astype(np.float32)
    out = tmp_path / "m.ebnn"
    convert(str(_pad_model(tmp_path, "max", -np.inf)), output=str(out), verify=False)
    want = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    want = np.max([want[:, i:i + 5:2, j:j + 5:2] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_array_equal(Runtime(out).run(x), want)
    for then, value, why in [("out", None, "read by an op other than a convolution or pool"),
                             ("max", None, "a max pool of values that may be negative ignores padded taps"),
                             ("max", 2.5, "pad value 2.5")]:
        bad = tmp_path / "bad.ebnn"
        with pytest.raises(UserError, match=why) as e:
            convert(str(_pad_model(tmp_path, then, value)), output=str(bad), verify=False)
        assert "\n" not in str(e.value) and ("PAD" in str(e.value))
        assert not bad.exists()


def test_same_padding_emits_no_pad(litert):
    """Padding that is TFLite's SAME for the shape stays SAME: no PAD op."""
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.input("x", (1, 8, 8, 4))
    y = b.conv2d(x, b.const(rng.standard_normal((6, 3, 3, 4)).astype(np.float32)), padding="same")
    b.output(b.max_pool2d(y, 2, 2, "same"), "y")
    g = b.build()
    xv = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    got, ops = litert(to_lce_bytes(g), xv)
    assert "PAD" not in ops and "PADV2" not in ops
    want = Runtime(to_bytes(g)).run(xv)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


def test_avg_pool_without_counted_padding_is_one_line(tmp_path):
    b = GraphBuilder()
    x = b.input("x", (1, 8, 8, 4))
    b.output(b.avg_pool2d(x, 3, 2, 1, name="pool"), "y")
    with pytest.raises(UserError, match="cannot export AVG_POOL2D 'pool' to LCE: padding") as e:
        export_lce(b.build(), tmp_path / "m.tflite")
    assert "\n" not in str(e.value)


# -- a model made by LCE's own converter (tests/data/lce/make_lce_models.py) -------------------------
# What LCE's converter emits differs from our exports: BatchNorm folded into post-activation
# multipliers/biases and output thresholds, bitpacked outputs, absent (-1) optional inputs, pad value 0,
# LceQuantize after ADD, a max pool moved onto the bits. Its outputs and LCE's packed words for the
# binary layers are stored, so the comparison runs where LCE's interpreter cannot.
LCE_DATA = Path(__file__).resolve().parents[1] / "data" / "lce"


@pytest.fixture(scope="module")
def small_bnn():
    path = LCE_DATA / "small_bnn.tflite"
    return path, parse(path.read_bytes()), dict(np.load(LCE_DATA / "small_bnn_io.npz"))


def _lowered(path, model, outputs=None) -> Runtime:
    from edgebnn.converters.tflite import lower
    return Runtime(to_bytes(lower(model, path, outputs=outputs)[0]))


def _matches_by_shape(got, want: dict):
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    assert sorted(g.shape for g in got) == sorted(w.shape for w in want.values())
    for g in got:
        name, w = next((k, w) for k, w in want.items() if w.shape == g.shape)
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5 * float(np.abs(w).max()), err_msg=name)


def test_lce_converted_model_covers_lce_fusions(small_bnn):
    _, m, _ = small_bnn
    names = [op.name for op in m.ops]
    assert {"LceQuantize", "LceBconv2d", "LceBMaxPool2d", "CONV_2D", "ADD", "FULLY_CONNECTED"} <= set(names)
    bconvs = [op for op in m.ops if op.name == "LceBconv2d"]
    assert any(m.tensors[op.outputs[0]].type == 2 and op.inputs[2] < 0 for op in bconvs)   # thresholds only
    assert {loads(op.custom_options)["pad_values"] for op in bconvs} == {0, 1}
    assert any(loads(op.custom_options)["fused_activation_function"] == 1 for op in bconvs)
    assert names[names.index("ADD") + 1] == "LceQuantize"
    assert names[names.index("LceDequantize") + 1] == "FULLY_CONNECTED"


def test_lce_converted_quant_dense_runs_binary(small_bnn):
    """larq's QuantDense arrives as LceDequantize -> float FULLY_CONNECTED with ±1 rows times the
    folded BatchNorm scale; the import runs it as a binary dense layer on the bits, unpacking nothing."""
    from edgebnn.converters.tflite import lower
    path, m, _ = small_bnn
    ops = [op.type.name for op in lower(m, path)[0].ops]
    assert ops.count("BFULLY_CONNECTED") == 1 and "UNPACK" not in ops and ops.count("FULLY_CONNECTED") == 1


def test_lce_converted_model_matches_stored_lce_outputs(small_bnn, tmp_path):
    path, m, io = small_bnn
    out = tmp_path / "small.ebnn"
    convert(str(path), output=str(out), verify=False)
    rt = Runtime(out)
    packed = {int(k.split("_")[1]): v for k, v in io.items() if k.startswith("packed_")}
    assert len(packed) == 2
    for i, x in enumerate(io["x"]):
        _matches_by_shape(rt.run(x), {"features": io["features"][i], "logits": io["logits"][i]})
        for t, words in packed.items():   # the binary layers: LCE's words, bit for bit
            c = next(op for op in m.ops if op.outputs[0] == t)
            c = m.tensors[c.inputs[1]].shape[0] if c.name == "LceBconv2d" else None
            got = _lowered(path, m, [t]).run(x)
            np.testing.assert_array_equal(got, unpack32(words[i], c or got.shape[-1]).astype(np.float32))


def test_lce_converted_model_matches_lce(small_bnn):
    mod, why = _lce_wrapper()
    if mod is None:
        if os.environ.get("EDGEBNN_REQUIRE_LCE"):
            pytest.fail(why)
        pytest.skip(why)
    path, m, _ = small_bnn
    data = path.read_bytes()
    rt = _lowered(path, m)
    rng = np.random.default_rng(11)
    for _ in range(4):   # fresh inputs, not the stored ones
        x = rng.standard_normal((1, 32, 32, 3)).astype(np.float32) * 2
        want = mod.LiteInterpreter(data, 1, False, False, False).predict([x])
        _matches_by_shape(rt.run(x), {f"output{k}": np.asarray(w) for k, w in enumerate(want)})
