"""edgebnn convert: binarization recognised by value in anyone's code, outputs equal to PyTorch,
reports, and one-line errors that leave nothing behind."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgebnn.converters import convert  # noqa: E402
from edgebnn.errors import UserError  # noqa: E402
from edgebnn.format import load  # noqa: E402
from edgebnn.ir.ops import OpType  # noqa: E402
from edgebnn.passes.thresholds import integer_thresholds  # noqa: E402
from edgebnn.runtime import Runtime  # noqa: E402


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.6 - 0.3)
    return model.eval()


def _ops(path) -> list[OpType]:
    return [op.type for op in load(path).ops]


def _check_close(model, x, path, tol=1e-4):
    with torch.no_grad():
        want = model(x).numpy()
    got = Runtime(path).run(x.numpy())
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= tol * scale, (np.abs(got - want).max(), scale)
    return got, want


# ---- third-party BNN code styles ------------------------------------------------------------

class BiRealHardBinaryConv(nn.Module):
    """Bi-Real Net's official HardBinaryConv: the scale is computed in forward, STE by detach."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.rand(cout, cin, 3, 3) * 0.001)

    def forward(self, x):
        real = self.weight
        scale = torch.mean(torch.mean(torch.mean(abs(real), dim=3, keepdim=True), dim=2, keepdim=True), dim=1,
                           keepdim=True).detach()
        bw_no_grad = scale * torch.sign(real)
        clipped = torch.clamp(real, -1.0, 1.0)
        bw = bw_no_grad.detach() - clipped.detach() + clipped
        return F.conv2d(x, bw, stride=self.stride, padding=1)


class BiRealBinaryActivation(nn.Module):
    """Bi-Real's BinaryActivation: sign forward, piecewise polynomial backward via detach."""

    def forward(self, x):
        out_forward = torch.sign(x)
        mask1 = x < -1
        mask2 = x < 0
        mask3 = x < 1
        out1 = (-1) * mask1.type(torch.float32) + (x * x + 2 * x) * (1 - mask1.type(torch.float32))
        out2 = out1 * mask2.type(torch.float32) + (-x * x + 2 * x) * (1 - mask2.type(torch.float32))
        out3 = out2 * mask3.type(torch.float32) + 1 * (1 - mask3.type(torch.float32))
        return out_forward.detach() - out3.detach() + out3


class BiRealBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.act = BiRealBinaryActivation()
        self.conv = BiRealHardBinaryConv(c, c)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(self.conv(self.act(x))) + x


class LearnableBias(nn.Module):  # ReActNet's code: RSign = sign(x + b), RPReLU = bias, PReLU, bias
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(1, c, 1, 1) * 0.2)

    def forward(self, x):
        return x + self.bias.expand_as(x)


class ReActBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.move0 = LearnableBias(c)
        self.conv = BiRealHardBinaryConv(c, c)
        self.bn = nn.BatchNorm2d(c)
        self.move1 = LearnableBias(c)
        self.prelu = nn.PReLU(c)
        self.move2 = LearnableBias(c)

    def forward(self, x):
        out = BiRealBinaryActivation()(self.move0(x))
        out = self.bn(self.conv(out)) + x
        return self.move2(self.prelu(self.move1(out)))


class Binarize(torch.autograd.Function):  # BinaryNet.pytorch
    @staticmethod
    def forward(ctx, x):
        return x.sign()

    @staticmethod
    def backward(ctx, g):
        return g


class BinarizeLinear(nn.Linear):
    def forward(self, x):
        return F.linear(Binarize.apply(x), Binarize.apply(self.weight))


def _stem(c):
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.MaxPool2d(2))


@pytest.mark.parametrize("style", ["bireal", "reactnet"])
def test_third_party_binary_convs_are_recognised(tmp_path, style):
    torch.manual_seed(1)
    c = 64
    block = BiRealBlock if style == "bireal" else ReActBlock
    model = _randomize_bn(nn.Sequential(_stem(c), block(c), block(c), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(c, 10)))
    x = torch.randn(1, 3, 16, 16)
    report = convert(model, example_input=x, output=tmp_path / "m.ebnn")
    ops = _ops(tmp_path / "m.ebnn")
    assert ops.count(OpType.BCONV2D) == 2
    assert [layer.kind for layer in report.layers if layer.op == "BCONV2D"] == ["binary", "binary"]
    if style == "reactnet":
        assert OpType.PRELU in ops
    _check_close(model, x, tmp_path / "m.ebnn")
    # the source's torch.sign gives 0 at exactly 0: said in the report
    assert any("gives 0" in n for n in report.notes)


