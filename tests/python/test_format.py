"""The packed format: round trips, alignment, atomic writes, and the malformed corpus."""
import numpy as np
import pytest

from edgebnn import EdgebnnError, Runtime
from edgebnn.format import FormatError, from_bytes, load, save, spec, to_bytes
from edgebnn.ir import DType, GraphBuilder, pack_bits, unpack_bits


def _graph():
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", (1, 5, 5, 70))
    h = b.sign_pack(x)
    w = np.where(rng.random((3, 3, 3, 70)) < 0.5, 1, -1)
    y = b.bconv2d(h, b.const_bits(w, name="w"), padding="same", multiplier=np.ones(3, np.float32) * 0.5,
                  bias=np.arange(3, dtype=np.float32))
    q = b.const(rng.integers(-128, 127, (3, 4)).astype(np.int8), name="q", scale=[0.1, 0.2, 0.3],
                zero_point=[0, 1, -1], axis=0)
    b.output(y, name="y")
    b.output(b.dequantize(q), name="dq")
    return b.build({"producer": "test", "labels": "[\"a\"]"}), w


def test_round_trip_keeps_everything():
    g, w = _graph()
    data = to_bytes(g)
    g2 = from_bytes(data)
    assert [t.name for t in g2.tensors] == [t.name for t in g.tensors]
    assert [op.type for op in g2.ops] == [op.type for op in g.ops]
    assert [op.attrs for op in g2.ops] == [op.attrs for op in g.ops]
    import edgebnn
    assert g2.metadata == {**g.metadata, "edgebnn.version": edgebnn.__version__}
    wt = next(t for t in g2.tensors if t.name == "w")
    assert wt.dtype is DType.BIT1 and wt.shape == (3, 3, 3, 70)
    np.testing.assert_array_equal(unpack_bits(wt.data, 70), w)
    q = next(t for t in g2.tensors if t.name == "q")
    np.testing.assert_array_equal(q.quant.scale, np.float32([0.1, 0.2, 0.3]))
    assert to_bytes(g2) == data


def test_constants_are_64_byte_aligned_and_sized_as_packed():
    g, _ = _graph()
    data = to_bytes(g)
    _, _, _, size, n_sec, _, d = spec.HEADER.unpack_from(data, 0)
    assert size == len(data) and size % 64 == 0
    secs = {spec.SECTION.unpack_from(data, d + i * 32)[0]: spec.SECTION.unpack_from(data, d + i * 32)[2:]
            for i in range(n_sec)}
    data_off = secs[b"DATA"][0]
    tens_off = secs[b"TENS"][0]
    n = int.from_bytes(data[tens_off:tens_off + 4], "little")
    consts = 0
    for i in range(n):
        rec = spec.TENSOR.unpack_from(data, tens_off + 8 + i * spec.TENSOR.size)
        off, size = rec[13], rec[14]
        if size:
            consts += 1
            assert (data_off + off) % 64 == 0, f"tensor {i} at file offset {data_off + off}"
    assert data_off % 64 == 0 and consts >= 5
    # 3x3x3x70 binary weights: 27 rows of 2 words
    assert next(t for t in g.tensors if t.name == "w").nbytes == 27 * 2 * 8


def test_pack_bits_layout():
    v = np.ones((2, 65), np.int8)
    v[0, 0] = -1
    v[1, 64] = -1
    p = pack_bits(v)
    assert p.dtype == np.dtype("<u8") and p.shape == (2, 2)
    assert p[0, 0] == 1 and p[0, 1] == 0 and p[1, 0] == 0 and p[1, 1] == 1


def test_save_is_atomic(tmp_path, monkeypatch):
    g, _ = _graph()
    target = tmp_path / "m.ebnn"
    import edgebnn.format.writer as writer

    def boom(_g):
        raise ValueError("simulated failure")
    monkeypatch.setattr(writer, "to_bytes", boom)
    with pytest.raises(ValueError):
        writer.save(g, target)
    assert list(tmp_path.iterdir()) == []


def test_saved_file_follows_the_umask(tmp_path):
    import os
    g, _ = _graph()
    old = os.umask(0o022)
    try:
        mode = save(g, tmp_path / "m.ebnn").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o644, oct(mode)  # not mkstemp's 0600: other users and services can read the model


def test_runtime_reads_what_python_wrote(tmp_path):
    g, w = _graph()
    save(g, tmp_path / "m.ebnn")
    rt = Runtime(tmp_path / "m.ebnn")
    assert rt.metadata("producer") == "test" and rt.metadata("missing") is None
    x = np.random.default_rng(1).standard_normal((1, 5, 5, 70)).astype(np.float32)
    y, dq = rt.run(x)
    assert y.shape == (1, 5, 5, 3)
    q = next(t for t in g.tensors if t.name == "q")
    expect = (q.data.astype(np.float32) - q.quant.zero_point[:, None]) * q.quant.scale[:, None]
    np.testing.assert_allclose(dq, expect, rtol=1e-6)


def _corpus_cases(corpus):
    return sorted(p for p in corpus.glob("bad_*.ebnn"))


def test_malformed_corpus_is_rejected_cleanly(corpus):
    cases = _corpus_cases(corpus)
    assert len(cases) >= 25
    for p in cases:
        with pytest.raises(EdgebnnError) as c_err:
            Runtime(p)
        msg = str(c_err.value)
        assert p.name in msg and "\n" not in msg and len(msg) < 300, msg
        with pytest.raises(FormatError):
            load(p)


def test_good_corpus_model_loads(corpus):
    rt = Runtime(corpus / "good_small.ebnn")
    out = rt.run(np.zeros((1, 6, 6, 3), np.float32))
    assert out.shape == (1, 144) and abs(float(out.sum()) - 1.0) < 1e-5


def test_corpus_is_current(corpus):
    """The committed corpus matches what make_corpus.py writes from today's writer."""
    import importlib.util
    spec_ = importlib.util.spec_from_file_location("make_corpus", corpus.parent / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    good = mod.small_model()
    assert (corpus / "good_small.ebnn").read_bytes() == good
    for name, data in mod.cases(good).items():
        assert (corpus / f"bad_{name}.ebnn").read_bytes() == data, name
