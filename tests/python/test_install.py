"""The runtime-only install a board gets: the sdist, built by pip with only a C compiler and CMake,
installed into a fresh venv that has no torch, onnx or TensorFlow; then the board's verbs (run,
inspect, profile, devices, demo) on the model shipped in the package, and one-line errors from the
verbs that need the extras.

It builds the C runtime once (about a minute and a half on 2 cores) and needs the package registry
for scikit-build-core, numpy, click and psutil, as `pip install edgebnn` on a board does.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args, cwd, timeout=120, env=None):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """(venv bin folder, pip's build log, work folder) after installing the sdist into a fresh venv."""
    work = tmp_path_factory.mktemp("install")
    res = _run([sys.executable, "-m", "build", "--sdist", "--outdir", work / "dist", ROOT], cwd=work, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    sdist, = (work / "dist").glob("edgebnn-*.tar.gz")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(work / "venv")
    bin_dir = work / "venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    res = _run([bin_dir / "pip", "install", "-v", "--disable-pip-version-check", sdist], cwd=work,
               timeout=1200, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return bin_dir, res.stdout + res.stderr, work


def _python(fresh, code):
    bin_dir, _, work = fresh
    return _run([bin_dir / "python", "-c", code], cwd=work)


def _cli(fresh, *args):
    bin_dir, _, work = fresh
    return _run([bin_dir / "edgebnn", *args], cwd=work, timeout=300)


def test_the_venv_has_none_of_the_heavy_frameworks(fresh):
    for module in ("torch", "onnx", "tensorflow", "onnxruntime"):
        res = _python(fresh, f"import {module}")
        assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr, f"{module} is importable in the fresh venv"


def test_the_build_says_whether_it_found_xnnpack(fresh):
    _, log, _ = fresh
    if Path("/usr/include/xnnpack.h").exists():
        assert "edgebnn: float/int8 layers through XNNPACK" in log
    else:
        assert "edgebnn: XNNPACK not found (apt install libxnnpack-dev)" in log


def test_run_inspect_and_profile_the_shipped_model_without_torch(fresh):
    _, _, work = fresh
    code = ("from edgebnn.commands.demo import shipped_packed_model; import sys, edgebnn.cli\n"
            "print(shipped_packed_model())\n"
            "assert not {'torch', 'onnx', 'tensorflow'} & set(sys.modules), sorted(sys.modules)")
    res = _python(fresh, code)
    assert res.returncode == 0, res.stderr
    model = Path(res.stdout.strip())
    assert model.is_file() and model.suffix == ".ebnn"

    with np.load(ROOT / "edgebnn" / "zoo" / "pretrained" / "mnist_digits.npz") as d:
        images, labels = d["images"], d["labels"]
    np.save(work / "digit.npy", (images[:1].astype(np.float32) / 255).reshape(1, 1, 28, 28))
    res = _cli(fresh, "run", model, "--input", work / "digit.npy", "--top", "1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1].split(":")[0].strip() == str(labels[0]), res.stdout  # "  7: 9.228"

    res = _cli(fresh, "inspect", model)
    assert res.returncode == 0 and "BCONV2D" in res.stdout, res.stderr

    res = _cli(fresh, "profile", model, "--device", "host", "--runs", "5")
    assert res.returncode == 0, res.stderr
    assert "MEASURED on this machine" in res.stdout and "warm median" in res.stdout, res.stdout

    res = _cli(fresh, "devices")
    assert res.returncode == 0 and "rpi4" in res.stdout, res.stderr


def test_demo_runs_the_shipped_conversion_without_torch(fresh):
    _, _, work = fresh
    res = _cli(fresh, "demo", "--out", work / "demo", "--runs", "3")
    assert res.returncode == 0, res.stderr
    assert "using the packed file shipped with the package" in res.stdout
    correct = int(res.stdout.split("true labels")[1].split(":")[1].split("/")[0])
    assert correct >= 19, res.stdout  # the trained model, not random weights


@pytest.mark.parametrize("verb, extra", [(("convert", "model.pt"), "edgebnn[convert]"),
                                         (("convert", "model.onnx"), "edgebnn[convert]"),
                                         (("train", "binarynet_cnn"), "edgebnn[train]")])
def test_verbs_that_need_an_extra_say_which_in_one_line(fresh, verb, extra):
    _, _, work = fresh
    (work / "model.pt").write_bytes(b"\0")
    (work / "model.onnx").write_bytes(b"\0")
    res = _cli(fresh, *verb)
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and extra in lines[0] and lines[0].startswith("edgebnn: error:"), res.stderr
    assert "Traceback" not in res.stderr
