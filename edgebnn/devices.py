"""Device profiles: one TOML file per board (shipped in edgebnn/devices/, plus user folders).

Searched, later folders replacing earlier files of the same name:
  1. the shipped folder (edgebnn/devices/ in a wheel, devices/ in a checkout)
  2. $XDG_CONFIG_HOME/edgebnn/devices (default ~/.config/edgebnn/devices)
  3. each folder in $EDGEBNN_DEVICES (os.pathsep-separated)

No torch, no numpy: `edgebnn devices` and `edgebnn profile` start fast on a board.
"""
from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: the tomli backport (a dependency there)
    import tomli as tomllib  # type: ignore[no-redef]

# uname -m spellings of each arch family a bench binary is built for.
ARCH_ALIASES = {"aarch64": {"aarch64", "arm64", "armv8l"}, "armv7": {"armv7l", "armv7", "armv8l", "armhf", "arm"},
                "x86_64": {"x86_64", "amd64"}, "riscv64": {"riscv64"}}

_REQUIRED = {"cpu": ("core", "cores", "clock_ghz"), "memory": ("size_mib", "bandwidth_gbs"),
             "power": ("idle_w", "active_w"),
             "compute": ("fp32_flops_per_cycle", "int8_ops_per_cycle", "binary_ops_per_cycle")}


def normalize_arch(machine: str) -> str:
    m = machine.strip().lower()
    for arch, names in ARCH_ALIASES.items():
        if m in names:
            return arch
    return m


@dataclass
class Device:
    name: str
    title: str
    arch: str
    triple: str
    cpu: dict
    memory: dict
    power: dict
    compute: dict
    path: Path
    aliases: list = field(default_factory=list)
    match: list = field(default_factory=list)
    cost: dict = field(default_factory=dict)
    remote: dict = field(default_factory=dict)   # exec_prefix, emulated: test boards under qemu
    auto: bool = False

    @property
    def cores(self) -> int:
        return int(self.cpu["cores"])

    @property
    def sensors(self) -> list:
        return list(self.power.get("sensors", []))

    @property
    def emulated(self) -> bool:
        return bool(self.remote.get("emulated", False))

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "arch": self.arch, "triple": self.triple,
                "cpu": self.cpu, "memory": self.memory, "power": self.power, "compute": self.compute,
                "file": str(self.path), **({"emulated": True} if self.emulated else {})}


def search_path() -> list[Path]:
    here = Path(__file__).resolve().parent
    shipped = here / "devices"
    dirs = [shipped if shipped.is_dir() else here.parent / "devices"]
    cfg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    dirs.append(cfg / "edgebnn" / "devices")
    dirs += [Path(p) for p in os.environ.get("EDGEBNN_DEVICES", "").split(os.pathsep) if p]
    return dirs


def load_file(path: Path) -> Device:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"device file {path} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"device file {path} is not valid TOML: {e}") from None
    for key in ("name", "arch"):
        if key not in data:
            raise UserError(f"device file {path} lacks '{key}' (see devices/generic-aarch64.toml for every field)")
    for table, keys in _REQUIRED.items():
        missing = [k for k in keys if k not in data.get(table, {})]
        if missing:
            raise UserError(f"device file {path} lacks [{table}] {', '.join(missing)} "
                            "(see devices/generic-aarch64.toml for every field)")
    dev = Device(name=str(data["name"]), title=str(data.get("title", data["name"])), arch=str(data["arch"]),
                 triple=str(data.get("triple", "")), cpu=dict(data["cpu"]), memory=dict(data["memory"]),
                 power=dict(data["power"]), compute=dict(data["compute"]), path=path,
                 aliases=list(data.get("aliases", [])), match=list(data.get("match", [])),
                 cost=dict(data.get("cost", {})), remote=dict(data.get("remote", {})), auto=bool(data.get("auto")))
    if dev.auto:
        _fill_from_host(dev)
    return dev


def all_devices() -> dict[str, Device]:
    found: dict[str, Device] = {}
    for d in search_path():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                dev = load_file(p)
                found[dev.name] = dev
    return found


