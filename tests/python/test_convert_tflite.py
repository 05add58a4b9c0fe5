"""TFLite import: the four real MobileNet-family models against TFLite's own reference kernels
(tflite-runtime / ai-edge-litert, BUILTIN_REF), on the shipped photos and on random inputs, and
against tflite-runtime's default (optimized) kernels where tflite-runtime is the peer (tests/run.sh
runs this file in its NumPy-1 venv with tflite-runtime 2.14, whose default kernels give the same
bytes as its reference kernels on all four models).

Tolerances: int8/uint8 models bit-exact on every logit (the tensor SOFTMAX reads; the issue allows
1 quantization step) both on the runtime's reference kernels (EDGEBNN_KERNELS=ref) and on the
q8 int8 kernels (the default where their AVX512-VNNI variant runs; EDGEBNN_Q8=1 elsewhere);
float within 1e-4 relative. With the q8 kernels off and XNNPACK on (EDGEBNN_Q8=0, the default on
CPUs without VNNI: its int8 conv and ADD requantize in float) within 8 steps.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgebnn.errors import UserError
from edgebnn.format.writer import to_bytes
from edgebnn.runtime import Runtime

tfl = pytest.importorskip("edgebnn.converters.tflite")
from edgebnn.converters import convert  # noqa: E402
from edgebnn.converters.tflite.load import input_preprocess  # noqa: E402
from edgebnn.converters.tflite.peer import make_interpreter, peer_run  # noqa: E402

MODELS = ["mobilenet_v1_0.25_128_quant", "mobilenet_v2_1.0_224_quant", "vww_96_int8", "vww_96_float"]


@pytest.fixture
def tflite_dir(shared_data):
    d = shared_data / "models" / "tflite"
    if not d.exists():
        pytest.skip(f"{d} is absent")
    return d


def _peer_or_skip(data):
    it, why = make_interpreter(data)
    if it is None:
        pytest.skip(f"no TFLite peer: {why}")


def _logits(model):
    sm = [op for op in model.ops if op.name == "SOFTMAX"]
    return sm[0].inputs[0]


def _reals(model, codes):
    """The float input our converted model takes for the peer's 8-bit input codes."""
    t = model.tensors[model.inputs[0]]
    if t.type == 0:
        return codes.astype(np.float32)
    return ((codes.astype(np.float64) - int(t.zero_point[0])) * float(t.scale[0])).astype(np.float32)


def _random_codes(model, seed):
    t = model.tensors[model.inputs[0]]
    rng = np.random.default_rng(seed)
    if t.type == 0:
        return rng.random(t.shape, dtype=np.float32)
    dt = np.uint8 if t.type == 3 else np.int8
    return rng.integers(np.iinfo(dt).min, np.iinfo(dt).max + 1, t.shape).astype(dt)


def _image_codes(model, path):
    """The photo as TFLite users feed it: resized RGB pixels, uint8 as is, int8 as pixel - 128,
    float as pixel / 255."""
    from PIL import Image

    t = model.tensors[model.inputs[0]]
    _, h, w, _ = t.shape
    a = np.asarray(Image.open(path).convert("RGB").resize((w, h), Image.BILINEAR), np.uint8)[None]
    if t.type == 3:
        return a
    if t.type == 9:
        return (a.astype(np.int16) - 128).astype(np.int8)
    return a.astype(np.float32) / 255.0


def _compare(model, data, codes, monkeypatch, name):
    """max |diff| on the logits in quantization steps (or relative for float), and top-1s."""
    logit = _logits(model)
    graph, _, _ = tfl.lower(model, name, outputs=[logit])
    outs, extra = peer_run(data, codes, [logit])
    want = extra[logit].reshape(-1)
    it, _ = make_interpreter(data)
    default = None
    if type(it).__module__.startswith("tflite_runtime"):   # the peer: its default kernels too
        default = peer_run(data, codes, [logit], resolver="BUILTIN")[1][logit].reshape(-1)
    x = _reals(model, codes)
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_KERNELS", "ref")
        mp.setenv("EDGEBNN_XNNPACK", "0")
        ref = Runtime(to_bytes(graph)).run(x).reshape(-1)
    rt = Runtime(to_bytes(graph))
    fast = rt.run(x).reshape(-1)
    fast_is_exact = not any(o.backend == "xnnpack" for o in rt.ops if o.type in ("CONV2D", "ADD"))
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_Q8", "1")  # TFLite's arithmetic on any CPU
        exact = Runtime(to_bytes(graph)).run(x).reshape(-1)
    if not fast_is_exact:  # non-VNNI CPUs default to XNNPACK: hold the exact path to the exact bound
        fast = exact
    with monkeypatch.context() as mp:
        mp.setenv("EDGEBNN_Q8", "0")
        xnn = Runtime(to_bytes(graph)).run(x).reshape(-1)
    t = model.tensors[logit]
    unit = float(t.scale[0]) if t.type in (3, 9) else float(np.max(np.abs(want)))
    d_default = 0.0 if default is None else float(np.max(np.abs(ref - default))) / unit
    d_fast_default = 0.0 if default is None else float(np.max(np.abs(fast - default))) / unit
    return (max(float(np.max(np.abs(ref - want))) / unit, d_default),
            max(float(np.max(np.abs(fast - want))) / unit, d_fast_default), float(np.max(np.abs(xnn - want))) / unit,
            int(want.argmax()), int(ref.argmax()), int(fast.argmax()))


