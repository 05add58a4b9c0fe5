"""Showing a profile: a terminal table, JSON, and a self-contained HTML page with an inline SVG chart."""
from __future__ import annotations

import html
import json
from pathlib import Path

KIND_COLORS = {"binary": "#2a9d8f", "k-bit": "#8ab17d", "int8": "#e9c46a", "fp32": "#e76f51", "data": "#8d99ae"}


def _ms(v) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.1f} us" if v < 0.1 else f"{v:.3f} ms" if v < 10 else f"{v:.1f} ms"


def _bytes(n) -> str:
    if n is None:
        return "-"
    for k, s in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= k:
            return f"{n / k:.1f} {s}"
    return f"{n} B"


def _rate(v) -> str:
    if not v:
        return "-"
    for k, s in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= k:
            return f"{v / k:.2f} {s}"
    return f"{v:.0f}"


def _energy_line(e: dict) -> str:
    if e.get("label") == "none":
        return f"energy: not reported ({e['why']})"
    per = e["joules_per_inference"]
    above = e.get("joules_per_inference_above_idle")
    src = e.get("sensor") or e.get("source")
    s = f"energy ({e['label']}, {src}): {per * 1e3:.3f} mJ/inference"
    if above is not None:
        s += f", {above * 1e3:.3f} mJ above idle"
    if e.get("mean_w_above_idle") is not None:
        s += f"; mean {e['mean_w']:.2f} W, {e['mean_w_above_idle']:.2f} W above idle"
    if e["label"] == "estimated":
        s += f" [{e['why']}]"
    return s


def terminal(r: dict) -> str:
    dev, m, lab = r["device"], r["model"], r["label"]
    out = [f"{m['name']} on {dev['title']} [{dev['name']}] - {lab.upper()}"
           + (f" over SSH on {r['host']}" if r["host"] else " on this machine" if r["where"] == "local" else
              " by the cost model (no board measured)")]
    s = r["settings"]
    env = r["environment"]
    out.append(f"  threads {s['threads']}, runs {s['runs']}, warm-up {s['warmup']}; edgebnn {env.get('edgebnn_version')}"
               + (f", {env.get('bench')}" if env.get("bench") else ""))
    lat = r["latency_ms"]
    if lat:
        out.append(f"  latency ({lab}): init {_ms(lat['init'])}, first run {_ms(lat['first'])}; "
                   f"warm median {_ms(lat['median'])}, mean {_ms(lat['mean'])} +- {_ms(lat['std'])}, "
                   f"p90 {_ms(lat['p90'])}, p99 {_ms(lat['p99'])}, min {_ms(lat['min'])}, max {_ms(lat['max'])}")
    est = r["estimate"]
    out.append(f"  latency (estimated, cost model, engine '{est['engine']}'): {_ms(est['total_ms'])}")
    timed = "time" if lab != "estimated" else "time (est.)"
    out.append(f"  {'#':>3} {'layer':<24} {'op':<17} {'kind':<7} {'backend':<8} {timed:>11} {'share':>6} "
               f"{'ops/s':>9} {'est.':>10}")
    for l in r["layers"]:
        out.append(f"  {l['index']:>3} {l['name'][:24]:<24} {l['op'][:17]:<17} {l['kind']:<7} {l['backend']:<8} "
                   f"{_ms(l.get('time_ms')):>11} {100 * l.get('share', 0):>5.1f}% {_rate(l.get('ops_per_s')):>9} "
                   f"{_ms(l.get('estimated_ms')):>10}")
    mem = r["memory"]
    line = (f"  memory: file {_bytes(mem['file_bytes'])}, weights {_bytes(mem['weight_bytes'])}, "
            f"arena {_bytes(mem['arena_bytes'])}")
    if mem.get("rss_growth_bytes") is not None:
        line += f", RSS growth {_bytes(mem['rss_growth_bytes'])}"
    if mem.get("peak_rss_growth_bytes") is not None:
        line += f", peak RSS growth {_bytes(mem['peak_rss_growth_bytes'])}"
    out.append(line)
    out.append("  " + _energy_line(r["energy"]))
    bits = [f"{k} {env[k]}" for k in ("machine", "os_bits", "cpu_governor", "cpu_clock_mhz", "temperature_c",
                                      "throttled") if env.get(k) is not None]
    if bits:
        out.append("  environment: " + ", ".join(bits))
    for w in r["warnings"]:
        out.append(f"  warning: {w}")
    return "\n".join(out)


def to_json(r: dict) -> str:
    return json.dumps(r, indent=2, default=str)


