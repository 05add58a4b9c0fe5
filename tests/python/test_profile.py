"""`edgebnn devices` and `edgebnn profile` on this machine and by estimate; sensor readers on fake sysfs trees."""
import json
import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from edgebnn.demo_model import build_demo_bnn
from edgebnn.devices import all_devices, get_device, load_file
from edgebnn.errors import UserError
from edgebnn.format import save
from edgebnn.ir import GraphBuilder
from edgebnn.profile import energy, env, latency_stats
from edgebnn.profile.estimate import estimate, fits_memory

SHIPPED = ["generic-aarch64", "generic-armv7", "host", "jetson-nano", "rock5b", "rpi3b", "rpi3bplus", "rpi4b", "rpi5",
           "rpizero2w"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "demo.ebnn"
    save(build_demo_bnn(), p)
    return p


def _cli(*args, env_extra=None, cwd=None):
    e = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "edgebnn", *map(str, args)], capture_output=True, text=True,
                          env=e, timeout=300, cwd=cwd or "/")


def _one_line_error(res):
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


# ---- device database ---------------------------------------------------------------------

def test_shipped_devices_load_and_cite_sources():
    devs = all_devices()
    assert set(SHIPPED) <= set(devs)
    for name in SHIPPED:
        d = devs[name]
        text = d.path.read_text()
        assert "Sources" in text or "Source" in text, f"{d.path} cites no sources"
        assert d.cores >= 1 and float(d.cpu["clock_ghz"]) > 0 and d.memory["bandwidth_gbs"] > 0
        assert d.power["active_w"] >= d.power["idle_w"] or d.power.get("per_core")
        assert d.arch in ("aarch64", "armv7", "x86_64", "riscv64") or name == "host"
    assert get_device("rpi4").name == "rpi4b"          # aliases
    assert "dotprod" in devs["rpi5"].cpu["simd"] and "dotprod" not in devs["rpi4b"].cpu["simd"]


def test_devices_command_lists_boards_and_user_folder(tmp_path):
    src = Path(get_device("generic-aarch64").path).read_text()
    (tmp_path / "myboard.toml").write_text(src.replace('name = "generic-aarch64"', 'name = "my-board"')
                                           .replace('aliases = ["aarch64", "arm64"]', 'aliases = []'))
    res = _cli("devices", env_extra={"EDGEBNN_DEVICES": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    for name in SHIPPED + ["my-board"]:
        assert name in res.stdout
    res = _cli("devices", "--json", env_extra={"EDGEBNN_DEVICES": str(tmp_path)})
    assert json.loads(res.stdout)["my-board"]["arch"] == "aarch64"


def test_bad_device_file_is_one_line(tmp_path, model):
    (tmp_path / "bad.toml").write_text("name = \"bad\"\narch = [unclosed\n")
    res = _cli("profile", model, "--device", "rpi4b", env_extra={"EDGEBNN_DEVICES": str(tmp_path)})
    assert "not valid TOML" in _one_line_error(res)
    (tmp_path / "bad.toml").write_text('name = "bad"\narch = "aarch64"\n[cpu]\ncores = 4\n')
    with pytest.raises(UserError, match=r"lacks \[cpu\] core, clock_ghz"):
        load_file(tmp_path / "bad.toml")


def test_unknown_device_and_missing_model(model):
    assert "unknown device 'nosuch'" in _one_line_error(_cli("profile", model, "--device", "nosuch"))
    assert "does not exist" in _one_line_error(_cli("profile", "/nonexistent.ebnn"))


# ---- local measurement -------------------------------------------------------------------

class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.external = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith("#"):
                self.external.append(v)


def test_local_profile_measures_and_writes_reports(model, tmp_path):
    res = _cli("profile", model, "--device", "host", "--runs", 7, "--warmup", 1, "--json", tmp_path / "p.json",
               "--report", tmp_path / "p.html", "--idle-seconds", 0.1)
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "p.json").read_text())
    assert r["schema"] == "edgebnn.profile/1" and r["label"] == "measured" and r["where"] == "local"
    lat = r["latency_ms"]
    assert len(r["runs_ms"]) == 7 and lat["n"] == 7
    assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"] and lat["init"] > 0
    assert lat["median"] == pytest.approx(float(np.median(r["runs_ms"])))
    assert len(r["layers"]) == 11 and abs(sum(l["share"] for l in r["layers"]) - 1) < 1e-6
    conv = r["layers"][0]
    assert conv["name"] == "stem" and conv["time_ms"] > 0 and conv["ops_per_s"] > 0 and conv["estimated_ms"] > 0
    assert r["memory"]["arena_bytes"] > 0 and r["memory"]["file_bytes"] == model.stat().st_size
    assert r["energy"]["label"] in ("measured", "estimated") and r["energy"]["joules_per_inference"] > 0
    e = r["environment"]
    assert e["threads"] == 1 and e["machine"] and e["os_bits"] in (32, 64) and e["edgebnn_version"]
    assert "MEASURED" in res.stdout and "stem" in res.stdout and "p99" in res.stdout
    page = (tmp_path / "p.html").read_text()
    chk = _Checker()
    chk.feed(page)
    assert "svg" in chk.tags and "rect" in chk.tags and not chk.external   # self-contained
    assert page.count("<rect") >= 11 and "measured" in page


