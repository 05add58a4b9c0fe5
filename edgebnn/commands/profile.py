"""`edgebnn profile`: latency, memory and energy of a model on a device: measured, or estimated."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError


class _Progress:
    """Progress on stderr: counters overwrite one line on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool):
        self.quiet, self.tty, self.open = quiet, sys.stderr.isatty(), False

    def __call__(self, msg: str, transient: bool = False):
        if self.quiet:
            return
        if transient and not self.tty:
            return
        if transient:
            sys.stderr.write(f"\r  {msg}\033[K")
            self.open = True
        else:
            if self.open:
                sys.stderr.write("\r\033[K")
                self.open = False
            sys.stderr.write(f"  {msg}\n")
        sys.stderr.flush()

    def done(self):
        if self.open:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


@click.command("profile")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--device", "-d", default="host", show_default=True,
              help="Device profile name (`edgebnn devices`); 'host' is this machine.")
@click.option("--host", "ssh_host", metavar="USER@ADDRESS",
              help="Measure on this board over SSH: edgebnn-bench and the model are copied there, run, removed.")
@click.option("--threads", "-t", default=1, show_default=True, type=click.IntRange(1, 256), help="Worker threads.")
@click.option("--runs", "-n", default=50, show_default=True, type=click.IntRange(1, 100000), help="Timed runs.")
@click.option("--warmup", "-w", default=5, show_default=True, type=click.IntRange(0, 10000),
              help="Untimed runs before timing.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result as JSON (schema in docs/profile.md); '-' for stdout.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML report with a per-layer chart.")
@click.option("--estimate", "estimate_only", is_flag=True, help="Use the cost model even if this machine is the board.")
@click.option("--engine", type=click.Choice(["edgebnn", "optimized"]), default="edgebnn", show_default=True,
              help="What the estimate assumes: this runtime's kernels today, or tuned SIMD kernels on every layer.")
@click.option("--port", "ssh_port", type=click.IntRange(1, 65535), help="SSH port.")
@click.option("--identity", "-i", type=click.Path(dir_okay=False, path_type=Path), help="SSH private key.")
@click.option("--ssh-option", "-o", "ssh_options", multiple=True, metavar="KEY=VALUE",
              help="Extra ssh -o option (repeatable), e.g. -o UserKnownHostsFile=/tmp/kh.")
@click.option("--bench", type=click.Path(dir_okay=False, path_type=Path),
              help="The edgebnn-bench binary to copy (default: shipped, cached, or cross-built for the arch).")
@click.option("--timeout", default=300, show_default=True, type=click.IntRange(1),
              help="Seconds the board may take for all runs.")
@click.option("--idle-seconds", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Seconds of idle power read before the runs when a power sensor is present.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def profile(model, device, ssh_host, threads, runs, warmup, json_path, report_path, estimate_only, engine, ssh_port,
            identity, ssh_options, bench, timeout, idle_seconds, quiet):
    """Profile MODEL (.ebnn) on a device: latency, per-layer times, memory and energy.

    \b
    Measured here when this machine is the board (or --device host), measured over SSH with
    --host, else estimated by a cost model from the device profile. Every number is labelled
    measured, estimated or emulated.
    \b
    Examples:
      edgebnn profile model.ebnn                              # this machine, 1 thread
      edgebnn profile model.ebnn --threads 4 --runs 200 --report prof.html
      edgebnn profile model.ebnn --device rpi4b --host pi@raspberrypi.local --json prof.json
      edgebnn profile model.ebnn --device rpi5                # no board: estimated
      edgebnn devices                                         # the boards it knows
    """
    from ..profile import profile as run_profile
    from ..profile import report

    if not model.exists():
        raise UserError(f"model file {model} does not exist")
    if identity is not None and not identity.is_file():
        raise UserError(f"--identity {identity} does not exist")
    progress = _Progress(quiet)
    try:
        result = run_profile(model, device, host=ssh_host, threads=threads, runs=runs, warmup=warmup,
                             estimate_only=estimate_only, engine=engine, bench=bench, ssh_port=ssh_port,
                             identity=identity, ssh_options=ssh_options, timeout=timeout,
                             idle_seconds=idle_seconds, progress=progress)
    finally:
        progress.done()
    if json_path is not None and str(json_path) == "-":
        click.echo(report.to_json(result))
        return
    click.echo(report.terminal(result))
    if json_path is not None:
        report.write(json_path, report.to_json(result))
        click.echo(f"wrote {json_path}")
    if report_path is not None:
        report.write(report_path, report.to_html(result))
        click.echo(f"wrote {report_path}")
