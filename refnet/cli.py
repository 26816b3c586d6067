"""The ``refnet`` command line.

Each subcommand lives in its own module, imported only when that subcommand runs (so
``refnet --help`` stays fast and does not compile numba kernels). A subcommand module defines

* ``HELP``: one line for ``refnet --help``;
* ``add_arguments(parser)``: its options on an ``argparse.ArgumentParser``;
* ``run(args) -> int``: the exit status.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> module; the order is the order of ``refnet --help``.
COMMANDS = {
    "reproduce": "refnet.commands.reproduce",
    "train": "refnet.commands.train",
    "evaluate": "refnet.commands.evaluate",
    "sensitivity": "refnet.commands.sensitivity",
    "sweep": "refnet.commands.sweep",
    "fetch": "refnet.commands.fetch",
    "info": "refnet.commands.info",
}


def _available():
    out = {}
    for name, modname in COMMANDS.items():
        try:
            out[name] = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:  # a real import error inside the module: show it
                raise
    return out


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="refnet",
        description="Reference implementation of noisy analog neural networks "
                    "(Duque et al. 2024; Semenova et al. 2022).")
    parser.add_argument("--version", action="version", version=f"refnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; completed work is kept (checkpoints and caches are written "
              "atomically). Run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
