"""ONNX export: every op family exported, run in onnxruntime and compared with the C runtime."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgebnn.converters.export.onnx import export_onnx  # noqa: E402
from edgebnn.errors import UserError  # noqa: E402
from edgebnn.format import save  # noqa: E402
from edgebnn.ir import GraphBuilder  # noqa: E402
from edgebnn.runtime import Runtime  # noqa: E402


def _pm1(rng, shape):
    return np.where(rng.standard_normal(shape) >= 0, 1, -1).astype(np.int8)


def _both(graph, tmp_path, name="m"):
    """(edgebnn Runtime, onnxruntime session) on the same graph."""
    ebnn, onnx_path = tmp_path / f"{name}.ebnn", tmp_path / f"{name}.onnx"
    save(graph, ebnn)
    export_onnx(graph, onnx_path)
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    return Runtime(ebnn), ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def _run_both(rt, sess, inputs):
    ours = rt.run(*inputs)
    ours = list(ours) if isinstance(ours, tuple) else [ours]
    theirs = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), inputs)})
    assert [o.name for o in sess.get_outputs()] == [o.name for o in rt.outputs]
    return ours, theirs


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(a)))))


def _check_float(graph, tmp_path, inputs_fn, trials=3, rel=1e-4):
    rt, sess = _both(graph, tmp_path)
    worst = 0.0
    for seed in range(trials):
        ours, theirs = _run_both(rt, sess, inputs_fn(np.random.default_rng(seed)))
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape and a.dtype == b.dtype
            worst = max(worst, _rel(a, b))
    assert worst <= rel, worst
    return worst


def test_demo_model_matches(tmp_path):
    from edgebnn.demo_model import build_demo_bnn
    _check_float(build_demo_bnn(), tmp_path, lambda r: [r.random((1, 1, 28, 28), np.float32)], trials=5)


def test_shipped_mnist_model_predicts_the_same_digits(tmp_path):
    torch = pytest.importorskip("torch")
    from edgebnn.converters import convert
    from edgebnn.format import load
    from edgebnn.zoo.pretrained import load_pretrained, load_sample_digits

    ebnn = tmp_path / "mnist.ebnn"
    convert(load_pretrained("mnist_bnn"), example_input=torch.zeros(1, 1, 28, 28), output=ebnn)
    graph = load(ebnn)
    assert graph.tensors[graph.inputs[0]].io_layout == "NCHW"
    export_onnx(graph, tmp_path / "mnist.onnx")
    rt = Runtime(ebnn)
    sess = ort.InferenceSession(str(tmp_path / "mnist.onnx"), providers=["CPUExecutionProvider"])
    images, labels = load_sample_digits()
    x = images.astype(np.float32)[:, None] / 255.0
    ours = np.concatenate([rt.run(x[i:i + 1]) for i in range(len(x))])
    theirs = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])
    assert _rel(ours, theirs) <= 1e-4
    assert (ours.argmax(1) == theirs.argmax(1)).all()
    assert (theirs.argmax(1) == labels).sum() >= 19


def test_float_ops(tmp_path):
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.input("x", (1, 9, 11, 6), layout="NCHW")
    f = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.5  # noqa: E731
    c = b.conv2d(x, f(8, 3, 3, 3), bias=f(8), strides=2, dilations=1, padding="same", groups=2, activation="relu6")
    d = b.depthwise_conv2d(c, f(3, 3, 16), bias=f(16), dilations=2, padding=(2, 1, 2, 3))
    h = b.hetconv2d(d, f(12, 3, 3, 4), f(12, 12), part=4, bias=f(12), padding="same", activation="relu")
    a = b.affine(h, f(12), f(12), activation="relu6")
    p = b.prelu(b.add(a, b.hardtanh(h, -0.3, 0.7)), f(12))
    m = b.mul(p, b.channel_mean(b.abs(p)))
    s = b.channel_shuffle(m, 3)
    mp = b.max_pool2d(s, 3, strides=2, padding=(1, 1, 1, 1))
    ap = b.avg_pool2d(s, 2, strides=1, padding=(1, 0, 1, 1), count_include_pad=True)
    ap2 = b.avg_pool2d(s, 3, strides=2, padding=(1, 1, 1, 1))
    cat = b.concat([mp, ap2], axis=3)
    t = b.transpose(cat, (0, 3, 1, 2))
    g = b.global_avg_pool(b.relu(b.relu6(ap)))
    fc = b.fully_connected(b.reshape(t, (1, -1)), f(7, 24 * cat.shape[1] * cat.shape[2]), bias=f(7))
    b.output(b.softmax(fc), name="probs")
    b.output(g, name="pooled", layout="NCHW")
    b.output(t, name="transposed")
    _check_float(b.build(), tmp_path, lambda r: [r.standard_normal((1, 6, 9, 11)).astype(np.float32)])


def test_pools_with_windows_mostly_in_the_padding(tmp_path):
    b = GraphBuilder()
    x = b.input("x", (1, 5, 4, 4))
    pads = (2, 2, 2, 1)      # the widest the loader takes: some windows hold one tap of the input
    b.output(b.max_pool2d(x, 3, strides=3, padding=pads), name="max")
    b.output(b.avg_pool2d(x, 3, strides=3, padding=pads), name="avg")
    b.output(b.avg_pool2d(x, 3, strides=3, padding=pads, count_include_pad=True), name="avg_inc")
    b.output(b.unpack(b.bmax_pool2d(b.sign_pack(x), 3, strides=3, padding=pads)), name="bmax")
    _check_float(b.build(), tmp_path, lambda r: [r.standard_normal((1, 5, 4, 4)).astype(np.float32) - 2])


def _binary_graph(rng, ic=65):
    b = GraphBuilder()
    x = b.input("x", (2, 10, 9, ic))
    thr = rng.standard_normal(ic).astype(np.float32) * 0.3
    bits = b.sign_pack(x, thresholds=thr)
    taps = 3 * 3 * ic
    # packed output with mixed directions, one padding, stride and dilation
    h = b.bconv2d(bits, b.const_bits(_pm1(rng, (63, 3, 3, ic))), strides=2, dilations=(2, 1), padding=(2, 1, 2, 1),
                  pad_value=1, thresholds=rng.integers(-taps // 8, taps // 8, 63, dtype=np.int32),
                  directions=np.where(rng.random(63) < 0.5, 1, -1).astype(np.int32))
    b.output(b.unpack(h), name="bits1")
    p = b.bmax_pool2d(h, 2, strides=1, padding=(1, 1, 0, 0))
    # zero padding, float epilogue: the raw accumulator, then multiplier/bias + relu
    acc = b.bconv2d(p, b.const_bits(_pm1(rng, (7, 3, 3, 63))), padding="same")
    b.output(acc, name="acc")
    y = b.bconv2d(p, b.const_bits(_pm1(rng, (5, 2, 2, 63))), strides=2, padding=(1, 1, 0, 0),
                  multiplier=rng.uniform(0.01, 0.1, 5), bias=rng.standard_normal(5), activation="relu")
    b.output(y, name="float_out")
    # grouped (LCE emits them): 3 groups of 21 channels, one padding, packed output
    gb = b.bconv2d(p, b.const_bits(_pm1(rng, (6, 3, 3, 21))), padding="same", pad_value=1, groups=3,
                   thresholds=rng.integers(-20, 20, 6, dtype=np.int32),
                   directions=np.where(rng.random(6) < 0.5, 1, -1).astype(np.int32))
    b.output(b.unpack(gb), name="grouped_bits")
    b.output(b.bconv2d(p, b.const_bits(_pm1(rng, (6, 3, 3, 21))), padding="same", groups=3), name="grouped_acc")
    cat = b.concat([p, b.sign_pack(acc)], axis=3)
    flat = b.reshape(cat, (2, -1))
    k = flat.shape[1]
    fb = b.bfully_connected(flat, b.const_bits(_pm1(rng, (130, k))),
                            thresholds=rng.integers(-20, 20, 130, dtype=np.int32),
                            directions=np.where(rng.random(130) < 0.5, 1, -1).astype(np.int32))
    b.output(b.unpack(fb), name="fc_bits")
    fo = b.bfully_connected(fb, b.const_bits(_pm1(rng, (10, 130))), multiplier=rng.uniform(0.5, 1, 10),
                            bias=rng.standard_normal(10))
    b.output(fo, name="fc_out")
    return b.build()


def test_binary_layers_exact(tmp_path):
    rng = np.random.default_rng(2)
    rt, sess = _both(_binary_graph(rng), tmp_path)
    names = [o.name for o in rt.outputs]
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((2, 10, 9, 65)).astype(np.float32)
        x[0, 0, 0, :8] = 0.0        # sign(0) = +1 on both sides
        ours, theirs = _run_both(rt, sess, [x])
        out = dict(zip(names, zip(ours, theirs)))
        for n in ("bits1", "acc", "fc_bits", "grouped_bits", "grouped_acc"):   # ±1 and integer-valued: exact
            np.testing.assert_array_equal(out[n][0], out[n][1], err_msg=n)
        assert np.abs(out["acc"][0]).max() > 0 and (out["bits1"][0] == -1).any() and (out["bits1"][0] == 1).any()
        for n in ("float_out", "fc_out"):
            assert _rel(*out[n]) <= 1e-5, n


def test_kbit_conv_exact_and_horq_close(tmp_path):
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("x", (1, 8, 7, 5), layout="NCHW")
    k = b.kbit_conv2d(x, b.const_bits(_pm1(rng, (6, 3, 3, 5))), bits=3, step=0.25, strides=(1, 2), padding="same")
    b.output(k, name="kbit_acc")
    b.output(b.kbit_conv2d(x, b.const_bits(_pm1(rng, (4, 3, 3, 5))), bits=2, step=0.5, dilations=2,
                           multiplier=rng.uniform(0.1, 1, 4), bias=rng.standard_normal(4), activation="relu"),
             name="kbit")
    b.output(b.horq_conv2d(x, b.const_bits(_pm1(rng, (6, 3, 3, 5))), order=3, strides=2, padding=(1, 1, 1, 1),
                           multiplier=rng.uniform(0.1, 1, 6), bias=rng.standard_normal(6)), name="horq")
    b.output(b.horq_conv2d(x, b.const_bits(_pm1(rng, (3, 1, 1, 5))), order=1), name="horq1")
    rt, sess = _both(b.build(), tmp_path)
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, 5, 8, 7)).astype(np.float32)
        x[0, 0, 0, :3] = [0.125, 0.375, -0.125]     # exact .5 code ties
        ours, theirs = _run_both(rt, sess, [x])
        np.testing.assert_array_equal(ours[0], theirs[0])
        assert _rel(ours[1], theirs[1]) <= 1e-5
        assert _rel(ours[2], theirs[2]) <= 1e-4 and _rel(ours[3], theirs[3]) <= 1e-5


def test_int8_layers(tmp_path):
    rng = np.random.default_rng(4)
    b = GraphBuilder()
    xs, xz = 0.05, 3
    x = b.input("x", (1, 7, 6, 8), dtype="i8", scale=xs, zero_point=xz)
    y_in = b.input("y", (1, 7, 6, 8), dtype="i8", scale=0.08, zero_point=-5)
    wq = rng.integers(-127, 128, (12, 3, 3, 8)).astype(np.int8)
    ws = rng.uniform(0.002, 0.01, 12).astype(np.float32)
    b.output(b.conv2d(x, b.const(wq, scale=ws, axis=0), bias=rng.integers(-500, 500, 12), strides=2,
                      padding="same", activation="relu", out_scale=0.1, out_zero_point=-10), name="conv")
    dw = rng.integers(-127, 128, (3, 3, 16)).astype(np.int8)
    b.output(b.depthwise_conv2d(x, b.const(dw, scale=0.01, zero_point=4), padding=(1, 1, 1, 1), dilations=2,
                                out_scale=0.05, out_zero_point=2), name="dw")
    b.output(b.add(x, y_in, activation="relu6", out_scale=0.04, out_zero_point=-20), name="add")
    b.output(b.max_pool2d(x, 3, strides=2, padding="same"), name="maxpool")
    b.output(b.avg_pool2d(x, 2, strides=2, padding=(0, 0, 1, 0)), name="avgpool")
    b.output(b.global_avg_pool(x, out_scale=0.03, out_zero_point=1), name="gap")
    fcw = rng.integers(-127, 128, (9, 7 * 6 * 8)).astype(np.int8)
    b.output(b.fully_connected(b.reshape(x, (1, -1)), b.const(fcw, scale=rng.uniform(0.001, 0.002, 9), axis=0),
                               bias=rng.integers(-100, 100, 9), out_scale=0.2, out_zero_point=0), name="fc")
    f = b.dequantize(b.transpose(b.channel_shuffle(x, 2), (0, 3, 1, 2)))
    b.output(b.quantize(b.hardtanh(f, -0.5, 2.0), 0.02, -7), name="requant")
    b.output(f, name="dequant")
    rt, sess = _both(b.build(), tmp_path)
    names = [o.name for o in rt.outputs]
    for seed in range(3):
        r = np.random.default_rng(seed)
        ins = [r.integers(-128, 128, (1, 7, 6, 8)).astype(np.int8) for _ in range(2)]
        ours, theirs = _run_both(rt, sess, ins)
        for n, a, t in zip(names, ours, theirs):
            assert a.dtype == t.dtype, n
            if n in ("requant", "dequant", "maxpool"):       # exact ops
                np.testing.assert_array_equal(a, t, err_msg=n)
            else:                                           # float-simulated requantization
                assert np.abs(a.astype(int) - t.astype(int)).max() <= 1, n


def test_quantize_rounds_half_away_from_zero(tmp_path):
    b = GraphBuilder()
    x = b.input("x", (1, 16))
    b.output(b.quantize(x, 0.5, 1), name="q")
    rt, sess = _both(b.build(), tmp_path)
    v = np.array([[0.25, -0.25, 0.75, -0.75, 1.25, 63.75, -64.25, 100.0, -100.0, np.nan, 0.0, -0.0, 0.24999999,
                   -0.2500001, 1e30, -1e30]], np.float32)
    ours, theirs = _run_both(rt, sess, [v])
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_unsupported_op_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    from edgebnn.converters.export import onnx as exp
    from edgebnn.demo_model import build_demo_bnn
    from edgebnn.ir import OpType
    monkeypatch.delitem(exp._LOWER, OpType.SOFTMAX)
    out = tmp_path / "m.onnx"
    with pytest.raises(UserError, match=r"layer 'probs': op SOFTMAX cannot be exported"):
        export_onnx(build_demo_bnn(), out)
    assert list(tmp_path.iterdir()) == []


def test_cli_export(tmp_path, edgebnn_cli):
    from edgebnn.demo_model import build_demo_bnn
    save(build_demo_bnn(), tmp_path / "demo.ebnn")
    r = edgebnn_cli("export", "demo.ebnn", "--to", "onnx", "-o", "demo.onnx")
    assert r.returncode == 0, r.stderr
    assert "wrote demo.onnx" in r.stdout
    sess = ort.InferenceSession(str(tmp_path / "demo.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 1, 28, 28]
    r = edgebnn_cli("export", "missing.ebnn", "--to", "onnx")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr
    r = edgebnn_cli("export", "demo.ebnn", "--to", "tflite")
    assert r.returncode == 2 and "tflite" in r.stderr
    if importlib.util.find_spec("edgebnn.converters.export.lce") is None:
        r = edgebnn_cli("export", "demo.ebnn", "--to", "lce", "-o", "demo.tflite")
        assert r.returncode == 1 and r.stderr.strip() == "edgebnn: error: LCE export is not available in this build"


@pytest.mark.parametrize("source, rel", [("qonnx/TFC_1W1A.onnx", 1e-5),      # binary FC chain: exact
                                          ("tflite/vww_96_int8.tflite", 0.02)])  # int8, float-simulated
def test_shared_models_match(tmp_path, shared_data, source, rel):
    from edgebnn.converters import convert
    from edgebnn.format import load
    ebnn = tmp_path / "m.ebnn"
    convert(shared_data / "models" / source, output=ebnn)
    export_onnx(load(ebnn), tmp_path / "m.onnx")
    rt = Runtime(ebnn)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    spec = rt.inputs[0]
    for seed in range(3):
        r = np.random.default_rng(seed)
        x = r.integers(-128, 128, spec.shape).astype(spec.dtype) if spec.dtype.kind == "i" else \
            r.random(spec.shape, np.float32)
        ours, theirs = _run_both(rt, sess, [x])
        assert _rel(ours[0], theirs[0]) <= rel
        assert (ours[0].reshape(len(x), -1).argmax(1) == theirs[0].reshape(len(x), -1).argmax(1)).all()
