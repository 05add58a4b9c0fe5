"""Measuring on a board over SSH: copy edgebnn-bench and the model, run, fetch the JSON, clean up.

Needs only sh, tar and (optionally) `timeout` on the board: no Python. Uses the system
OpenSSH client in batch mode (keys or an agent; never a password prompt). Every failure is
one UserError line, and the board's temporary folder is removed whatever happens.
"""
from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ..devices import ARCH_ALIASES, Device, normalize_arch
from ..errors import UserError
from . import env as _env

# Counters the bench can read itself before and after its timed runs (microjoules).
_COUNTERS_SCRIPT = r"""
for f in /sys/class/powercap/*/energy_uj /sys/class/hwmon/hwmon*/energy*_input; do
  case "$f" in */intel-rapl:*:*) continue;; esac
  [ -r "$f" ] && cat "$f" >/dev/null 2>&1 && echo "counter=$f"
done
# Power sensors to sample while the bench runs (used when there is no energy counter).
for f in /sys/class/hwmon/hwmon*/power*_input; do [ -r "$f" ] && echo "power_uw=$f"; done
# Jetson (L4T) INA3221: channel 0 is the board's 5 V input (POM_5V_IN / VDD_IN)
for f in /sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_power0_input; do [ -r "$f" ] && echo "power_mw=$f"; done
vcgencmd pmic_read_adc 2>/dev/null | grep -q 'current(' && echo "pmic=vcgencmd"
true
"""


