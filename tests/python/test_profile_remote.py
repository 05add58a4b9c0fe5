"""`edgebnn profile --host` end to end against a real SSH server.

The test starts OpenSSH's sshd on 127.0.0.1 (a free non-privileged port) with a throwaway
host key and client key, and a test device profile whose commands run the aarch64
edgebnn-bench under qemu-aarch64, so the results are labelled emulated. Each failure case
must give one line on stderr, a non-zero exit, and leave no folder behind on the "board".
"""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgebnn.demo_model import build_demo_bnn
from edgebnn.format import save

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if SSHD is None or shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        pytest.skip("OpenSSH server/client not installed (apt install openssh-server; tests/run.sh does)")
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    _keygen(d / "other_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n"
        f"PidFile {d}/sshd.pid\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "LogLevel ERROR\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory sshd insists on as root
    check = subprocess.run([SSHD, "-t", "-f", str(d / "sshd_config")], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"sshd cannot run here: {check.stderr.strip()}")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.skip(f"sshd exited: {proc.stderr.read().decode(errors='replace').strip()}")
            time.sleep(0.1)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    yield {"dir": d, "port": port, "target": f"{user}@127.0.0.1", "key": d / "client_key",
           "other_key": d / "other_key", "known_hosts": d / "known_hosts"}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def devices_dir(tmp_path_factory):
    """Test boards: the aarch64 bench under qemu-aarch64 on this machine (emulated), a board
    whose arch has no bench, and one with too little memory for the model."""
    d = tmp_path_factory.mktemp("devices")
    base = """arch = "{arch}"
triple = "{triple}"
[cpu]
core = "Cortex-A53"
cores = 4
clock_ghz = 1.2
[memory]
size_mib = {mem}
bandwidth_gbs = 2.0
[power]
idle_w = 1.0
active_w = 3.0
[compute]
fp32_flops_per_cycle = 4
int8_ops_per_cycle = 8
binary_ops_per_cycle = 64
"""
    (d / "qemu.toml").write_text('name = "qemu-aarch64-test"\ntitle = "aarch64 under qemu (test)"\n'
                                 + base.format(arch="aarch64", triple="aarch64-linux-gnu", mem=1024)
                                 + '[remote]\nexec_prefix = "qemu-aarch64"\nemulated = true\n')
    (d / "riscv.toml").write_text('name = "riscv-test"\n' + base.format(arch="riscv64", triple="riscv64-none-test",
                                                                       mem=1024))
    (d / "tiny.toml").write_text('name = "tiny-test"\n' + base.format(arch="aarch64", triple="aarch64-linux-gnu",
                                                                     mem=0.1))
    (d / "a64.toml").write_text('name = "real-aarch64-test"\n' + base.format(arch="aarch64",
                                                                            triple="aarch64-linux-gnu", mem=1024))
    return d


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = tmp_path_factory.mktemp("model") / "demo.ebnn"
    save(build_demo_bnn(), p)
    return p


def _cli(devices_dir, *args, timeout=300):
    env = dict(os.environ, EDGEBNN_DEVICES=str(devices_dir))
    return subprocess.run([sys.executable, "-m", "edgebnn", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=devices_dir)


def _ssh_args(sshd, key=None):
    return ["--host", sshd["target"], "--port", sshd["port"], "--identity", key or sshd["key"],
            "-o", f"UserKnownHostsFile={sshd['known_hosts']}"]


def _leftovers():
    return set(glob.glob("/tmp/edgebnn-profile.*"))


def _one_line_error(res):
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.startswith("edgebnn: error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_profile_over_ssh_emulated_board(sshd, devices_dir, model, tmp_path):
    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-aarch64 not installed (apt install qemu-user; tests/run.sh does)")
    before = _leftovers()
    out = tmp_path / "r.json"
    res = _cli(devices_dir, "profile", model, "--device", "qemu-aarch64-test", *_ssh_args(sshd),
               "--runs", 3, "--warmup", 1, "--json", out, "--report", tmp_path / "r.html")
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    assert r["label"] == "emulated" and r["where"] == "remote" and r["host"] == sshd["target"]
    assert r["environment"]["arch"] == "aarch64"            # what the bench says it was built for
    assert r["environment"]["bench"] == "edgebnn-bench"
    assert len(r["runs_ms"]) == 3 and r["latency_ms"]["min"] <= r["latency_ms"]["median"] <= r["latency_ms"]["max"]
    assert [l["name"] for l in r["layers"]][:3] == ["stem", "stem.bn", "binarize"]
    assert all(l["time_ms"] > 0 for l in r["layers"] if l["op"] in ("CONV2D", "BCONV2D"))
    assert {l["backend"] for l in r["layers"] if l["op"] == "BCONV2D"} == {"neon"}   # aarch64 dispatch picks the NEON kernels
    assert r["memory"]["arena_bytes"] > 0 and r["memory"]["peak_rss_bytes"] > 0
    assert r["energy"]["label"] == "none"
    assert "EMULATED" in res.stdout and "emulated" in (tmp_path / "r.html").read_text()
    assert _leftovers() == before


def test_unreachable_host(devices_dir, model):
    port = _free_port()  # nothing listens there
    res = _cli(devices_dir, "profile", model, "--device", "qemu-aarch64-test", "--host", "nobody@127.0.0.1",
               "--port", port)
    assert "cannot reach nobody@127.0.0.1" in _one_line_error(res)


def test_refused_key(sshd, devices_dir, model):
    before = _leftovers()
    res = _cli(devices_dir, "profile", model, "--device", "qemu-aarch64-test", *_ssh_args(sshd, sshd["other_key"]))
    assert "refused the SSH key" in _one_line_error(res)
    assert _leftovers() == before


def test_missing_bench_for_arch(sshd, devices_dir, model):
    res = _cli(devices_dir, "profile", model, "--device", "riscv-test", *_ssh_args(sshd))
    assert "no edgebnn-bench for riscv64" in _one_line_error(res)


def test_model_too_large_for_board(sshd, devices_dir, model):
    res = _cli(devices_dir, "profile", model, "--device", "tiny-test", *_ssh_args(sshd))
    msg = _one_line_error(res)
    assert "MiB" in msg and "tiny-test" in msg


def test_wrong_arch_board(sshd, devices_dir, model):
    import platform
    if platform.machine() in ("aarch64", "arm64"):
        pytest.skip("this machine is aarch64, so it is not a wrong-arch board")
    before = _leftovers()
    res = _cli(devices_dir, "profile", model, "--device", "real-aarch64-test", *_ssh_args(sshd))
    assert "pick the --device that matches the board" in _one_line_error(res)
    assert _leftovers() == before


def test_bench_runs_on_host_and_reports_json(model):
    import edgebnn
    exe = Path(edgebnn.__file__).parent / "_bin" / "edgebnn-bench"
    assert exe.is_file(), "the wheel ships edgebnn-bench for this machine"
    res = subprocess.run([str(exe), str(model), "--runs", "4", "--warmup", "1", "--energy-uj", "/nonexistent"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert len(r["runs_ms"]) == 4 and len(r["ops"]) == 11 and r["energy"][0]["before_uj"] is None
    bad = subprocess.run([str(exe), str(model), "--runs", "zero"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "--runs" in bad.stderr


PMIC = """   VDD_CORE_A current(7)=2.00000000A
     EXT5V_A current(9)=0.50000000A
   VDD_CORE_V volt(15)=0.80000000V
     EXT5V_V volt(24)=5.10000000V
"""


def _board_folder(tmp_path, model):
    """A board's temporary folder as remote.py leaves it after copying: the bench and the model."""
    import edgebnn
    d = tmp_path / "board"
    d.mkdir()
    shutil.copy(Path(edgebnn.__file__).parent / "_bin" / "edgebnn-bench", d / "edgebnn-bench")
    shutil.copy(model, d / "model.ebnn")
    return d


def test_board_script_samples_pmic_power_beside_the_bench(tmp_path, model):
    """The board-side script with a Pi 5's `vcgencmd pmic_read_adc` (a fake on PATH): the power
    logger runs beside the bench, stops by itself, and its samples become measured energy."""
    from edgebnn.profile import _remote_energy
    from edgebnn.profile.remote import _run_command, parse_output
    d = _board_folder(tmp_path, model)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "vcgencmd").write_text(f"#!/bin/sh\ncat <<'X'\n{PMIC}X\n")
    os.chmod(fake / "vcgencmd", 0o755)
    # enough runs for the 20 ms logger to take several samples inside the timed window, however
    # fast the kernels get (40 runs of the demo model last ~12 ms on an AVX-512 core)
    runs = 1500
    cmd, sampled = _run_command(str(d), "", 1, runs, 2, 60, [], {"pmic": ["vcgencmd"]}, 0.2)
    assert sampled and "pmic" in sampled
    res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}"))
    assert res.returncode == 0, res.stderr
    raw, info = parse_output(res.stdout, False, sampled, 0.2, "test")
    assert len(raw["runs_ms"]) == runs and "power_log" in info
    e = _remote_energy(raw, info, runs)
    watts = 2.0 * 0.8 + 0.5 * 5.1
    assert e["label"] == "measured" and "pmic" in e["sensor"]
    assert e["mean_w"] == pytest.approx(watts) and e["idle_w"] == pytest.approx(watts)
    # seconds come from the wall-clock window the samples are matched to, within a hair of timed_ms
    assert e["joules_per_inference"] == pytest.approx(watts * raw["timed_ms"] / 1e3 / runs, rel=1e-2)
    time.sleep(0.2)
    assert not (d / "running").exists()
    size = (d / "power.log").stat().st_size
    time.sleep(0.2)
    assert (d / "power.log").stat().st_size == size          # the logger has stopped


def test_board_script_reads_energy_counters(tmp_path, model):
    from edgebnn.profile import _remote_energy
    from edgebnn.profile.remote import _run_command, parse_output
    d = _board_folder(tmp_path, model)
    counter = tmp_path / "energy_uj"
    counter.write_text("1000\n")
    cmd, sampled = _run_command(str(d), "", 1, 5, 1, 60, [str(counter)], {}, 0.1)
    res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and sampled is None, res.stderr
    raw, info = parse_output(res.stdout, True, None, 0.1, "test")
    assert raw["energy"] == [{"file": str(counter), "before_uj": 1000, "after_uj": 1000}]
    assert info == {"idle_uj": 0, "idle_seconds": 0.1}
    e = _remote_energy(raw, info, 5)
    assert e["label"] == "measured" and e["joules_per_inference"] == 0 and e["idle_w"] == 0


def test_board_timeout_is_one_line_and_cleans_up(sshd, devices_dir, model):
    if shutil.which("qemu-aarch64") is None or shutil.which("timeout") is None:
        pytest.skip("needs qemu-aarch64 and coreutils timeout")
    before = _leftovers()
    res = _cli(devices_dir, "profile", model, "--device", "qemu-aarch64-test", *_ssh_args(sshd),
               "--runs", 100000, "--timeout", 1)
    assert "did not finish within 1 s" in _one_line_error(res)
    assert _leftovers() == before