def get_device(name: str) -> Device:
    devs = all_devices()
    key = name.lower()
    for dev in devs.values():
        if key == dev.name.lower() or key in (a.lower() for a in dev.aliases):
            return dev
    raise UserError(f"unknown device '{name}': known are {', '.join(sorted(devs))} "
                    "(`edgebnn devices` lists them; add a board as a TOML file, see docs/profile.md)")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return ""


def board_model() -> str:
    """The board's name as the firmware gives it (Raspberry Pi, Jetson, most ARM SBCs)."""
    return _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")


def host_matches(dev: Device) -> bool:
    """True when this machine is the board `dev` describes."""
    if dev.auto:
        return True
    model = board_model().lower()
    if model and any(m.lower() in model for m in dev.match):
        return normalize_arch(platform.machine()) in (dev.arch, "aarch64" if dev.arch == "armv7" else dev.arch)
    return False


def detect_board() -> Device | None:
    for dev in all_devices().values():
        if not dev.auto and host_matches(dev):
            return dev
    return None


def _cpuinfo() -> tuple[str, set]:
    text = _read("/proc/cpuinfo")
    model, flags = "", set()
    for line in text.splitlines():
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k in ("model name", "cpu model", "hardware") and not model:
            model = v.strip()
        elif k in ("flags", "features"):
            flags |= set(v.split())
    return model, flags


def _fill_from_host(dev: Device) -> None:
    """Fill an `auto` profile from what this machine says about itself."""
    dev.arch = normalize_arch(platform.machine())
    model, flags = _cpuinfo()
    if model:
        dev.cpu["core"] = model
    dev.cpu["cores"] = os.cpu_count() or dev.cpu["cores"]
    mhz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if mhz.isdigit():
        dev.cpu["clock_ghz"] = round(int(mhz) / 1e6, 3)
    else:
        m = re.search(r"cpu MHz\s*:\s*([\d.]+)", _read("/proc/cpuinfo"))
        if m:
            dev.cpu["clock_ghz"] = round(float(m.group(1)) / 1e3, 3)
    for level, key in (("1", "l1d_kib"), ("2", "l2_kib"), ("3", "l3_kib")):
        for idx in range(5):
            base = f"/sys/devices/system/cpu/cpu0/cache/index{idx}"
            if _read(f"{base}/level") == level and _read(f"{base}/type") in ("Data", "Unified"):
                size = _read(f"{base}/size")
                if size.endswith("K") and size[:-1].isdigit():
                    dev.cpu[key] = int(size[:-1])
                elif size.endswith("M") and size[:-1].isdigit():
                    dev.cpu[key] = int(size[:-1]) * 1024
    simd = [f for f in ("sse4_2", "popcnt", "avx2", "fma", "avx512f", "avx512_vpopcntdq", "avx512_vnni",
                        "neon", "asimd", "asimddp", "sve") if f in flags]
    dev.cpu["simd"] = ["dotprod" if f == "asimddp" else f for f in simd]
    # Peak per-core throughput from the widest vector unit the flags promise; a guess the
    # estimate labels as such (measure with `edgebnn profile MODEL --device host`).
    if "avx512f" in flags:
        # VPOPCNTDQ: a 512-bit xor + popcount per cycle and more (benchmarks/kernels measures ~900);
        # without it (Skylake-SP, Cascade Lake) a nibble lookup: 6 uops per 8 words on 2 ports,
        # 8/3 words = 341 binary ops per cycle at best (benchmarks/kernels measures ~250)
        binary = 1024 if "avx512_vpopcntdq" in flags else 320
        dev.compute.update(fp32_flops_per_cycle=64, int8_ops_per_cycle=128, binary_ops_per_cycle=binary)
    elif "avx2" in flags and "fma" in flags:
        dev.compute.update(fp32_flops_per_cycle=32, int8_ops_per_cycle=64, binary_ops_per_cycle=256)
    elif "asimddp" in flags:
        dev.compute.update(fp32_flops_per_cycle=16, int8_ops_per_cycle=128, binary_ops_per_cycle=256)
    try:
        import psutil
        dev.memory["size_mib"] = psutil.virtual_memory().total // (1 << 20)
    except Exception:
        pass
    dev.title = f"this machine ({model or platform.machine()}, {dev.cpu['cores']} cores)"
