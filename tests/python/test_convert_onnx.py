"""edgebnn convert for ONNX / QONNX: the published QONNX MNIST networks reproduce their accuracy with
binary / K-bit kernels, torch.onnx exports match onnxruntime, and bad input fails in one line."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgebnn.converters import convert  # noqa: E402
from edgebnn.errors import UserError  # noqa: E402
from edgebnn.format import load  # noqa: E402
from edgebnn.ir.ops import OpType  # noqa: E402
from edgebnn.runtime import Runtime  # noqa: E402


def _ops(path) -> list[OpType]:
    return [op.type for op in load(path).ops]


def _export(model, x, path, **kw):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, (x,), str(path), dynamo=False, **kw)
    return path


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _check_vs_onnxruntime(onnx_path, out_path, x, rel=1e-4):
    want = _onnxruntime(onnx_path, x)
    got = Runtime(out_path).run(x)
    scale = max(1.0, float(np.abs(want).max()))
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= rel * scale, (np.abs(got - want).max(), scale)


# ---- the published QONNX networks (Brevitas TFC, MNIST) -------------------------------------

TFC = [("TFC_1W1A", 93.17, OpType.BFULLY_CONNECTED), ("TFC_1W2A", 94.79, OpType.KBIT_CONV2D),
       ("TFC_2W2A", 96.60, OpType.FULLY_CONNECTED)]


@pytest.mark.parametrize("name,published,layer_op", TFC, ids=[t[0] for t in TFC])
def test_qonnx_tfc_reaches_published_accuracy(tmp_path, shared_data, name, published, layer_op):
    from edgebnn.converters.onnx import load_onnx, reference_run
    from edgebnn.datasets import load_split

    src = shared_data / "models" / "qonnx" / f"{name}.onnx"
    out = tmp_path / f"{name}.ebnn"
    report = convert(src, output=out)
    ops = _ops(out)
    # the four layers run on the kernel their values allow: 1-bit weights and activations binary,
    # 1-bit weights with 2-bit activations K-bit, ternary weights float (with the reason)
    assert sum(op is layer_op for op in ops) == 4, ops
    kinds = [r.kind for r in report.layers if r.op == layer_op.name]
    assert kinds == {"TFC_1W1A": ["binary"] * 4, "TFC_1W2A": ["k-bit"] * 4, "TFC_2W2A": ["fp32"] * 4}[name]
    if name == "TFC_2W2A":
        assert all("not ±α" in r.why_float for r in report.float_layers)
    images, labels = load_split("mnist", "test", shared_data / "mnist")
    x = images.astype(np.float32).reshape(-1, 1, 28, 28) / 255
    rt = Runtime(out)
    got = np.concatenate([rt.run(x[i:i + 1]) for i in range(len(x))])
    acc = 100 * float((got.argmax(1) == labels).mean())
    assert abs(acc - published) <= 0.3, (acc, published)
    # and the logits are the QONNX graph's own (NumPy reference run), to float rounding
    model = load_onnx(src)
    want = reference_run(model, "0", x)[model.graph.output[0].name]
    assert np.abs(got - want).max() <= 1e-5
    # argmax differs only where two logits of the reference are exactly tied (integer accumulators)
    top2 = np.sort(want, 1)[:, -2:]
    differ = got.argmax(1) != want.argmax(1)
    assert np.all(top2[differ, 0] == top2[differ, 1])


def test_cli_converts_qonnx_with_report(tmp_path, shared_data, edgebnn_cli):
    import json
    src = shared_data / "models" / "qonnx" / "TFC_1W1A.onnx"
    r = edgebnn_cli("convert", src, "-o", tmp_path / "t.ebnn", "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["totals"]["layers_by_kind"]["binary"] == 4
    assert "BFULLY_CONNECTED" in r.stdout or "binary" in r.stdout


# ---- float CNNs from torch.onnx.export vs onnxruntime ----------------------------------------

class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16),
                                nn.LeakyReLU(0.1))
        self.pw = nn.Sequential(nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16), nn.PReLU(16))
        self.down = nn.Sequential(nn.Conv2d(16, 24, 3, 1, 2, dilation=2), nn.MaxPool2d(2, 2, ceil_mode=True))
        self.avg = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.head = nn.Linear(24, 10)

    def forward(self, x):
        y = self.stem(x)
        y = y + self.pw(self.dw(y))          # residual add
        y = torch.clamp(self.down(y), -2.0, 3.0)
        y = self.avg(y) * 0.5 - 0.25
        y = y.mean((2, 3))
        return torch.softmax(self.head(y), -1)


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


def test_float_cnn_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    model = _randomize_bn(SmallCNN())
    x = torch.rand(1, 3, 33, 31)
    src = _export(model, x, tmp_path / "cnn.onnx")
    report = convert(src, output=tmp_path / "cnn.ebnn")
    ops = _ops(tmp_path / "cnn.ebnn")
    assert OpType.DEPTHWISE_CONV2D in ops and OpType.ADD in ops and OpType.MAX_POOL2D in ops
    assert OpType.SOFTMAX in ops and OpType.AVG_POOL2D in ops
    assert report.verify["max_abs_diff"] <= 1e-4
    assert all(r.why_float for r in report.float_layers)
    _check_vs_onnxruntime(src, tmp_path / "cnn.ebnn", np.random.default_rng(1).random((1, 3, 33, 31), np.float32))


def test_zoo_mobilenet_matches_onnxruntime(tmp_path):
    from edgebnn import zoo
    torch.manual_seed(0)
    model = _randomize_bn(zoo.create("mobilenet_v1", width=0.25))
    x = torch.rand(1, 3, 64, 64)
    src = _export(model, x, tmp_path / "mbv1.onnx")
    convert(src, output=tmp_path / "mbv1.ebnn")
    _check_vs_onnxruntime(src, tmp_path / "mbv1.ebnn", np.random.default_rng(2).random((1, 3, 64, 64), np.float32))


# ---- a binary model exported from PyTorch -----------------------------------------------------

def test_shipped_bnn_exported_to_onnx_keeps_binary_layers(tmp_path):
    from edgebnn.zoo.pretrained import load_pretrained
    model = load_pretrained("mnist_bnn").eval()
    x = torch.rand(1, 1, 28, 28)
    # torch.onnx writes the sign as Where(GreaterOrEqual(x, 0), 1, -1), weights' sign likewise
    src = _export(model, x, tmp_path / "bnn.onnx")
    assert "Where" in {n.op_type for n in onnx.load(str(src)).graph.node}
    report = convert(src, output=tmp_path / "bnn.ebnn")
    ops = _ops(tmp_path / "bnn.ebnn")
    assert ops.count(OpType.BCONV2D) == 2 and ops.count(OpType.BFULLY_CONNECTED) == 1
    assert [r.kind for r in report.layers if r.op in ("BCONV2D", "BFULLY_CONNECTED")] == ["binary"] * 3
    xs = np.random.default_rng(3).random((1, 1, 28, 28), np.float32)
    _check_vs_onnxruntime(src, tmp_path / "bnn.ebnn", xs)
    with torch.no_grad():
        want = model(torch.from_numpy(xs)).numpy()
    assert np.abs(Runtime(tmp_path / "bnn.ebnn").run(xs) - want).max() <= 1e-4 * max(1, np.abs(want).max())


# ---- QONNX quantizers on hand-made graphs -----------------------------------------------------

def _qonnx_mlp(path, act_bits, w_values, rounding="ROUND", act_scale=0.5):
    """x -> Quant(act_bits) -> MatMul(W) -> Relu: W given by its values (folded from a Quant on weights)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = rng.choice(w_values, size=(16, 8)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w_raw"),
             numpy_helper.from_array(np.array(act_scale, np.float32), "s"),
             numpy_helper.from_array(np.array(0.0, np.float32), "z"),
             numpy_helper.from_array(np.array(float(act_bits), np.float32), "b"),
             numpy_helper.from_array(np.array(1.0, np.float32), "ws"),
             numpy_helper.from_array(np.array(8.0, np.float32), "wb")]
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b"], ["xq"], domain="onnx.brevitas", signed=1, narrow=0,
                              rounding_mode=rounding),
             helper.make_node("Quant", ["w_raw", "ws", "z", "wb"], ["w"], domain="onnx.brevitas", signed=1,
                              narrow=0, rounding_mode="ROUND"),
             helper.make_node("MatMul", ["xq", "w"], ["y0"]),
             helper.make_node("Relu", ["y0"], ["y"])]
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _ref(path, x):
    from edgebnn.converters.onnx import load_onnx, reference_run
    m = load_onnx(path)
    return reference_run(m, m.graph.input[0].name, x)[m.graph.output[0].name]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_kbit_quant_before_binary_weights_runs_as_kbit_conv(tmp_path, bits):
    src = _qonnx_mlp(tmp_path / "k.onnx", bits, [-1.0, 1.0], rounding="HALF_UP")
    convert(src, output=tmp_path / "k.ebnn")
    assert OpType.KBIT_CONV2D in _ops(tmp_path / "k.ebnn")
    x = (np.random.default_rng(4).standard_normal((1, 16)) * 2 ** bits * 0.3).astype(np.float32)
    # HALF_UP is the kernel's own rounding away from ties below zero; avoid exact ties in the input
    x = np.where(np.abs(x / 0.5 - np.round(x / 0.5)) == 0.5, x + 0.01, x).astype(np.float32)
    got = Runtime(tmp_path / "k.ebnn").run(x)
    assert np.abs(got - _ref(src, x)).max() <= 1e-5