class GroupedBinaryConv(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(Binarize.apply(x), Binarize.apply(self.weight), None, self.stride, self.padding,
                        self.dilation, self.groups)


@pytest.mark.parametrize("groups,c", [(2, 128), (4, 12)])
def test_grouped_binary_conv_runs_binary(tmp_path, groups, c):
    """Grouped binary convs become grouped BCONV2D (whole words per group: the fast kernels per
    group; 3 channels per group: the reference path), chained on packed bits through BN + sign."""
    torch.manual_seed(3)
    model = _randomize_bn(nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                        GroupedBinaryConv(c, c, 3, padding=1, groups=groups, bias=False),
                                        nn.BatchNorm2d(c), GroupedBinaryConv(c, c, 3, padding=1, groups=groups,
                                                                             bias=False),
                                        nn.BatchNorm2d(c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)))
    x = torch.randn(1, 3, 12, 12)
    report = convert(model, example_input=x, output=tmp_path / "m.ebnn")
    g = load(tmp_path / "m.ebnn")
    from edgebnn.ir.ops import Attr
    convs = [op for op in g.ops if op.type is OpType.BCONV2D]
    assert [int(op.attrs[Attr.GROUPS][0]) for op in convs] == [groups, groups]
    assert [layer.kind for layer in report.layers if layer.op == "BCONV2D"] == ["binary", "binary"]
    _check_close(model, x, tmp_path / "m.ebnn")


def test_binarynet_pytorch_style_mlp(tmp_path):
    torch.manual_seed(2)
    model = _randomize_bn(nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.BatchNorm1d(256),
                                        BinarizeLinear(256, 256), nn.BatchNorm1d(256), nn.Hardtanh(),
                                        BinarizeLinear(256, 10)))
    x = torch.rand(1, 1, 28, 28)
    convert(model, example_input=x, output=tmp_path / "m.ebnn")
    ops = _ops(tmp_path / "m.ebnn")
    assert ops.count(OpType.BFULLY_CONNECTED) == 2
    _check_close(model, x, tmp_path / "m.ebnn")


def test_packed_outputs_chain_binary_layers_with_thresholds(tmp_path):
    from edgebnn.zoo.pretrained import load_pretrained
    model = load_pretrained("mnist_bnn")
    convert(model, example_input=torch.zeros(1, 1, 28, 28), output=tmp_path / "m.ebnn")
    g = load(tmp_path / "m.ebnn")
    kinds = [(op.type, g.tensors[op.outputs[0]].dtype.short) for op in g.ops]
    # BN + max-pool + sign folded: binary convs emit packed bits into a binary max pool
    assert (OpType.BCONV2D, "bit1") in kinds and (OpType.BMAX_POOL2D, "bit1") in kinds
    assert [t for t, _ in kinds].count(OpType.SIGN_PACK) == 1


def test_shipped_model_identical_predictions_on_shipped_digits(tmp_path):
    from edgebnn.zoo.pretrained import load_pretrained, load_sample_digits
    model = load_pretrained("mnist_bnn")
    convert(model, example_input=torch.zeros(1, 1, 28, 28), output=tmp_path / "m.ebnn")
    images, _ = load_sample_digits()
    x = torch.from_numpy(images.astype(np.float32) / 255).reshape(-1, 1, 1, 28, 28)
    rt = Runtime(tmp_path / "m.ebnn")
    with torch.no_grad():
        for xi in x:
            assert int(rt.run(xi.numpy()).argmax()) == int(model(xi).argmax())


def test_shipped_model_identical_predictions_on_full_mnist_test_set(tmp_path, shared_data):
    from edgebnn.datasets import load_split
    from edgebnn.zoo.pretrained import load_pretrained
    model = load_pretrained("mnist_bnn")
    convert(model, example_input=torch.zeros(1, 1, 28, 28), output=tmp_path / "m.ebnn")
    images, labels = load_split("mnist", "test", shared_data / "mnist")
    x = images.astype(np.float32).reshape(-1, 1, 28, 28) / 255
    with torch.no_grad():
        want = model(torch.from_numpy(x)).argmax(1).numpy()
    rt = Runtime(tmp_path / "m.ebnn")
    got = np.array([rt.run(x[i:i + 1]).argmax() for i in range(len(x))])
    assert np.array_equal(got, want)
    assert (got == labels).mean() > 0.98


ZOO_CASES = [("binarynet_mlp", {}, (1, 28, 28)), ("binarynet_cnn", {}, (1, 28, 28)),
             ("birealnet18", {}, (3, 64, 64)), ("quicknet", {}, (3, 64, 64)),
             ("mobilenet_v1", {"width": 0.25}, (3, 64, 64)), ("mobilenet_v2", {"width": 0.35}, (3, 64, 64)),
             ("hetconv_resnet", {"part": 4}, (3, 32, 32)),
             ("binarynet_cnn", {"method": "horq"}, (1, 28, 28)), ("binarynet_cnn", {"method": "hwgq"}, (1, 28, 28)),
             ("binarynet_cnn", {"method": "xnor"}, (1, 28, 28)), ("xnor_resnet18", {}, (3, 64, 64))]


