"""Load-time fusion (runtime/src/fuse.c): a binary conv with a float output, the residual ADD
after it and the SIGN_PACK of the sum run as one op in the conv's epilogue, the sum often in
place of the shortcut. Every fused graph must give the bytes of the unfused reference path (the
ref kernels run each op on its own), for any thread count."""
import os

import numpy as np
import pytest

from edgebnn import Runtime
from edgebnn.format import save
from edgebnn.ir import GraphBuilder

CHANNELS = (1, 3, 63, 64, 65, 130)


def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, 1, -1)


def _vec(rng, n, scale=1.0):
    return (rng.standard_normal(n) * scale).astype(np.float32)


def _bireal_like(rng, c, stride, dilation, pad_value, acts, thresholds):
    """Bi-Real blocks: sign -> binary conv (BN folded: multiplier, bias) -> + shortcut -> sign
    of the sum, chained, one block with QuickNet's ReLU + BatchNorm and one with a hardtanh
    before the sum; then a downsampling block whose shortcut (avg pool, float 1x1 conv) is
    computed after the binary conv; one intermediate sum is also a graph output (no in-place)."""
    b = GraphBuilder()
    h = b.input("x", (1, 9, 11, c))
    sums = []
    for i in range(3):
        s = b.sign_pack(h, thresholds=_vec(rng, c, 0.3) if thresholds else None)
        y = b.bconv2d(s, b.const_bits(_pm1(rng, (c, 3, 3, c))), padding="same", dilations=dilation,
                      pad_value=pad_value, multiplier=_vec(rng, c, 0.1), bias=_vec(rng, c),
                      activation=acts[i % len(acts)])
        if i == 1:  # QuickNet: ReLU and BatchNorm between the conv and the sum
            y = b.affine(b.relu(y), _vec(rng, c), _vec(rng, c))
        if i == 2:
            y = b.hardtanh(y, -0.5, 1.5)
        h = b.add(y, h, activation=acts[(i + 1) % len(acts)]) if i % 2 else b.add(h, y)
        sums.append(h)
    s = b.sign_pack(h)
    oc = 2 * c
    y = b.bconv2d(s, b.const_bits(_pm1(rng, (oc, 3, 3, c))), strides=stride, padding="same",
                  multiplier=_vec(rng, oc, 0.1), bias=_vec(rng, oc))
    sc = b.avg_pool2d(h, kernel=stride, strides=stride, padding="same") if stride > 1 else h
    sc = b.conv2d(sc, rng.standard_normal((oc, 1, 1, c)).astype(np.float32) * 0.3)
    h = b.add(y, sc)
    s = b.sign_pack(h)
    y = b.bconv2d(s, b.const_bits(_pm1(rng, (oc, 3, 3, oc))), padding="same", multiplier=_vec(rng, oc, 0.1))
    h = b.add(h, y)
    b.output(h, "out")
    b.output(sums[1], "mid")
    b.output(b.unpack(b.sign_pack(h)), "signs")
    return b.build()


def _run(path, x, threads, kernels=None):
    old = os.environ.get("EDGEBNN_KERNELS")
    if kernels:
        os.environ["EDGEBNN_KERNELS"] = kernels
    try:
        rt = Runtime(path, threads=threads)
        return rt.run(x), [o.backend for o in rt.ops]
    finally:
        if kernels:
            if old is None:
                del os.environ["EDGEBNN_KERNELS"]
            else:
                os.environ["EDGEBNN_KERNELS"] = old


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("stride,dilation,pad_value", [(1, 1, 0), (2, 1, 1), (2, 2, 0), (1, 2, 1)])
def test_fused_residual_sign_equals_reference(tmp_path, monkeypatch, c, stride, dilation, pad_value):
    # float layers on the reference kernels in both runs: only the fusion differs
    monkeypatch.setenv("EDGEBNN_XNNPACK", "0")
    rng = np.random.default_rng(1000 * c + 10 * stride + dilation + pad_value)
    g = _bireal_like(rng, c, stride, dilation, pad_value, [None, "relu", "relu6"], thresholds=c % 2 == 1)
    path = save(g, tmp_path / "m.ebnn")
    x = rng.standard_normal((1, 9, 11, c)).astype(np.float32)
    want, ref_backends = _run(path, x, 1, kernels="ref")
    assert "fused" not in ref_backends
    for threads in (1, 2):
        got, backends = _run(path, x, threads)
        if backends[2] == "ref":  # a build without fast binary kernels has nothing to fuse
            pytest.skip("no fast binary kernels in this build")
        # 5 convs into ADDs, 3 element-wise stages, 4+ sign packs
        assert backends.count("fused") >= 12, backends
        for w, o in zip(want, got):
            assert w.tobytes() == o.tobytes()


