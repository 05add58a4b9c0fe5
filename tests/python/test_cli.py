"""The CLI as a user meets it: help, version, the demo, run and inspect, and their errors."""
import json

import numpy as np
import pytest

import edgebnn


def _one_line_error(res):
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_help_and_version(edgebnn_cli):
    res = edgebnn_cli("--help")
    assert res.returncode == 0 and "demo" in res.stdout and "inspect" in res.stdout and "run" in res.stdout
    res = edgebnn_cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"edgebnn {edgebnn.__version__}"
    res = edgebnn_cli("run", "--help")
    assert res.returncode == 0 and "--threads" in res.stdout and "--top" in res.stdout


@pytest.fixture
def demo_model(tmp_path):
    """The random-weight demo BNN (known layer names and shapes), packed."""
    from edgebnn.demo_model import build_demo_bnn
    from edgebnn.format import save
    (tmp_path / "demo").mkdir()
    return save(build_demo_bnn(), tmp_path / "demo" / "demo_bnn.ebnn")


def test_demo_converts_runs_and_times_the_pretrained_model(edgebnn_cli, tmp_path):
    pytest.importorskip("torch")
    res = edgebnn_cli("demo", "--out", tmp_path / "demo", "--runs", "3")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "demo" / "mnist_bnn.ebnn").exists()
    assert "BCONV2D" in res.stdout and "median" in res.stdout
    assert "20/20 correct" in res.stdout or "19/20 correct" in res.stdout, res.stdout


def test_inspect_reports_packed_sizes_and_ops(edgebnn_cli, demo_model):
    res = edgebnn_cli("inspect", demo_model, "--json")
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    kinds = {l["kind"] for l in s["layers"]}
    assert {"binary", "fp32"} <= kinds
    t = s["totals"]
    assert t["weight_fp32_bytes"] > 20 * t["weight_bytes"] > 0
    assert t["binary_ops"] > 0 and t["flops"] > 0 and s["arena_bytes"] > 0
    # binary conv 3x3 32->64 on 28x28: 2 * 28*28*64 * 3*3*32 binary ops
    bconv = next(l for l in s["layers"] if l["name"] == "block1.bconv")
    assert bconv["binary_ops"] == 2 * 28 * 28 * 64 * 9 * 32


def test_run_npy_npz_and_image(edgebnn_cli, demo_model, tmp_path):
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    res = edgebnn_cli("run", demo_model, "--input", tmp_path / "x.npy", "--top", "3", "-o", tmp_path / "y.npy")
    assert res.returncode == 0, res.stderr
    y = np.load(tmp_path / "y.npy")
    want = edgebnn.Runtime(demo_model).run(x)
    np.testing.assert_array_equal(y[0], want)
    top = [int(s.split(":")[0]) for s in res.stdout.splitlines()[1].split(",")]
    assert top == list(np.argsort(-want[0], kind="stable")[:3])

    xs = np.random.default_rng(1).random((6, 1, 28, 28), dtype=np.float32)
    preds = [int(np.argmax(edgebnn.Runtime(demo_model).run(v[None]))) for v in xs]
    labels = np.array(preds[:3] + [(p + 1) % 10 for p in preds[3:]])
    np.savez(tmp_path / "set.npz", x=xs, y=labels)
    res = edgebnn_cli("run", demo_model, "--input", tmp_path / "set.npz")
    assert res.returncode == 0, res.stderr
    assert "accuracy: 50.00 % (3/6)" in res.stdout

    from PIL import Image
    Image.fromarray((x[0, 0] * 255).astype(np.uint8)).save(tmp_path / "digit.png")
    res = edgebnn_cli("run", demo_model, "--input", tmp_path / "digit.png")
    assert res.returncode == 0, res.stderr


def test_errors_are_one_line(edgebnn_cli, demo_model, tmp_path, corpus):
    assert "does not exist" in _one_line_error(edgebnn_cli("run", tmp_path / "missing.ebnn"))
    msg = _one_line_error(edgebnn_cli("inspect", corpus / "bad_truncated_half.ebnn"))
    assert "truncated" in msg
    msg = _one_line_error(edgebnn_cli("run", corpus / "bad_op_unknown_code.ebnn"))
    assert "unknown op code 999" in msg
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 28, 28), np.float32))
    msg = _one_line_error(edgebnn_cli("run", demo_model, "--input", tmp_path / "wrong.npy"))
    assert "(1, 3, 28, 28)" in msg and "(1, 1, 28, 28)" in msg
    np.save(tmp_path / "nan.npy", np.full((1, 1, 28, 28), np.nan, np.float32))
    assert "NaN" in _one_line_error(edgebnn_cli("run", demo_model, "--input", tmp_path / "nan.npy"))
    (tmp_path / "notes.txt").write_text("hello")
    assert "inputs are" in _one_line_error(edgebnn_cli("run", demo_model, "--input", tmp_path / "notes.txt"))
    (tmp_path / "junk.ebnn").write_bytes(b"not a model at all, just text")
    assert "bad magic" in _one_line_error(edgebnn_cli("inspect", tmp_path / "junk.ebnn"))


def test_runtime_verbs_do_not_import_torch(tmp_path):
    """The board installs the runtime, not the trainer: run and inspect never load torch."""
    import subprocess
    import sys
    from edgebnn.demo_model import build_demo_bnn
    from edgebnn.format import save
    path = save(build_demo_bnn(), tmp_path / "m.ebnn")
    code = ("import sys; from edgebnn.cli import main\n"
            "for argv in (['inspect', sys.argv[1]], ['run', sys.argv[1]], ['convert', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('no torch')")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 0 and "no torch" in res.stdout, res.stderr
