"""The Python binding over the C API: layouts, errors, threads, timing hook, arena."""
import threading

import numpy as np
import pytest

from edgebnn import EdgebnnError, Runtime
from edgebnn.format import save
from edgebnn.ir import GraphBuilder


def _conv_model(tmp_path, layout="NHWC"):
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("image", (1, 6, 7, 3), layout=layout)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = b.conv2d(x, w, padding="same")
    b.output(y, name="features", layout=layout)
    path = save(b.build(), tmp_path / f"conv_{layout}.ebnn")
    return path, w


def test_nchw_boundary_matches_nhwc(tmp_path):
    p_nhwc, _ = _conv_model(tmp_path, "NHWC")
    p_nchw, _ = _conv_model(tmp_path, "NCHW")
    x = np.random.default_rng(0).standard_normal((1, 6, 7, 3)).astype(np.float32)
    a = Runtime(p_nhwc).run(x)
    rt = Runtime(p_nchw)
    assert rt.inputs[0].shape == (1, 3, 6, 7) and rt.inputs[0].layout == "NCHW"
    assert rt.outputs[0].shape == (1, 4, 6, 7)
    b = rt.run(x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(b, a.transpose(0, 3, 1, 2))


def test_wrong_input_shape_and_dtype_are_clear_errors(tmp_path):
    p, _ = _conv_model(tmp_path)
    rt = Runtime(p)
    with pytest.raises(EdgebnnError, match=r"input 'image' must have shape \(1, 6, 7, 3\)"):
        rt.run(np.zeros((1, 7, 6, 3), np.float32))
    with pytest.raises(EdgebnnError, match="takes 1 input"):
        rt.run()
    with pytest.raises(EdgebnnError, match="must be f32"):
        rt.run(np.zeros((1, 6, 7, 3), np.complex64))


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(EdgebnnError, match="cannot open .*nope.ebnn"):
        Runtime(tmp_path / "nope.ebnn")


def test_sessions_in_threads_agree(tmp_path):
    p, _ = _conv_model(tmp_path)
    x = np.random.default_rng(1).standard_normal((1, 6, 7, 3)).astype(np.float32)
    want = Runtime(p).run(x)
    results = []

    def work():
        rt = Runtime(p)
        for _ in range(50):
            out = rt.run(x)
        results.append(out)
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    for r in results:
        np.testing.assert_array_equal(r, want)


def test_op_timer_hook_sees_every_op(tmp_path):
    p, _ = _conv_model(tmp_path)
    seen = []
    rt = Runtime(p, op_timer=lambda i, ns: seen.append((i, ns)))
    rt.run(np.zeros((1, 6, 7, 3), np.float32))
    assert [i for i, _ in seen] == list(range(len(rt.ops)))
    assert all(ns >= 0 for _, ns in seen)


def test_arena_is_shared_by_tensors_with_disjoint_lifetimes(tmp_path):
    b = GraphBuilder()
    x = b.input("x", (1, 64, 64, 16))
    h = x
    for _ in range(6):
        h = b.relu(h)
    b.output(h)
    rt = Runtime(save(b.build(), tmp_path / "chain.ebnn"))
    one = 64 * 64 * 16 * 4
    # a chain of 6 ops never needs more than two live tensors of this size (plus the
    # 64 bytes of read slack the arena keeps past its end for SIMD loads)
    assert rt.arena_bytes == 2 * one + 64
    x = np.random.default_rng(0).standard_normal((1, 64, 64, 16)).astype(np.float32)
    np.testing.assert_array_equal(rt.run(x), np.maximum(x, 0))


def test_model_from_bytes(tmp_path):
    p, _ = _conv_model(tmp_path)
    rt = Runtime(p.read_bytes())
    assert rt.path is None and rt.outputs[0].shape == (1, 6, 7, 4)


def test_threads_option_validated(tmp_path):
    p, _ = _conv_model(tmp_path)
    with pytest.raises(EdgebnnError, match="threads must be >= 1"):
        Runtime(p, threads=0)


def test_backend_per_op(tmp_path, monkeypatch):
    """Each op reports the code that runs it: XNNPACK for float/int8 conv, FC, pooling and
    add when the build has it, the fused kernel for HetConv, ref otherwise."""
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("x", (1, 8, 8, 8))
    h = b.conv2d(x, rng.standard_normal((8, 3, 3, 8)).astype(np.float32), padding="same")
    h = b.hetconv2d(h, rng.standard_normal((8, 3, 3, 2)).astype(np.float32),
                    rng.standard_normal((8, 6)).astype(np.float32), 4, padding="same")
    h = b.softmax(b.global_avg_pool(h))
    b.output(h)
    p = save(b.build(), tmp_path / "m.ebnn")
    monkeypatch.setenv("EDGEBNN_XNNPACK", "0")
    assert [o.backend for o in Runtime(p).ops] == ["ref", "hetconv-fused", "ref", "ref"]
    monkeypatch.setenv("EDGEBNN_KERNELS", "ref")
    assert [o.backend for o in Runtime(p).ops][1] == "ref"
    monkeypatch.delenv("EDGEBNN_KERNELS")
    monkeypatch.delenv("EDGEBNN_XNNPACK")
    got = [o.backend for o in Runtime(p).ops]
    assert got[1:] == ["hetconv-fused", got[0], "ref"] and got[0] in ("xnnpack", "ref")


def test_fused_hetconv_same_result_on_any_thread_count(tmp_path):
    """The fused HetConv splits output rows over the session's threads: each row is
    computed the same way on any thread, so results are identical."""
    rng = np.random.default_rng(5)
    b = GraphBuilder()
    x = b.input("x", (2, 11, 9, 12))
    b.output(b.hetconv2d(x, rng.standard_normal((20, 3, 3, 3)).astype(np.float32),
                         rng.standard_normal((20, 9)).astype(np.float32), 4,
                         bias=rng.standard_normal(20).astype(np.float32), strides=2, padding="same",
                         activation="relu"))
    p = save(b.build(), tmp_path / "het.ebnn")
    xv = rng.standard_normal((2, 11, 9, 12)).astype(np.float32)
    one = Runtime(p, threads=1).run(xv)
    np.testing.assert_array_equal(Runtime(p, threads=3).run(xv), one)
