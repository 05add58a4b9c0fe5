"""Make small_bnn.tflite with Larq Compute Engine's own converter, and small_bnn_io.npz: inputs
with the outputs of LCE's interpreter on them (so tests compare even where it cannot run).

Needs TensorFlow, so it runs in its own venv (the tests do not):

    python -m venv /work/venvs/lcezoo-tf
    /work/venvs/lcezoo-tf/bin/pip install "tensorflow-cpu==2.16.*" "tf-keras==2.16.*" "larq==0.14.*" \\
        "larq-compute-engine==0.16.0" "larq-zoo==2.4.*" "numpy<2"
    /work/venvs/lcezoo-tf/bin/python tests/data/lce/make_lce_models.py

The network covers what LCE's converter fuses, not what a hand-made export would emit: a float
stem, binary convs with BatchNorm folded into post-activation multipliers/biases (random statistics,
some negative scales), fused ReLU, bitpacked outputs with thresholds (a binary conv feeding
another), SAME padding with pad value 1 and 0, a max pool between binary layers (LceBMaxPool2d),
a residual ADD re-binarized (LceQuantize after ADD), channel counts off the 32-bit word, a
QuantDense (LceDequantize into a float FULLY_CONNECTED with ±1 rows scaled by the folded BatchNorm)
and a float classifier. Two outputs: the last binary block's float features and the logits.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")   # larq 0.14 is written against Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 7


def build_small_bnn():
    import larq as lq
    import tensorflow as tf
    tf.keras.utils.set_random_seed(SEED)
    L = tf.keras.layers
    q = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
             use_bias=False)
    x = inp = L.Input((32, 32, 3), name="image")
    x = L.Conv2D(24, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)                            # 16x16x24 (no ReLU: sign would be all +1)
    x = lq.layers.QuantConv2D(48, 3, padding="same", pad_values=1.0, name="b1", **q)(x)
    x = L.BatchNormalization(name="b1_bn")(x)                             # feeds b2: bitpacked output
    x = L.MaxPool2D(2, name="pool1")(x)                                    # 8x8x48
    x = lq.layers.QuantConv2D(40, 3, padding="same", pad_values=1.0, activation="relu", name="b2", **q)(x)
    r = L.BatchNormalization(name="b2_bn")(x)                              # float: residual source
    x = lq.layers.QuantConv2D(40, 3, padding="same", pad_values=0.0, name="b3", **q)(r)
    x = L.BatchNormalization(name="b3_bn")(x)
    x = L.Add(name="res")([x, r])                                          # re-binarized by b4
    x = lq.layers.QuantConv2D(65, 3, strides=2, padding="valid", name="b4", **q)(x)
    feat = L.BatchNormalization(name="features")(x)                        # 3x3x65, float
    y = L.GlobalAveragePooling2D(name="gap")(feat)
    y = lq.layers.QuantDense(32, name="bdense", **q)(y)                   # LceQuantize/LceDequantize + FC
    y = L.BatchNormalization(name="bdense_bn")(y)                          # folded into the FC rows
    logits = L.Dense(10, name="logits")(y)
    model = tf.keras.Model(inp, [feat, logits], name="small_bnn")
    rng = np.random.default_rng(SEED)
    for layer in model.layers:   # untrained BN is the identity: random statistics exercise the folding
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            gamma = rng.uniform(0.3, 1.5, n) * np.where(rng.random(n) < 0.2, -1, 1)
            layer.set_weights([gamma, rng.normal(0, 0.5, n), rng.normal(0, 2, n), rng.uniform(0.5, 4, n)])
    return model


def lce_interpreter():
    """LCE's interpreter extension (here TensorFlow is installed, so the package imports normally)."""
    from larq_compute_engine.tflite.python import interpreter_wrapper_lite as w
    return w


def run_lce(data: bytes, x: np.ndarray, threads: int = 1) -> list[np.ndarray]:
    w = lce_interpreter()
    it = w.LiteInterpreter(data, threads, False, False, False)
    return [np.asarray(o) for o in it.predict([np.ascontiguousarray(x, np.float32)])]


def with_output(data: bytes, tensor: int) -> bytes:
    """The flatbuffer with its first subgraph's output slots all set to `tensor`, patched in place
    (Model.subgraphs is field 2, SubGraph.outputs field 2): LCE's interpreter cannot inspect
    intermediate tensors, but it returns outputs."""
    import struct

    def field(table: int, fid: int) -> int:     # absolute position of an offset field's target
        vt = table - struct.unpack_from("<i", data, table)[0]
        off = struct.unpack_from("<H", data, vt + 4 + 2 * fid)[0]
        return table + off + struct.unpack_from("<I", data, table + off)[0]

    subgraphs = field(struct.unpack_from("<I", data, 0)[0], 2)
    sg = subgraphs + 4 + struct.unpack_from("<I", data, subgraphs + 4)[0]
    outs = field(sg, 2)
    out = bytearray(data)
    for k in range(struct.unpack_from("<I", data, outs)[0]):
        struct.pack_into("<i", out, outs + 4 + 4 * k, tensor)
    return bytes(out)


def packed_tensors(data: bytes) -> list[int]:
    """Indices of the int32 (bitpacked) outputs of LceBconv2d / LceBMaxPool2d (read with the TFLite
    schema TensorFlow ships)."""
    from tensorflow.lite.python import schema_py_generated as fb
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    codes = [c.customCode.decode() if c.customCode else "" for c in m.operatorCodes]
    sg = m.subgraphs[0]
    return [op.outputs[0] for op in sg.operators if codes[op.opcodeIndex] in ("LceBconv2d", "LceBMaxPool2d")
            and sg.tensors[op.outputs[0]].type == fb.TensorType.INT32]


def main():
    from larq_compute_engine import convert_keras_model
    model = build_small_bnn()
    data = convert_keras_model(model)
    (HERE / "small_bnn.tflite").write_bytes(data)
    rng = np.random.default_rng(SEED)
    xs = rng.standard_normal((4, 1, 32, 32, 3)).astype(np.float32)
    keras = [[np.asarray(o) for o in model(x, training=False)] for x in xs]
    # the flatbuffer's output order need not be Keras's: match them by shape
    outs = [sorted(run_lce(data, x), key=lambda o: -o.ndim) for x in xs]
    assert [o.shape for o in outs[0]] == [k.shape for k in keras[0]], (outs[0], keras[0])
    # the binary layers' own outputs (LCE's int32 words), compared bit for bit
    packed = {f"packed_{t}": np.stack([run_lce(with_output(data, t), x)[0] for x in xs]).view(np.int32)
              for t in packed_tensors(data)}
    np.savez_compressed(HERE / "small_bnn_io.npz", x=xs, features=np.stack([o[0] for o in outs]),
                        logits=np.stack([o[1] for o in outs]), **packed)
    gap = max(float(np.abs(k[1] - o[1]).max()) for k, o in zip(keras, outs))
    print(f"small_bnn.tflite: {len(data)} bytes; LCE vs Keras logits max |diff| {gap:.3g} "
          f"(range {np.abs(np.stack([k[1] for k in keras])).max():.3g})")


if __name__ == "__main__":
    main()
