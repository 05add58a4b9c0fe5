"""The `edgebnn` command: a click group with one small module per verb in edgebnn/commands/."""
from __future__ import annotations

import sys

import click

from . import __version__


# Every verb's module is imported only when that verb runs (or help lists them): `edgebnn run`
# loads the runtime and nothing of the converters, the profiler or the trainer, so it starts
# fast, stays small in memory on a board, and works where torch is not installed.
_LAZY = {"train": ("edgebnn.train", "train", "pip install 'edgebnn[train]' (PyTorch)")}
_VERBS = {name: (f"edgebnn.commands.{name}", name, None)
          for name in ("convert", "export", "run", "inspect", "demo", "profile", "devices")}


class _Group(click.Group):
    """Turns expected failures into one line on stderr and exit status 1, never a traceback."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(_LAZY) | set(_VERBS))

    def get_command(self, ctx, name):
        if name in _VERBS:
            import importlib
            module, attr, _ = _VERBS[name]
            return getattr(importlib.import_module(module), attr)
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


if __name__ == "__main__":
    main()
