"""Energy: read from a real sensor when the machine has one, else estimated from the device's power model.

Sensors (each reader takes a filesystem root, so tests run them on fake sysfs trees):
  powercap   Linux powercap / RAPL: energy_uj counters of the package domains
  hwmon      hwmon energy*_input (uJ counters) or power*_input (uW, sampled); INA3221 channels as in*_input x curr*_input
  ina3221    Jetson (L4T) INA3221 over IIO: in_power*_input (mW), the POM_5V_IN rail when present
  vcgencmd-pmic  Raspberry Pi 5: `vcgencmd pmic_read_adc` rail volts x amps, sampled
Counters are read before and after the timed runs; power sensors are sampled on a thread
and integrated (trapezoids).
"""
from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def _num(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class Sensor:
    name: str            # what a report shows, e.g. "powercap RAPL (package-0)"
    kind: str            # "counter" (read() gives joules) or "power" (read() gives watts)
    read: Callable[[], float | None]
    wrap_j: float = 0.0  # counter range, for wrap-around


def powercap_sensors(root: Path = Path("/")) -> list[Sensor]:
    base = root / "sys/class/powercap"
    domains = []
    for d in sorted(base.glob("*:*")) if base.is_dir() else []:
        if d.name.count(":") != 1 or _num(d / "energy_uj") is None:  # top-level domains only
            continue
        label = (d / "name").read_text().strip() if (d / "name").exists() else d.name
        domains.append((d, label))
    if not domains:
        return []
    # Package domains cover the cores and uncore; psys (whole platform) overlaps them.
    pkgs = [x for x in domains if x[1].startswith("package")] or domains
    wrap = sum(_num(d / "max_energy_range_uj") or 0 for d, _ in pkgs) / 1e6

    def read():
        vals = [_num(d / "energy_uj") for d, _ in pkgs]
        return None if any(v is None for v in vals) else sum(vals) / 1e6
    return [Sensor(f"powercap RAPL ({'+'.join(l for _, l in pkgs)})", "counter", read, wrap)]


def hwmon_sensors(root: Path = Path("/")) -> list[Sensor]:
    out = []
    base = root / "sys/class/hwmon"
    for h in sorted(base.glob("hwmon*")) if base.is_dir() else []:
        chip = (h / "name").read_text().strip() if (h / "name").exists() else h.name
        energy = sorted(h.glob("energy*_input"))
        power = sorted(h.glob("power*_input")) + sorted(h.glob("power*_average"))
        if energy and all(_num(p) is not None for p in energy):
            out.append(Sensor(f"hwmon {chip} ({', '.join(p.name for p in energy)})", "counter",
                              lambda ps=energy: (lambda v: None if None in v else sum(v) / 1e6)([_num(p) for p in ps])))
        elif power and all(_num(p) is not None for p in power):
            out.append(Sensor(f"hwmon {chip} ({', '.join(p.name for p in power)})", "power",
                              lambda ps=power: (lambda v: None if None in v else sum(v) / 1e6)([_num(p) for p in ps])))
        elif chip.startswith("ina3221"):
            chans = []
            for v in sorted(h.glob("in[0-9]_input")):
                n = v.name[2]
                c = h / f"curr{n}_input"
                if c.exists():
                    lab = h / f"in{n}_label"
                    chans.append((v, c, lab.read_text().strip() if lab.exists() else f"ch{n}"))
            total = [x for x in chans if "IN" in x[2].upper().replace("_", " ").split()] or chans
            if chans:
                out.append(Sensor(f"hwmon {chip} ({'+'.join(x[2] for x in total)})", "power",
                                  lambda cs=total: _ina_watts(cs)))
    return out


def _ina_watts(chans) -> float | None:
    total = 0.0
    for v, c, _ in chans:
        mv, ma = _num(v), _num(c)
        if mv is None or ma is None:
            return None
        total += mv * ma / 1e6
    return total


def ina3221_iio_sensors(root: Path = Path("/")) -> list[Sensor]:
    out = []
    for dev in sorted((root / "sys/bus/i2c/drivers/ina3221x").glob("*/iio:device*")):
        rails = []
        for p in sorted(dev.glob("in_power[0-9]_input")):
            n = p.name[len("in_power")]
            name_file = dev / f"rail_name_{n}"
            rails.append((p, name_file.read_text().strip() if name_file.exists() else f"rail{n}"))
        # POM_5V_IN is the board's whole input; the other rails are parts of it.
        total = [r for r in rails if r[1].endswith("_IN")] or rails
        if total:
            out.append(Sensor(f"INA3221 ({'+'.join(r[1] for r in total)})", "power",
                              lambda rs=total: (lambda v: None if None in v else sum(v) / 1e3)([_num(p) for p, _ in rs])))
    return out


_PMIC_LINE = re.compile(r"^\s*(\S+?)_([AV])\s+(?:current|volt)\(\d+\)=([\d.]+)[AV]\s*$")


def parse_pmic(text: str) -> float | None:
    """Watts from `vcgencmd pmic_read_adc` output: the sum over rails of volts x amps."""
    amps, volts = {}, {}
    for line in text.splitlines():
        m = _PMIC_LINE.match(line)
        if m:
            (amps if m.group(2) == "A" else volts)[m.group(1)] = float(m.group(3))
    rails = set(amps) & set(volts)
    return sum(amps[r] * volts[r] for r in rails) if rails else None


def vcgencmd_sensors(run: Callable[[list[str]], str] | None = None) -> list[Sensor]:
    def default_run(cmd):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=2).stdout
    run = run or default_run

    def read():
        try:
            return parse_pmic(run(["vcgencmd", "pmic_read_adc"]))
        except (OSError, subprocess.SubprocessError):
            return None
    return [Sensor("vcgencmd pmic_read_adc (PMIC rails)", "power", read)] if read() is not None else []


