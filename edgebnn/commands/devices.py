"""`edgebnn devices`: the boards edgebnn knows (device profiles, one TOML file each)."""
from __future__ import annotations

import json

import click

from ..devices import all_devices, detect_board, search_path


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print the full profiles as JSON.")
def devices(as_json: bool):
    """List the device profiles `edgebnn profile --device NAME` accepts.

    \b
    Each board is one TOML file (arch, cores, clock, caches, SIMD, memory, power, sensors,
    cross-compiler triple), with its sources cited in the file. Add a board by adding a file:
      mkdir -p ~/.config/edgebnn/devices
      cp $(python -c 'import edgebnn,os;print(os.path.dirname(edgebnn.__file__))')/devices/generic-aarch64.toml \\
         ~/.config/edgebnn/devices/myboard.toml        # then edit name, match and numbers
    Folders searched (later ones override): the shipped folder, ~/.config/edgebnn/devices,
    and $EDGEBNN_DEVICES.
    """
    devs = all_devices()
    if as_json:
        click.echo(json.dumps({n: d.as_dict() for n, d in sorted(devs.items())}, indent=2))
        return
    here = detect_board()
    click.echo(f"{'name':<16} {'arch':<8} {'cores x core @ clock':<34} {'memory':>9} {'bandwidth':>10} "
               f"{'idle/active W':>13}  sensors")
    for name, d in sorted(devs.items()):
        c, m, p = d.cpu, d.memory, d.power
        mark = " *" if here and here.name == name else ""
        core = f"{c['cores']} x {c['core']} @ {c['clock_ghz']:g} GHz"
        click.echo(f"{name + mark:<16} {d.arch:<8} {core[:34]:<34} {m['size_mib']:>5} MiB {m['bandwidth_gbs']:>6g} GB/s "
                   f"{p['idle_w']:>5g}/{p['active_w']:<6g}  {', '.join(d.sensors) or '-'}")
    click.echo("* this machine" if here else "(this machine is none of these boards: use --device host)")
    click.echo("searched: " + ", ".join(str(p) for p in search_path()))
