"""Every zoo model and its float twin run forward; every zoo model exports with torch.export."""
import pytest
import torch

from edgebnn.nn import BinaryConv2d, BinaryLinear, HetConv2d
from edgebnn.zoo import METHODS, create, create_float_twin, get_entry, list_models

BINARY_MODELS = {"binarynet_mlp", "binarynet_cnn", "xnor_resnet18", "birealnet18", "quicknet"}
HETCONV_MODELS = {"hetconv_vgg16", "hetconv_resnet"}


def small_input(name: str, batch: int = 2) -> torch.Tensor:
    """The native shape, except ImageNet-shape nets run at 64×64 (they pool adaptively) to keep tests fast."""
    c, h, w = get_entry(name).input_shape
    return torch.randn(batch, c, min(h, 64), min(w, 64))


def has(model, kinds) -> bool:
    return any(isinstance(m, kinds) for m in model.modules())


@pytest.mark.parametrize("name", list_models())
def test_model_runs_and_exports(name):
    torch.manual_seed(0)
    model = create(name).eval()
    x = small_input(name)
    y = model(x)
    classes = 10 if get_entry(name).input_shape[1] <= 32 else 1000
    assert y.shape == (2, classes) and torch.isfinite(y).all()
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), y)
    assert has(model, (BinaryConv2d, BinaryLinear)) == (name in BINARY_MODELS)
    assert has(model, HetConv2d) == (name in HETCONV_MODELS)


@pytest.mark.parametrize("name", list_models())
def test_float_twin_is_the_same_network_in_full_precision(name):
    torch.manual_seed(0)
    twin = create_float_twin(name).eval()
    y = twin(small_input(name))
    assert y.shape[0] == 2 and torch.isfinite(y).all()
    assert not has(twin, (BinaryConv2d, BinaryLinear, HetConv2d))


@pytest.mark.parametrize("name", ["birealnet18", "mobilenet_v2"])  # one binary, one float: 224 is slow-ish
def test_imagenet_shape_models_take_224(name):
    model = create(name).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_backbone_takes_every_method_and_exports(method):
    torch.manual_seed(0)
    model = create("binarynet_cnn", method=method)
    x = torch.rand(4, 1, 28, 28)
    model.train()(x).logsumexp(1).mean().backward()  # one training step's backward works
    program = torch.export.export(model.eval(), (x,))
    torch.testing.assert_close(program.module()(x), model(x))


def test_builders_take_classes_channels_and_width():
    v1 = create("mobilenet_v1", width=0.25, num_classes=5, in_channels=1).eval()
    assert v1(torch.randn(1, 1, 32, 32)).shape == (1, 5)
    v2 = create("mobilenet_v2", width=0.5, num_classes=7).eval()
    assert v2(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    small = sum(p.numel() for p in create("mobilenet_v1", width=0.25).parameters())
    full = sum(p.numel() for p in create("mobilenet_v1").parameters())
    assert small < full / 4


def test_hetconv_part_reduces_parameters():
    p1 = sum(p.numel() for p in create("hetconv_vgg16", part=1).parameters())
    p4 = sum(p.numel() for p in create("hetconv_vgg16", part=4).parameters())
    assert p4 < p1 / 2.5  # 3×3 on C/4 channels + 1×1 on 3C/4: ~(9/4 + 3/4)/9 of the conv weights


def test_quicknet_uses_one_padding():
    model = create("quicknet")
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert convs and all(m.pad_value == 1 for m in convs)


def test_unknown_names_are_explained():
    with pytest.raises(ValueError, match="available"):
        create("resnet9000")
    with pytest.raises(ValueError, match="unknown method"):
        create("binarynet_cnn", method="ternary")
    with pytest.raises(ValueError, match="6n\\+2"):
        create("hetconv_resnet", depth=21)