def test_fusion_shrinks_the_arena(tmp_path, monkeypatch):
    """With the fast kernels the binary convs need no int32 scratch and the sums overwrite
    their shortcuts, so the arena is smaller than the reference path's."""
    monkeypatch.setenv("EDGEBNN_XNNPACK", "0")
    rng = np.random.default_rng(7)
    path = save(_bireal_like(rng, 64, 2, 1, 0, [None], False), tmp_path / "m.ebnn")
    fast = Runtime(path)
    if "fused" not in [o.backend for o in fast.ops]:
        pytest.skip("no fast binary kernels in this build")
    monkeypatch.setenv("EDGEBNN_KERNELS", "ref")
    assert fast.arena_bytes < Runtime(path).arena_bytes


def _stem(rng, c_in, c, k, stride, pool, pool_stride, pool_pad, thresholds, pool_out):
    """A float stem (conv + BN folded + ReLU, then max pool) feeding a Bi-Real block: the pool's
    map is the block's shortcut and, signed, its binary conv's input."""
    b = GraphBuilder()
    h = b.input("x", (1, 23, 19, c_in))
    y = b.conv2d(h, rng.standard_normal((c, k, k, c_in)).astype(np.float32), bias=_vec(rng, c), strides=stride,
                 padding="same", activation="relu")
    p = b.max_pool2d(y, kernel=pool, strides=pool_stride, padding=pool_pad)
    s = b.sign_pack(p, thresholds=_vec(rng, c, 0.3) if thresholds else None)
    y = b.bconv2d(s, b.const_bits(_pm1(rng, (c, 3, 3, c))), padding="same", multiplier=_vec(rng, c, 0.1),
                  bias=_vec(rng, c))
    b.output(b.add(y, p), "out")
    if pool_out:
        b.output(p, "pool")
    return b.build()


@pytest.mark.parametrize("c", CHANNELS + (16, 48))
@pytest.mark.parametrize("k,stride,pool,pool_stride,pool_pad", [(7, 2, 3, 2, "same"), (3, 1, 2, 2, "valid"),
                                                                 (5, 2, 3, 1, "same"), (1, 1, 3, 3, "valid")])
@pytest.mark.parametrize("conv", ["stem", "xnnpack"])
def test_banded_stem_equals_whole_map(tmp_path, monkeypatch, c, k, stride, pool, pool_stride, pool_pad, conv):
    """The conv run in bands inside the max pool, which also signs its output (band.c), gives the
    bytes of the whole-map path (the same XNNPACK conv on the whole map, then the pool and the
    sign pack as separate ops), for bands of one pool row up to a few and 1-4 threads; with the
    bands' conv rows from XNNPACK, or from the stem kernel (float/stem.h: up to 64 output
    channels, a multiple of 16, on AVX-512; elsewhere XNNPACK's too)."""
    if conv == "xnnpack":
        monkeypatch.setenv("EDGEBNN_BAND_XNNPACK", "1")
    rng = np.random.default_rng(100 * c + 10 * k + pool)
    g = _stem(rng, 3, c, k, stride, pool, pool_stride, pool_pad, thresholds=c % 2 == 1, pool_out=c == 64)
    path = save(g, tmp_path / "m.ebnn")
    x = rng.standard_normal((1, 23, 19, 3)).astype(np.float32)
    want, ref_backends = _run(path, x, 1, kernels="ref")
    if ref_backends[0] != "xnnpack":
        pytest.skip("float convs are not on XNNPACK in this build")
    assert "xnnpack-band" not in ref_backends
    for band_bytes in ("1", str(3 * 12 * 4 * c), ""):  # one pool row per band, a few, the default
        if band_bytes:
            monkeypatch.setenv("EDGEBNN_BAND_BYTES", band_bytes)
        else:
            monkeypatch.delenv("EDGEBNN_BAND_BYTES", raising=False)
        for threads in (1, 2, 3, 4):
            got, backends = _run(path, x, threads)
            if backends[2] == "ref":
                pytest.skip("no fast binary kernels in this build")
            if band_bytes == "":  # 23x19 is one band under the default budget: left whole
                assert "xnnpack-band" not in backends, backends
            else:
                assert backends[:3] == ["fused", "xnnpack-band", "fused"], backends
            for w, o in zip(want, got):
                assert w.tobytes() == o.tobytes(), (band_bytes, threads)