def test_quant_before_float_weights_is_emulated_with_the_reason(tmp_path):
    src = _qonnx_mlp(tmp_path / "e.onnx", 4, [-3.0, -1.0, 0.0, 2.0, 5.0])
    report = convert(src, output=tmp_path / "e.ebnn")
    ops = _ops(tmp_path / "e.ebnn")
    assert OpType.QUANTIZE in ops and OpType.DEQUANTIZE in ops and OpType.FULLY_CONNECTED in ops
    assert "not ±α" in report.float_layers[0].why_float
    assert any("emulated" in n for n in report.notes)
    x = np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32) * 3
    x = np.where(np.abs(x / 0.5 - np.round(x / 0.5)) == 0.5, x + 0.01, x).astype(np.float32)
    assert np.abs(Runtime(tmp_path / "e.ebnn").run(x) - _ref(src, x)).max() <= 1e-4


# ---- bad input: one line, nothing written -------------------------------------------------------

def _one_line_error(fn, *words):
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_not_onnx_file(tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    _one_line_error(lambda: convert(bad, output=tmp_path / "o.ebnn"), "not an ONNX model")
    assert not (tmp_path / "o.ebnn").exists()


def test_unsupported_op_names_op_and_node(tmp_path):
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first_relu"),
             helper.make_node("Erf", ["r"], ["y"], name="my_erf_node")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    src = tmp_path / "erf.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(src))
    _one_line_error(lambda: convert(src, output=tmp_path / "o.ebnn"), "Erf", "my_erf_node")
    assert not (tmp_path / "o.ebnn").exists()


def test_dynamic_shape_needs_input_shape(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    src = _export(model, torch.rand(1, 3, 16, 16), tmp_path / "dyn.onnx", input_names=["img"],
                  dynamic_axes={"img": {0: "batch", 2: "h", 3: "w"}})
    _one_line_error(lambda: convert(src, output=tmp_path / "o.ebnn"), "dynamic", "--input-shape")
    assert not (tmp_path / "o.ebnn").exists()
    convert(src, output=tmp_path / "o.ebnn", input_shape="1,3,20,24")
    _check_vs_onnxruntime(src, tmp_path / "o.ebnn", np.random.default_rng(6).random((1, 3, 20, 24), np.float32))


def test_cli_errors_are_one_line(tmp_path, edgebnn_cli):
    bad = tmp_path / "junk.onnx"
    bad.write_text("hello")
    r = edgebnn_cli("convert", bad, "-o", tmp_path / "o.ebnn")
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "not an ONNX model" in r.stderr
    assert not (tmp_path / "o.ebnn").exists()