def find_sensors(root: Path = Path("/"), vcgencmd_run=None) -> list[Sensor]:
    """Every readable sensor, best first: counters are exact, sampling misses short peaks."""
    found = powercap_sensors(root) + hwmon_sensors(root) + ina3221_iio_sensors(root)
    found += vcgencmd_sensors(vcgencmd_run) if root == Path("/") or vcgencmd_run else []
    found = [s for s in found if s.read() is not None]
    return sorted(found, key=lambda s: s.kind != "counter")


class Meter:
    """Joules and seconds over a stretch of work, from one sensor."""

    def __init__(self, sensor: Sensor, interval: float = 0.01):
        self.sensor, self.interval = sensor, interval
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            v = self.sensor.read()
            if v is not None:
                self._samples.append((time.perf_counter(), v))
            self._stop.wait(self.interval)

    def start(self):
        self._t0 = time.perf_counter()
        if self.sensor.kind == "counter":
            self._e0 = self.sensor.read()
        else:
            self._samples, self._stop = [], threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def stop(self) -> tuple[float, float, int]:
        """(joules, seconds, samples)."""
        if self.sensor.kind == "counter":
            e1 = self.sensor.read()
            secs = time.perf_counter() - self._t0
            d = e1 - self._e0
            if d < 0 and self.sensor.wrap_j:
                d += self.sensor.wrap_j
            return d, secs, 2
        self._stop.set()
        self._thread.join()
        secs = time.perf_counter() - self._t0
        s = self._samples
        if len(s) < 2:  # work shorter than one sample: a flat line at the one reading
            w = s[0][1] if s else 0.0
            return w * secs, secs, len(s)
        joules = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(s, s[1:]))
        return joules * secs / (s[-1][0] - s[0][0]), secs, len(s)


def idle_watts(sensor: Sensor, seconds: float) -> float:
    m = Meter(sensor)
    m.start()
    time.sleep(seconds)
    j, secs, _ = m.stop()
    return j / secs if secs else 0.0