@pytest.mark.parametrize("name,kwargs,shape", ZOO_CASES,
                         ids=[c[0] + "".join(f"-{v}" for v in c[1].values()) for c in ZOO_CASES])
def test_zoo_models_convert_and_match(tmp_path, name, kwargs, shape):
    from edgebnn.zoo import create
    torch.manual_seed(0)
    model = _randomize_bn(create(name, **kwargs))
    x = torch.randn(1, *shape)
    report = convert(model, example_input=x, output=tmp_path / "m.ebnn")
    with torch.no_grad():
        want = model(x).numpy()
    got = Runtime(tmp_path / "m.ebnn").run(x.numpy())
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
    # layers with binary weights AND binary inputs (BinaryNet's first layer sees real pixels: it stays float)
    binary_in_source = sum(1 for m in model.modules() if getattr(m, "binary_input", False))
    assert sum(1 for layer in report.layers if layer.op in ("BCONV2D", "BFULLY_CONNECTED")) == binary_in_source
    kbit_in_source = sum(1 for m in model.modules() if getattr(m, "input_quant", None) in ("horq", "hwgq"))
    assert sum(1 for layer in report.layers if layer.op in ("KBIT_CONV2D", "HORQ_CONV2D")) == kbit_in_source
    if name == "hetconv_resnet":
        assert OpType.HETCONV2D in _ops(tmp_path / "m.ebnn")
    for layer in report.float_layers:
        assert layer.why_float, layer


def test_horq_recognised_by_value_in_an_exported_program(tmp_path):
    """HORQ traced by torch.export is im2col + a residual chain + matmul: probed, it maps to HORQ_CONV2D."""
    from edgebnn.zoo import create
    torch.manual_seed(5)
    model = _randomize_bn(create("binarynet_cnn", method="horq", bits=3))
    x = torch.randn(1, 1, 28, 28)
    ep = torch.export.export(model, (x,))
    assert any("im2col" in str(n.target) for n in ep.graph.nodes)
    report = convert(ep, output=tmp_path / "h.ebnn")
    assert _ops(tmp_path / "h.ebnn").count(OpType.HORQ_CONV2D) == 3
    assert [layer.kind for layer in report.layers if layer.op == "HORQ_CONV2D"] == ["k-bit"] * 3
    _check_close(model, x, tmp_path / "h.ebnn")


def test_binary_resnet18_file_size_close_to_packed_parameters(tmp_path):
    from edgebnn.zoo import create
    model = create("birealnet18").eval()
    convert(model, example_input=torch.zeros(1, 3, 224, 224), output=tmp_path / "m.ebnn", verify=False)
    need = 0
    for m in model.modules():
        if type(m).__name__ == "BinaryConv2d":
            need += m.weight.numel() / 8
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            need += m.weight.numel() * 4 + (0 if m.bias is None else m.bias.numel() * 4)
    size = (tmp_path / "m.ebnn").stat().st_size
    assert size <= 1.10 * need, (size, need)


def test_hetconv_dense_pattern_is_recognised(tmp_path):
    from edgebnn.nn import HetConv2d
    torch.manual_seed(3)
    het = HetConv2d(16, 32, 3, part=4)
    dense = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    with torch.no_grad():
        dense.weight.copy_(het.dense_weight())
    x = torch.randn(1, 16, 12, 12)
    for model in (nn.Sequential(het), nn.Sequential(dense)):
        convert(model.eval(), example_input=x, output=tmp_path / "h.ebnn")
        assert OpType.HETCONV2D in _ops(tmp_path / "h.ebnn")
        _check_close(model, x, tmp_path / "h.ebnn")


def test_hetconv_in_an_exported_program(tmp_path):
    """An exported HetConv2d is a traced gather + grouped convs: rebuilt as one fused HetConv."""
    from edgebnn.zoo import create
    torch.manual_seed(6)
    model = _randomize_bn(create("hetconv_resnet", part=4))
    x = torch.randn(1, 3, 32, 32)
    convert(torch.export.export(model, (x,)), output=tmp_path / "h.ebnn")
    n_het = sum(1 for m in model.modules() if type(m).__name__ == "HetConv2d")
    assert _ops(tmp_path / "h.ebnn").count(OpType.HETCONV2D) == n_het > 0
    _check_close(model, x, tmp_path / "h.ebnn")