@dataclass
class SSH:
    target: str                      # user@address
    port: int | None = None
    identity: Path | None = None
    options: list = field(default_factory=list)  # extra -o settings, e.g. UserKnownHostsFile=...
    connect_timeout: int = 10

    def argv(self) -> list[str]:
        a = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
             "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR"]
        if self.port:
            a += ["-p", str(self.port)]
        if self.identity:
            a += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        for o in self.options:
            a += ["-o", o]
        return a + [self.target]

    def run(self, command: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        try:
            res = subprocess.run(self.argv() + [command], input=stdin, capture_output=True, timeout=timeout)
        except FileNotFoundError:
            raise UserError("the OpenSSH client `ssh` is not installed (apt install openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise UserError(f"{self.target} did not answer within {timeout:.0f} s over SSH "
                            "(raise --timeout, or check the board is up)") from None
        if res.returncode == 255:
            raise UserError(self._explain(res.stderr.decode(errors="replace")))
        return res

    def _explain(self, stderr: str) -> str:
        lines = [l.strip() for l in stderr.splitlines() if l.strip()]
        last = lines[-1] if lines else "ssh failed"
        low = stderr.lower()
        if "permission denied" in low:
            return (f"{self.target} refused the SSH key ({last}): install your public key on the board "
                    "(ssh-copy-id) or pass --identity KEY")
        if "host key verification failed" in low or "remote host identification has changed" in low:
            return f"{self.target}'s SSH host key does not match known_hosts ({last}): check you reach the right board"
        return f"cannot reach {self.target} over SSH: {last} (check the address, --port, and that sshd runs)"


def _arch_ok(machine: str, arch: str) -> bool:
    m = normalize_arch(machine)
    if m == arch or machine.lower() in ARCH_ALIASES.get(arch, ()):
        return True
    # a 64-bit ARM kernel runs 32-bit armv7 programs (Pi 3/4/5 and most Cortex-A cores)
    return arch == "armv7" and m == "aarch64"


def _tar(files: dict[str, tuple[Path, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (path, mode) in files.items():
            info = tar.gettarinfo(str(path), arcname=name)
            info.mode, info.uid, info.gid, info.uname, info.gname = mode, 0, 0, "", ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def _parse_counters(text: str) -> dict[str, int]:
    vals = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            vals[k] = int(v)
    return vals


def _run_command(q, prefix, threads, runs, warmup, timeout, counters, power, idle_seconds) -> tuple[str, str | None]:
    """The board-side script: idle reading, the bench (under `timeout` when the board has it), and
    either energy counters read by the bench or a power logger sampling beside it."""
    bench = (f"T=; command -v timeout >/dev/null 2>&1 && T='timeout {int(timeout)}'; "
             f"$T {prefix} ./edgebnn-bench model.ebnn --threads {threads} --runs {runs} --warmup {warmup}")
    if counters:
        cat = " ".join(shlex.quote(c) for c in counters)
        read = f"for f in {cat}; do echo \"$f $(cat $f)\"; done"
        args = " ".join(f"--energy-uj {shlex.quote(c)}" for c in counters)
        return (f"cd {q} && {read}; echo __idle__; sleep {idle_seconds}; {read}; echo __bench__; {bench} {args}",
                None)
    files = [("U", f) for f in power.get("power_uw", [])] + [("M", f) for f in power.get("power_mw", [])]
    if not files and not power.get("pmic"):
        return f"cd {q} && echo __bench__; {bench}", None
    if power.get("pmic"):
        what, reads = "vcgencmd pmic_read_adc (PMIC rails)", "vcgencmd pmic_read_adc 2>/dev/null"
    else:
        what = "power sensors " + ", ".join(f for _, f in files)
        reads = "; ".join(f"echo \"{u} $(cat {shlex.quote(f)})\"" for u, f in files)
    # The logger stops when `running` disappears, also when the folder is removed after a failure.
    logger = (f"touch running; (while [ -e running ]; do echo \"@ $(date +%s%N)\"; {reads}; sleep 0.02; done "
              "> power.log 2>/dev/null &); ")
    return (f"cd {q} && {logger}sleep {idle_seconds}; echo \"@idle_end $(date +%s%N)\" >> idle.mark; "
            f"{bench} > bench.json; rc=$?; rm -f running; sleep 0.1; echo __power__; cat idle.mark power.log; "
            "echo __bench__; cat bench.json; exit $rc", what)


def parse_output(out: str, counters: bool, sampled: str | None, idle_seconds: float, target: str) -> tuple[dict, dict]:
    """The run script's stdout -> (bench record, idle/energy info for profile._remote_energy)."""
    idle_info = {}
    head, _, out = out.rpartition("__bench__")
    if counters and "__idle__" in head:
        before, _, after = head.partition("__idle__")
        b, a = _parse_counters(before), _parse_counters(after)
        if b and set(b) == set(a):
            idle_info = {"idle_uj": sum(a[k] - b[k] for k in b), "idle_seconds": idle_seconds}
    elif sampled and "__power__" in head:
        idle_info = {"power_log": head.split("__power__", 1)[1], "power_sensor": sampled}
    try:
        raw = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise UserError(f"edgebnn-bench on {target} printed no result (got {out.strip()[:80]!r})") from None
    return raw, idle_info


def measure(ssh: SSH, device: Device, model: Path, bench: Path, threads: int, runs: int, warmup: int,
            need_bytes: int, timeout: float, progress=None, idle_seconds: float = 1.0) -> tuple[dict, dict, dict]:
    """(raw bench record, energy info, board environment) from one board."""
    say = progress or (lambda *a, **k: None)
    say(f"connecting to {ssh.target}")
    probe = ssh.run(_env.ENV_SCRIPT + _COUNTERS_SCRIPT, timeout=ssh.connect_timeout + 20)
    text = probe.stdout.decode(errors="replace")
    env = _env.parse(text)
    counters = [l.split("=", 1)[1] for l in text.splitlines() if l.startswith("counter=")]
    power = {k: [l.split("=", 1)[1] for l in text.splitlines() if l.startswith(k + "=")]
             for k in ("power_uw", "power_mw", "pmic")}
    if any("/powercap/" in c for c in counters):  # hwmon energy would count the same joules twice
        counters = [c for c in counters if "/powercap/" in c]
    machine = env.get("machine") or "?"
    if not device.emulated and not _arch_ok(machine, device.arch):
        raise UserError(f"{ssh.target} is a {machine} machine but device '{device.name}' is {device.arch}: "
                        "pick the --device that matches the board (`edgebnn devices`)")
    avail = env.get("mem_available_kib")
    if avail is not None and need_bytes > avail * 1024:
        raise UserError(f"model needs {need_bytes / 2**20:.1f} MiB (file + arena) but {ssh.target} has only "
                        f"{avail / 1024:.1f} MiB available: use a smaller model or free memory on the board")
    prefix = device.remote.get("exec_prefix", "")
    if device.emulated:
        counters, power = [], {}  # energy of an emulator says nothing about the board
    tmp = None
    try:
        say(f"copying edgebnn-bench ({bench.stat().st_size // 1024} KiB) and the model")
        res = ssh.run("d=$(mktemp -d /tmp/edgebnn-profile.XXXXXX) && cd \"$d\" && tar -xf - && echo \"$d\"",
                      stdin=_tar({"edgebnn-bench": (bench, 0o755), "model.ebnn": (model, 0o644)}),
                      timeout=max(60, timeout))
        tmp = res.stdout.decode().strip().splitlines()[-1] if res.returncode == 0 and res.stdout.strip() else None
        if not tmp or not tmp.startswith("/tmp/edgebnn-profile."):
            raise UserError(f"copying to {ssh.target} failed: "
                            f"{res.stderr.decode(errors='replace').strip() or 'no temporary folder'}")
        q = shlex.quote(tmp)
        res = ssh.run(f"cd {q} && {prefix} ./edgebnn-bench --arch", timeout=60)
        got = res.stdout.decode(errors="replace").strip()
        if res.returncode != 0 or got != device.arch:
            why = res.stderr.decode(errors="replace").strip().splitlines()[-1:] or [got or "no output"]
            raise UserError(f"{ssh.target} ({machine}) cannot run the {device.arch} edgebnn-bench: {why[0]} "
                            "(pick the --device that matches the board, or pass --bench built for it)")
        cmd, sampled = _run_command(q, prefix, threads, runs, warmup, timeout, counters, power, idle_seconds)
        say(f"running {warmup} warm-up + {runs} timed runs + {runs} per-layer runs on {ssh.target}"
            + (" (emulated)" if device.emulated else "") + (" with energy sampling" if sampled else ""))
        res = ssh.run(cmd, timeout=timeout + idle_seconds + 30)
        out = res.stdout.decode(errors="replace")
        if res.returncode == 124:
            raise UserError(f"edgebnn-bench on {ssh.target} did not finish within {timeout:.0f} s "
                            "(raise --timeout or lower --runs)")
        if res.returncode != 0:
            why = res.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {res.returncode}"]
            raise UserError(f"edgebnn-bench on {ssh.target} failed: {why[0]}")
        return parse_output(out, bool(counters), sampled, idle_seconds, ssh.target) + (env,)
    finally:
        if tmp:
            try:
                ssh.run(f"rm -rf {shlex.quote(tmp)}", timeout=30)
            except UserError:
                pass