def measured(sensor_name: str, joules: float, seconds: float, runs: int, idle_w: float | None, samples: int) -> dict:
    mean_w = joules / seconds if seconds else 0.0
    above = max(mean_w - idle_w, 0.0) if idle_w is not None else None
    return {"label": "measured", "sensor": sensor_name, "runs": runs, "seconds": seconds, "samples": samples,
            "idle_w": idle_w, "mean_w": mean_w, "mean_w_above_idle": above,
            "joules_per_inference": joules / runs,
            "joules_per_inference_above_idle": above * seconds / runs if above is not None else None}


def model_power(device, threads: int) -> tuple[float, float]:
    """(idle watts, watts above idle) the device's power model gives for `threads` busy cores."""
    p = device.power
    busy = min(max(threads, 1), device.cores)
    if p.get("per_core"):
        return float(p["idle_w"]), float(p["active_w"]) * busy
    return float(p["idle_w"]), (float(p["active_w"]) - float(p["idle_w"])) * busy / device.cores


def estimated(device, threads: int, seconds_per_inference: float, why: str) -> dict:
    idle, above = model_power(device, threads)
    return {"label": "estimated", "source": f"power model in {Path(device.path).name}: idle {idle:g} W, "
            f"+{above:.2f} W for {min(threads, device.cores)} busy core(s)", "why": why,
            "idle_w": idle, "mean_w": idle + above, "mean_w_above_idle": above,
            "joules_per_inference": (idle + above) * seconds_per_inference,
            "joules_per_inference_above_idle": above * seconds_per_inference}


def parse_power_log(text: str) -> tuple[float | None, list[tuple[float, float]]]:
    """A board-side power log (see remote.py) -> (idle end in unix ms, [(unix ms, watts)]).

    Samples start with "@ <unix ns>", followed by "U <microwatts>" / "M <milliwatts>" lines or
    the lines of `vcgencmd pmic_read_adc`; "@idle_end <unix ns>" marks the end of the idle reading.
    """
    idle_end, samples, t, block = None, [], None, []

    def flush():
        if t is None or not block:
            return
        watts = 0.0
        files = [l for l in block if l[:2] in ("U ", "M ")]
        if files:
            try:
                watts = sum(float(l[2:]) / (1e6 if l[0] == "U" else 1e3) for l in files)
            except ValueError:
                return
        else:
            w = parse_pmic("\n".join(block))
            if w is None:
                return
            watts = w
        samples.append((t, watts))

    for line in text.splitlines():
        if line.startswith("@idle_end "):
            v = line.split()[1]
            idle_end = int(v) / 1e6 if v.isdigit() else None
        elif line.startswith("@ "):
            flush()
            v = line[2:].strip()
            t, block = (int(v) / 1e6 if v.isdigit() else None), []
        elif line.strip():
            block.append(line.strip())
    flush()
    return idle_end, samples


def from_power_log(text: str, sensor: str, window_ms: tuple[float, float], runs: int) -> dict | None:
    """Energy over the bench's timed runs from a board-side power log; None if it holds too few samples."""
    idle_end, samples = parse_power_log(text)
    t0, t1 = window_ms
    busy = [w for t, w in samples if t0 <= t <= t1]
    note = None
    if len(busy) < 3:
        # Timed runs shorter than a few samples: the whole bench (load, warm-up, timed and
        # per-layer runs) is the same steady load, so its samples stand for the timed stretch.
        busy = [w for t, w in samples if idle_end is not None and t > idle_end]
        note = "timed runs too short to sample: mean power over the whole bench run"
    idle = [w for t, w in samples if idle_end is not None and t <= idle_end]
    if not busy or t1 <= t0:
        return None
    secs = (t1 - t0) / 1e3
    mean_w = sum(busy) / len(busy)
    r = measured(sensor, mean_w * secs, secs, runs, sum(idle) / len(idle) if idle else None, len(busy))
    if note:
        r["note"] = note
    return r
