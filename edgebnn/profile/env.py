"""The conditions a measurement ran under: governor, clock, temperature, throttling, OS.

One POSIX sh snippet collects them, run locally or over SSH on a board, so both paths
record exactly the same fields.
"""
from __future__ import annotations

import subprocess

ENV_SCRIPT = r"""
c=/sys/devices/system/cpu/cpu0/cpufreq
echo "machine=$(uname -m)"
echo "kernel=$(uname -sr)"
echo "bits=$(getconf LONG_BIT 2>/dev/null)"
echo "os=$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null)"
echo "board=$(tr -d '\000' </proc/device-tree/model 2>/dev/null)"
echo "governor=$(cat $c/scaling_governor 2>/dev/null)"
echo "cur_khz=$(cat $c/scaling_cur_freq 2>/dev/null)"
echo "max_khz=$(cat $c/scaling_max_freq 2>/dev/null)"
echo "temp_mc=$(cat /sys/class/thermal/thermal_zone0/temp 2>/dev/null)"
echo "throttled=$(vcgencmd get_throttled 2>/dev/null | sed 's/.*=//')"
echo "ncpu=$(nproc 2>/dev/null)"
echo "mem_avail_kib=$(awk '/^MemAvailable/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
"""

# vcgencmd get_throttled bits (Raspberry Pi firmware documentation).
_THROTTLE_BITS = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
                  3: "soft temperature limit now", 16: "under-voltage has occurred",
                  17: "frequency capping has occurred", 18: "throttling has occurred",
                  19: "soft temperature limit has occurred"}


def decode_throttled(value: str) -> list[str]:
    try:
        bits = int(value, 16)
    except ValueError:
        return []
    return [what for bit, what in _THROTTLE_BITS.items() if bits >> bit & 1]


def parse(text: str) -> dict:
    raw = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip():
            raw[k.strip()] = v.strip()
    env = {"machine": raw.get("machine") or None, "kernel": raw.get("kernel") or None,
           "os": raw.get("os") or None, "board": raw.get("board") or None,
           "os_bits": int(raw["bits"]) if raw.get("bits", "").isdigit() else None,
           "cpu_governor": raw.get("governor") or None,
           "cpu_clock_mhz": int(raw["cur_khz"]) / 1000 if raw.get("cur_khz", "").isdigit() else None,
           "cpu_max_clock_mhz": int(raw["max_khz"]) / 1000 if raw.get("max_khz", "").isdigit() else None,
           "temperature_c": (int(raw["temp_mc"]) / 1000
                             if raw.get("temp_mc", "").lstrip("-").isdigit() else None),
           "online_cpus": int(raw["ncpu"]) if raw.get("ncpu", "").isdigit() else None,
           "mem_available_kib": int(raw["mem_avail_kib"]) if raw.get("mem_avail_kib", "").isdigit() else None,
           "loadavg": raw.get("loadavg") or None}
    thr = raw.get("throttled", "")
    env["throttled"] = thr or None
    env["throttling"] = decode_throttled(thr) if thr else None
    return env


def collect_local(timeout: float = 10.0) -> dict:
    try:
        out = subprocess.run(["sh", "-c", ENV_SCRIPT], capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return parse(out)


def warnings(env: dict) -> list[str]:
    """What in the environment makes timings less trustworthy, one line each."""
    w = []
    gov = env.get("cpu_governor")
    if gov and gov not in ("performance",):
        w.append(f"CPU governor is '{gov}': clocks may ramp during the runs (set 'performance' for stable numbers)")
    for t in env.get("throttling") or []:
        w.append(f"firmware reports: {t}")
    temp = env.get("temperature_c")
    if temp is not None and temp >= 80:
        w.append(f"SoC at {temp:.1f} C: close to thermal throttling")
    return w