def _svg_chart(layers: list[dict], label: str) -> str:
    rows = [l for l in layers if l.get("time_ms") is not None]
    if not rows:
        return "<p>no per-layer times</p>"
    top = max(l["time_ms"] for l in rows) or 1.0
    bar_w, name_w, row_h = 520, 230, 22
    h = row_h * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{name_w + bar_w + 170}" height="{h}" '
             f'role="img" aria-label="per-layer time ({label})" font-family="sans-serif" font-size="12">']
    for i, l in enumerate(rows):
        y = 10 + i * row_h
        w = max(1.0, bar_w * l["time_ms"] / top)
        color = KIND_COLORS.get(l["kind"], "#999")
        name = html.escape(f"{l['index']} {l['name']}"[:34])
        tip = html.escape(f"{l['name']} ({l['op']}, {l['kind']}, {l['backend']}): {_ms(l['time_ms'])}, "
                          f"{100 * l.get('share', 0):.1f} %")
        parts.append(f'<text x="{name_w - 6}" y="{y + 14}" text-anchor="end">{name}</text>')
        parts.append(f'<rect x="{name_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{color}">'
                     f'<title>{tip}</title></rect>')
        if l.get("estimated_ms") is not None and label != "estimated":
            ex = name_w + min(bar_w, bar_w * l["estimated_ms"] / top)
            parts.append(f'<line x1="{ex:.1f}" x2="{ex:.1f}" y1="{y}" y2="{y + row_h - 2}" stroke="#222" '
                         f'stroke-dasharray="3,2"><title>estimated {_ms(l["estimated_ms"])}</title></line>')
        parts.append(f'<text x="{name_w + w + 6:.1f}" y="{y + 14}">{_ms(l["time_ms"])} '
                     f'({100 * l.get("share", 0):.1f} %)</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.4em;margin-bottom:.2em}.lab{display:inline-block;padding:.1em .5em;border-radius:4px;color:#fff;
font-weight:bold}.measured{background:#2a9d8f}.estimated{background:#e76f51}.emulated{background:#6c757d}
.cards{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}.card{border:1px solid #ddd;border-radius:6px;padding:.7em 1em;
min-width:150px}.card b{display:block;font-size:1.3em}table{border-collapse:collapse;font-size:.9em}
td,th{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right}td:nth-child(2),th:nth-child(2),
td:nth-child(3),th:nth-child(3){text-align:left}.warn{color:#b5540b}.legend span{margin-right:1em}
.small{color:#666;font-size:.85em}"""


def to_html(r: dict) -> str:
    e = html.escape
    lab, dev, m = r["label"], r["device"], r["model"]
    lat, mem, en, env = r["latency_ms"], r["memory"], r["energy"], r["environment"]
    badge = f'<span class="lab {lab}">{lab}</span>'
    cards = []
    if lat:
        cards += [("median latency", _ms(lat["median"])), ("p90 / p99", f"{_ms(lat['p90'])} / {_ms(lat['p99'])}"),
                  ("init + first run", f"{_ms(lat['init'])} + {_ms(lat['first'])}")]
    cards.append(("estimated latency", _ms(r["estimate"]["total_ms"])))
    if en.get("label") != "none":
        cards.append((f"energy / inference ({en['label']})", f"{en['joules_per_inference'] * 1e3:.3f} mJ"))
    cards += [("file / arena", f"{_bytes(mem['file_bytes'])} / {_bytes(mem['arena_bytes'])}")]
    card_html = "".join(f'<div class="card">{e(k)}<b>{e(v)}</b></div>' for k, v in cards)
    legend = "".join(f'<span><svg width="10" height="10"><rect width="10" height="10" fill="{c}"/></svg> {k}</span>'
                     for k, c in KIND_COLORS.items())
    rows = "".join(
        f"<tr><td>{l['index']}</td><td>{e(l['name'])}</td><td>{e(l['op'])}</td><td>{e(l['kind'])}</td>"
        f"<td>{e(l['backend'])}</td><td>{_ms(l.get('time_ms'))}</td><td>{100 * l.get('share', 0):.1f} %</td>"
        f"<td>{_rate(l.get('ops_per_s'))}</td><td>{_ms(l.get('estimated_ms'))}</td></tr>" for l in r["layers"])
    env_rows = "".join(f"<tr><th>{e(str(k))}</th><td style='text-align:left'>{e(str(v))}</td></tr>"
                       for k, v in env.items() if v is not None)
    mem_rows = "".join(f"<tr><th>{e(k)}</th><td>{_bytes(mem.get(k))}</td><td style='text-align:left' "
                       f"class='small'>{e(mem['meaning'].get(k, ''))}</td></tr>"
                       for k in ("file_bytes", "weight_bytes", "arena_bytes", "rss_growth_bytes",
                                 "peak_rss_growth_bytes"))
    warn = "".join(f'<p class="warn">warning: {e(w)}</p>' for w in r["warnings"])
    where = (f"measured over SSH on {e(r['host'])}" if r["host"] else
             "measured on this machine" if r["where"] == "local" else "estimated by the cost model: no board measured")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>edgebnn profile: {e(m['name'])} on {e(dev['name'])}</title>
<style>{_CSS}</style></head><body>
<h1>{e(m['name'])} on {e(dev['title'])} {badge}</h1>
<p>{where}; {r['settings']['threads']} thread(s), {r['settings']['runs']} timed runs after {r['settings']['warmup']} warm-up;
edgebnn {e(str(env.get('edgebnn_version')))}. Every number carries its label: <i>measured</i> (timed or read from a sensor),
<i>estimated</i> (cost or power model), or <i>emulated</i> (qemu: proves the path, not the board's speed).</p>
{warn}<div class="cards">{card_html}</div>
<h2>Time per layer ({lab}{'; dashed line: estimated' if lab != 'estimated' else ''})</h2>
<div class="legend small">{legend}</div>
{_svg_chart(r['layers'], lab)}
<h2>Layers</h2><table><tr><th>#</th><th>layer</th><th>op</th><th>kind</th><th>backend</th><th>time ({lab})</th>
<th>share</th><th>ops/s</th><th>estimated</th></tr>{rows}</table>
<h2>Memory</h2><table>{mem_rows}</table>
<h2>Energy</h2><p>{e(_energy_line(en))}</p>
<h2>Environment</h2><table>{env_rows}</table>
<p class="small">schema {e(r['schema'])}; device file {e(dev['file'])}</p>
</body></html>
"""


def write(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