def test_estimate_is_labelled_everywhere(model, tmp_path):
    import platform
    dev = "rpi5" if platform.machine() not in ("aarch64",) else "generic-armv7"
    res = _cli("profile", model, "--device", dev, "--json", tmp_path / "e.json", "--report", tmp_path / "e.html")
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "e.json").read_text())
    assert r["label"] == "estimated" and r["latency_ms"] is None
    assert all(l["label"] == "estimated" for l in r["layers"])
    assert r["energy"]["label"] == "estimated" and "power model" in r["energy"]["source"]
    assert "ESTIMATED" in res.stdout and "energy (estimated" in res.stdout
    assert "estimated" in (tmp_path / "e.html").read_text()


def test_profile_json_to_stdout(model):
    res = _cli("profile", model, "--estimate", "--json", "-")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["label"] == "estimated"


def test_help_teaches_with_examples():
    res = _cli("profile", "--help")
    assert res.returncode == 0 and "Examples" in res.stdout and "--host" in res.stdout and "--report" in res.stdout


def test_demo_ends_with_a_profile(tmp_path):
    res = _cli("demo", "--out", tmp_path / "demo", "--runs", 3, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    tail = res.stdout[res.stdout.index("4. profile"):]
    assert "MEASURED" in tail and "BCONV2D" in tail and "energy" in tail


def test_profile_path_never_imports_torch(model):
    code = ("import sys; from edgebnn.profile import profile; profile(sys.argv[1], 'host', runs=2, warmup=0, "
            "idle_seconds=0); from edgebnn.commands import profile as c, devices; "
            "assert not any(m.split('.')[0] in ('torch', 'onnx') for m in sys.modules), 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr


# ---- statistics, environment, cost model -------------------------------------------------

def test_latency_stats_match_numpy():
    xs = list(np.random.default_rng(1).gamma(2.0, 1.0, 101))
    s = latency_stats(xs)
    for q in (90, 99):
        assert s[f"p{q}"] == pytest.approx(float(np.percentile(xs, q)))
    assert s["std"] == pytest.approx(float(np.std(xs, ddof=1)))


def test_environment_parsing_and_throttle_bits():
    e = env.parse("machine=aarch64\nbits=64\ngovernor=ondemand\ncur_khz=1500000\ntemp_mc=83500\n"
                  "throttled=0x50005\nboard=Raspberry Pi 4 Model B Rev 1.4\n")
    assert e["cpu_clock_mhz"] == 1500 and e["temperature_c"] == 83.5 and e["os_bits"] == 64
    assert e["throttling"] == ["under-voltage now", "throttled now", "under-voltage has occurred",
                               "throttling has occurred"]
    w = env.warnings(e)
    assert any("ondemand" in x for x in w) and any("83" in x for x in w)
    assert env.collect_local()["machine"]


def _conv_graph(binary: bool, c=64, hw=32):
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", (1, hw, hw, c))
    if binary:
        y = b.bconv2d(b.sign_pack(x), b.const_bits(np.where(rng.random((c, 3, 3, c)) < .5, 1, -1)), padding="same")
    else:
        y = b.conv2d(x, rng.standard_normal((c, 3, 3, c)).astype(np.float32), padding="same")
    b.output(y)
    return b.build()


def test_cost_model_orders_things_sensibly():
    pi4 = get_device("rpi4b")
    fp, bn = _conv_graph(False), _conv_graph(True)
    t_fp = estimate(fp, pi4, engine="optimized")["total_ms"]
    t_bn = estimate(bn, pi4, engine="optimized")["total_ms"]
    assert t_bn < t_fp / 5                                        # xor-popcount beats fp32 MACs
    assert estimate(fp, pi4, threads=4, engine="optimized")["total_ms"] < t_fp / 2
    assert estimate(fp, get_device("rpi5"), engine="optimized")["total_ms"] < t_fp   # faster board
    assert estimate(fp, pi4, numeric="int8", engine="optimized")["total_ms"] < t_fp
    ref = estimate(fp, pi4, backends=["ref"] * len(fp.ops))["total_ms"]
    assert ref > t_fp                                             # reference kernels are slower than tuned
    e = estimate(bn, pi4)
    assert e["label"] == "estimated" and e["layers"][1]["backend"] == "neon"   # what aarch64 dispatch picks
    assert fits_memory(10 << 20, 1 << 20, pi4)[0] and not fits_memory(4 << 30, 0, pi4)[0]


# ---- energy sensors on fake sysfs trees ------------------------------------------------

def _w(path: Path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")


def test_powercap_counter_with_wraparound(tmp_path):
    pc = tmp_path / "sys/class/powercap"
    _w(pc / "intel-rapl:0/name", "package-0")
    _w(pc / "intel-rapl:0/energy_uj", 262143000000 - 1_000_000)
    _w(pc / "intel-rapl:0/max_energy_range_uj", 262143000000)
    _w(pc / "intel-rapl:0:0/name", "core")          # a subdomain: not counted twice
    _w(pc / "intel-rapl:0:0/energy_uj", 5)
    _w(pc / "intel-rapl:1/name", "psys")
    _w(pc / "intel-rapl:1/energy_uj", 7)
    s = energy.find_sensors(tmp_path)
    assert [x.name for x in s] == ["powercap RAPL (package-0)"] and s[0].kind == "counter"
    m = energy.Meter(s[0])
    m.start()
    _w(pc / "intel-rapl:0/energy_uj", 2_000_000)     # wrapped: 1 J before the top + 2 J after
    j, secs, _ = m.stop()
    assert j == pytest.approx(3.0)


def test_hwmon_energy_power_and_ina3221(tmp_path):
    hw = tmp_path / "sys/class/hwmon"
    _w(hw / "hwmon0/name", "amd_energy")
    _w(hw / "hwmon0/energy1_input", 1_000_000)
    _w(hw / "hwmon1/name", "some_power")
    _w(hw / "hwmon1/power1_input", 2_500_000)         # 2.5 W in microwatts
    _w(hw / "hwmon2/name", "ina3221")
    for n, (label, mv, ma) in enumerate((("VDD_IN", 5000, 600), ("VDD_CPU_GPU_CV", 5000, 200)), start=1):
        _w(hw / f"hwmon2/in{n}_label", label)
        _w(hw / f"hwmon2/in{n}_input", mv)
        _w(hw / f"hwmon2/curr{n}_input", ma)
    s = {x.name.split()[1]: x for x in energy.hwmon_sensors(tmp_path)}
    assert s["amd_energy"].kind == "counter" and s["amd_energy"].read() == pytest.approx(1.0)
    assert s["some_power"].kind == "power" and s["some_power"].read() == pytest.approx(2.5)
    assert s["ina3221"].read() == pytest.approx(3.0)  # only the VDD_IN total: 5 V x 0.6 A
    assert energy.find_sensors(tmp_path)[0].kind == "counter"   # counters first


def test_jetson_ina3221_iio(tmp_path):
    dev = tmp_path / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for n, (rail, mw) in enumerate((("POM_5V_IN", 3200), ("POM_5V_GPU", 400), ("POM_5V_CPU", 1100))):
        _w(dev / f"rail_name_{n}", rail)
        _w(dev / f"in_power{n}_input", mw)
    s = energy.ina3221_iio_sensors(tmp_path)
    assert len(s) == 1 and "POM_5V_IN" in s[0].name and s[0].read() == pytest.approx(3.2)


PMIC = """     3V7_WL_SW_A current(0)=0.00000000A
   VDD_CORE_A current(7)=2.00000000A
     EXT5V_A current(9)=0.50000000A
     3V7_WL_SW_V volt(8)=3.70000000V
   VDD_CORE_V volt(15)=0.80000000V
     EXT5V_V volt(24)=5.10000000V
"""


def test_vcgencmd_pmic_parsing_and_sampling():
    assert energy.parse_pmic(PMIC) == pytest.approx(2.0 * 0.8 + 0.5 * 5.1)
    assert energy.parse_pmic("error=1 error_msg=\"Command not registered\"") is None
    s = energy.vcgencmd_sensors(run=lambda cmd: PMIC)
    assert len(s) == 1 and s[0].kind == "power"
    m = energy.Meter(s[0], interval=0.005)
    m.start()
    time.sleep(0.1)
    j, secs, samples = m.stop()
    assert samples >= 3 and j / secs == pytest.approx(2.0 * 0.8 + 0.5 * 5.1, rel=1e-6)
    assert energy.vcgencmd_sensors(run=lambda cmd: "") == []


def test_local_profile_uses_a_sensor_when_present(model, tmp_path):
    """With a (fake) RAPL counter under sensor_root, energy is labelled measured and named."""
    from edgebnn.profile import profile
    pc = tmp_path / "sys/class/powercap/intel-rapl:0"
    _w(pc / "name", "package-0")
    _w(pc / "energy_uj", 0)
    r = profile(model, "host", runs=3, warmup=0, sensor_root=tmp_path, idle_seconds=0.01)
    en = r["energy"]
    assert en["label"] == "measured" and en["sensor"] == "powercap RAPL (package-0)"
    assert en["joules_per_inference"] == 0 and en["idle_w"] == 0   # a frozen counter reads zero energy
    r = profile(model, "host", runs=3, warmup=0, sensor_root=tmp_path / "empty", idle_seconds=0.01)
    assert r["energy"]["label"] == "estimated" and r["energy"]["why"]