def test_one_padding_and_residual_concat(tmp_path):
    class OnePad(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 8, 3, 3))

        def forward(self, x):
            s = torch.where(x >= 0.1, 1.0, -1.0)
            y = F.conv2d(F.pad(s, (1, 1, 1, 1), value=1.0), torch.sign(self.w) * 0.5)
            return torch.cat([y + x, x], dim=1)

    torch.manual_seed(4)
    model = OnePad().eval()
    x = torch.randn(1, 8, 6, 6)
    convert(model, example_input=x, output=tmp_path / "p.ebnn")
    g = load(tmp_path / "p.ebnn")
    bconv = [op for op in g.ops if op.type is OpType.BCONV2D]
    assert len(bconv) == 1
    _check_close(model, x, tmp_path / "p.ebnn")


def test_integer_thresholds_match_float_epilogue():
    rng = np.random.default_rng(0)
    k = 9 * 13
    mult = rng.normal(size=16).astype(np.float32)
    mult[3] = 0.0
    bias = rng.normal(size=16).astype(np.float32) * 5
    t = rng.normal(size=16).astype(np.float32)
    th, dirs = integer_thresholds(k, mult, bias, (-np.inf, np.inf), t)
    acc = np.arange(-k, k + 1)
    y = (mult[:, None] * acc[None].astype(np.float32)).astype(np.float32) + bias[:, None]
    want = y >= t[:, None]
    got = np.where(dirs[:, None] > 0, acc[None] >= th[:, None], acc[None] <= th[:, None])
    assert np.array_equal(got, want)


# ---- inputs, CLI, errors --------------------------------------------------------------------

def test_cli_convert_pt2_with_report(tmp_path, edgebnn_cli):
    from edgebnn.zoo.pretrained import load_pretrained
    ep = torch.export.export(load_pretrained("mnist_bnn"), (torch.zeros(1, 1, 28, 28),))
    torch.export.save(ep, tmp_path / "m.pt2")
    r = edgebnn_cli("convert", tmp_path / "m.pt2", "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.ebnn").exists()
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["totals"]["layers_by_kind"]["binary"] == 3
    assert rep["totals"]["binary_share"] > 0.9
    assert all(layer["why_float"] for layer in rep["layers"] if layer["op"] in ("CONV2D", "FULLY_CONNECTED"))


def test_cli_convert_whole_module_and_torchscript(tmp_path, edgebnn_cli):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 3)).eval()
    torch.save(model, tmp_path / "whole.pt")
    r = edgebnn_cli("convert", tmp_path / "whole.pt")
    assert r.returncode == 1 and "--input-shape" in r.stderr and not (tmp_path / "whole.ebnn").exists()
    r = edgebnn_cli("convert", tmp_path / "whole.pt", "--input-shape", "1,1,28,28", "-q")
    assert r.returncode == 0, r.stderr
    x = torch.rand(1, 1, 28, 28)
    _check_close(model, x, tmp_path / "whole.ebnn")
    r = edgebnn_cli("convert", tmp_path / "whole.pt", "--input-shape", "1,1,28,28", "--no-pickle",
                    "-o", tmp_path / "np.ebnn")
    assert r.returncode == 1 and "pickle" in r.stderr and not (tmp_path / "np.ebnn").exists()


def test_torchscript_and_python_api(tmp_path):
    import edgebnn
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 3))
    model = _randomize_bn(model)
    torch.jit.save(torch.jit.script(model), tmp_path / "ts.pt")
    report = edgebnn.convert(tmp_path / "ts.pt", input_shape=(1, 1, 28, 28), output=tmp_path / "ts.ebnn")
    assert report.verify["same_argmax"]
    _check_close(model, torch.rand(1, 1, 28, 28), tmp_path / "ts.ebnn")


class DataDependent(nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x


def test_export_failure_is_one_clear_error(tmp_path):
    with pytest.raises(UserError) as e:
        convert(DataDependent(), example_input=torch.randn(1, 3, 4, 4), output=tmp_path / "d.ebnn")
    assert str(e.value).startswith("torch.export failed on this model:") and "\n" not in str(e.value)
    assert not (tmp_path / "d.ebnn").exists()


def test_errors_are_one_line_and_write_nothing(tmp_path, edgebnn_cli):
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    r = edgebnn_cli("convert", tmp_path / "junk.pt")
    assert r.returncode == 1 and "not a PyTorch model file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "sd.pt")
    r = edgebnn_cli("convert", tmp_path / "sd.pt")
    assert r.returncode == 1 and "state_dict" in r.stderr
    assert not list(tmp_path.glob("*.ebnn"))


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)

    def forward(self, x):
        return torch.sin(self.conv(x))


def test_unsupported_op_names_op_module_and_line(tmp_path):
    with pytest.raises(UserError) as e:
        convert(Unsupported().eval(), example_input=torch.zeros(1, 3, 8, 8), output=tmp_path / "u.ebnn")
    msg = str(e.value)
    assert "aten.sin" in msg and "test_convert.py:" in msg
    assert not (tmp_path / "u.ebnn").exists()
