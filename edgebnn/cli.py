"""The `edgebnn` command: a click group with one small module per verb in edgebnn/commands/."""
from __future__ import annotations

import sys

import click

from . import __version__


# Verbs whose module imports heavy optional packages (torch): imported only when invoked,
# so `run`, `inspect` and `demo` start fast and work where torch is not installed.
_LAZY = {"train": ("edgebnn.train", "train", "pip install 'edgebnn[train]' (PyTorch)")}


class _Group(click.Group):
    """Turns expected failures into one line on stderr and exit status 1, never a traceback."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(_LAZY))

    def get_command(self, ctx, name):
        if name not in _LAZY:
            return super().get_command(ctx, name)
        module, attr, install = _LAZY[name]
        try:
            import importlib
            return getattr(importlib.import_module(module), attr)
        except ImportError as e:
            @click.command(name, help=f"(unavailable: {install})")
            def missing():
                click.echo(f"edgebnn: error: `edgebnn {name}` needs {e.name or 'an optional package'}: {install}",
                           err=True)
                sys.exit(1)
            return missing

    def invoke(self, ctx):
        from .errors import UserError
        from .format import FormatError
        from .runtime import EdgebnnError
        try:
            return super().invoke(ctx)
        except (UserError, FormatError, EdgebnnError) as e:
            click.echo(f"edgebnn: error: {e}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="edgebnn",
                      message="%(prog)s %(version)s")
def main():
    """edgebnn: deploy binary and compact neural networks on ARM and x86 CPUs.

    \b
    The job, from a model to numbers:
      edgebnn demo                        convert, run and time the shipped MNIST binary CNN
      edgebnn convert model.pt2           PyTorch (or .onnx, .tflite) -> packed .ebnn + a report
      edgebnn inspect model.ebnn          layers, dtypes, packed sizes, arena, op counts
      edgebnn export model.ebnn --to onnx the float-simulated model, to check in onnxruntime
      edgebnn run model.ebnn --input x.npy --top 5
      edgebnn profile model.ebnn --device rpi4b --host pi@pi4.local   latency, memory, energy
      edgebnn devices                     the boards `profile` knows

    Models are .ebnn packed files: 1-bit weights 64 to a word, int8 and fp32, run by a small
    C runtime (libedgebnn, C API in edgebnn.h) that apps can embed.
    """


def _register():
    from .commands import convert, demo, devices, export, inspect, profile, run
    main.add_command(convert.convert)
    main.add_command(export.export)
    main.add_command(run.run)
    main.add_command(inspect.inspect)
    main.add_command(demo.demo)
    main.add_command(profile.profile)
    main.add_command(devices.devices)


_register()

if __name__ == "__main__":
    main()