@pytest.mark.parametrize("name", MODELS)
def test_tflite_models_match_peer(tflite_dir, shared_data, monkeypatch, name):
    path = tflite_dir / f"{name}.tflite"
    model, data = tfl.load_tflite(path)
    _peer_or_skip(data)
    quant = model.tensors[model.inputs[0]].type != 0
    tol = 1e-3 if quant else 1e-4  # steps are measured in float: 0 steps reads as ~3e-6
    inputs = [("random", _random_codes(model, s)) for s in (0, 1)]
    inputs += [(p.name, _image_codes(model, p)) for p in sorted((shared_data / "images").glob("*.bmp"))]
    for what, codes in inputs:
        d_ref, d_fast, d_xnn, top, top_ref, top_fast = _compare(model, data, codes, monkeypatch, name)
        unit = 'steps' if quant else 'relative'
        assert d_ref <= tol, f"{name} on {what}: logits {d_ref:.3g} {unit} from TFLite"
        assert top_ref == top, f"{name} on {what}: top-1 {top_ref} vs TFLite {top}"
        assert d_fast <= tol, f"{name} on {what}, default path: logits {d_fast:.3g} {unit} from TFLite"
        assert top_fast == top, f"{name} on {what}, default path: top-1 {top_fast} vs TFLite {top}"
        assert d_xnn <= (8.0 if quant else 1e-4), f"{name} on {what} with EDGEBNN_Q8=0: {d_xnn:.3g} from TFLite"


def test_tflite_full_model_and_photos(tflite_dir, shared_data, tmp_path, edgebnn_cli):
    """`edgebnn convert` + `edgebnn run photo.bmp`: MobileNetV2 quant names the photos as the data
    README says, through the stored input.preprocess (uint8 pixels -> the model's reals)."""
    path = tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"
    labels = tflite_dir / "imagenet_labels.txt"
    out = tmp_path / "mnv2.ebnn"
    r = edgebnn_cli("convert", path, "-o", out, "--labels", labels)
    assert r.returncode == 0, r.stderr
    assert out.exists()
    rt = Runtime(out)
    model, data = tfl.load_tflite(path)
    assert json.loads(rt.metadata("input.preprocess")) == input_preprocess(model)
    names = [s.strip() for s in labels.read_text().splitlines() if s.strip()]
    for photo, label in (("cat.bmp", "Egyptian cat"), ("grace_hopper.bmp", "military uniform")):
        r = edgebnn_cli("run", out, "-i", shared_data / "images" / photo, "-k", "1")
        assert r.returncode == 0, r.stderr
        assert label in r.stdout, r.stdout
        # the same through the Python API, and the peer fed the same uint8 pixels
        from edgebnn.inputs import load_image
        x = load_image(shared_data / "images" / photo, rt.inputs[0], json.loads(rt.metadata("input.preprocess")))
        codes = _image_codes(model, shared_data / "images" / photo)
        np.testing.assert_allclose(x, _reals(model, codes), atol=1e-6)
        assert names[int(rt.run(x).argmax())] == label
        got = peer_run(data, codes)
        if got is not None:
            assert names[int(got[0][0].argmax())] == label


@pytest.mark.parametrize("name", ["vww_96_int8", "vww_96_float"])
def test_tflite_convert_report(tflite_dir, name):
    rep = convert(tflite_dir / f"{name}.tflite")
    kinds = rep.to_dict()["totals"]["layers_by_kind"]
    assert kinds["int8" if "int8" in name else "fp32"] == 28   # 14 conv + 13 depthwise + 1 FC
    assert "CONV_2D #0" in rep.format_text()
    if rep.verify:
        assert rep.verify["same_argmax"]


def test_tflite_not_a_model(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"hello, this is not a flatbuffer at all")
    out = tmp_path / "x.ebnn"
    with pytest.raises(UserError, match="not a TFLite model") as e:
        convert(bad, output=out)
    assert "\n" not in str(e.value)
    assert not out.exists()
    trunc = tmp_path / "t.tflite"
    trunc.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 8)
    with pytest.raises(UserError, match="not a TFLite model"):
        convert(trunc, output=out)
    assert not out.exists()


def test_tflite_unsupported_op_named(tflite_dir, tmp_path):
    """An op the runtime cannot run: named in one line, nothing written (patch a real model's
    AVERAGE_POOL_2D opcode to TANH in place)."""
    path = tflite_dir / "vww_96_float.tflite"
    model, data = tfl.load_tflite(path)
    from edgebnn.converters.tflite.schema import Table, _Buf
    buf = _Buf(data)
    root = Table(buf, buf.u32(0))
    codes = root.tables(1)
    pool = next(c for c in codes if max(c.scalar(0, "b"), c.scalar(3, "i")) == 1)
    raw = bytearray(data)
    for fid, fmt, size in ((0, "<b", 1), (3, "<i", 4)):
        off = pool._off(fid)
        if off:
            raw[pool.pos + off:pool.pos + off + size] = (28).to_bytes(size, "little")
    bad = tmp_path / "tanh.tflite"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "tanh.ebnn"
    with pytest.raises(UserError, match="op TANH") as e:
        convert(bad, output=out)
    assert "\n" not in str(e.value) and "first: TANH (operator" in str(e.value)
    assert not out.exists()
