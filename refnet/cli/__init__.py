"""The ``refnet`` command line.

Each subcommand lives in its own module ``refnet.cli.<name>``, imported only when that command
runs (or shows its help): ``refnet --help``, and a command line naming no known command, load
no command module, and so no numpy or numba (the modules take constants from refnet's
numerical modules, whose import took ``refnet --help`` 1.4 s). Its one line of help is in
:data:`COMMANDS`. A subcommand module defines

* ``add_arguments(parser)``: its options on an ``argparse.ArgumentParser``;
* ``run(args) -> int``: the exit status.

The contract of every subcommand: bad input (a flag, a value, a file) gives ONE line on stderr
naming the flag or file and the fix, and exit status 2; ``--debug`` adds the traceback.
Exit statuses are in :mod:`refnet.cli._status`.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import select
import sys
import traceback

from ._status import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE

#: subcommand -> its line in ``refnet --help`` (and the description of its own help); the order
#: is the order of ``refnet --help``. Its module is ``refnet.cli.<subcommand>``.
COMMANDS = {
    "reproduce": "regenerate the figures and tables of both papers and write report.md / "
                 "report.html",
    "train": "train an MLP (standard, noise-aware or regularized) and report clean and noisy "
             "accuracy",
    "evaluate": "accuracy of a trained model under each noise type alone, over a grid of noise "
                "variances",
    "sensitivity": "analytic noise sensitivity report of a saved model, with its Monte-Carlo "
                   "check",
    "sweep": "grid over training settings (lambdas, noise-aware variance, ...): resumable, "
             "Pareto report",
    "fetch": "download and verify MNIST, Fashion-MNIST and QuickDraw into the cache",
    "info": "show a saved model (architecture, training settings, accuracy) or export it",
    "crosscheck": "cross-check a framework against refnet: make a check bundle, check its "
                  "results, or compare noisy outputs statistically",
}
#: build_parser's default: every command's module and options
ALL = "all"


class UsageError(Exception):
    """A command line argparse rejected; the message is one line naming the flag."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


#: Actions that collect every occurrence (``action="append"`` ...): the only flags that may
#: be given more than once; their help says "repeatable".
_REPEATABLE = (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (one line, printed by :func:`main`), not printed
    as the usage block plus a message and ``sys.exit(2)``; a flag given twice is a usage
    error unless it collects its values (argparse would keep the last one silently); and an
    empty value is a usage error (the commands took ``--activation ''`` for "the default")."""

    def error(self, message):
        raise UsageError(self.prog, message)

    def _print_message(self, message, file=None):
        # argparse ignores a failed write, and --help/--version then exit: a closed stdout
        # surfaced at interpreter shutdown ("Exception ignored ... BrokenPipeError"), or not
        # at all. Written and flushed here, main() sees it as it sees any other
        if message:
            file = file or sys.stderr
            file.write(message)
            file.flush()

    def parse_known_args(self, args=None, namespace=None):
        self._given = {}  # flag action -> its words, for this parse (a sub-command has its own)
        return super().parse_known_args(args, namespace)

    def _get_values(self, action, arg_strings):
        # argparse's one call per occurrence of a flag, with the words as typed (after
        # "=" splitting and prefix matching, so --var=1 and --variances 2 are the same flag)
        if action.option_strings and not isinstance(action, _REPEATABLE):
            if action in self._given:
                self.error(_given_twice(action, self._given[action], arg_strings))
            self._given[action] = list(arg_strings)
        # a sub-command's action gets its name and all the words after it: check the name only
        own = arg_strings[:1] if action.nargs == argparse.PARSER else arg_strings
        if "" in own:  # the commands read `args.x or default`: '' meant the default, silently
            self.error(_empty_value(action))
        return super()._get_values(action, arg_strings)


#: The rule :class:`_Parser` enforces, for the help of every command.
_ONCE = ('Each flag may be given once, except those whose help says "repeatable"; a flag given '
         'twice is an error, not a silent override')


def _given_twice(action, first: list, second: list) -> str:
    flag = "/".join(action.option_strings)
    if not first and not second:  # a switch: nothing to choose between
        return f"{flag} given twice; give it once"
    words = ", then ".join(repr(" ".join(w)) for w in (first, second))
    return f"{flag} given twice ({words}); give it once"


def _empty_value(action) -> str:
    name = "/".join(action.option_strings) or action.metavar or action.dest
    if action.required or not action.option_strings:
        return f"argument {name}: an empty value; give one"
    return f"argument {name}: an empty value; give one, or leave {name} out for its default"


def _command_module(name: str):
    """``refnet.cli.<name>``, or None when its module is not installed (a trimmed install)."""
    modname = f"refnet.cli.{name}"
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name != modname:  # a real import error inside the module: show it
            raise
        return None


def build_parser(only: str | None = ALL) -> argparse.ArgumentParser:
    """The ``refnet`` parser with every command's options (``only=ALL``), or with only command
    ``only``'s (the others listed by name and help line, their modules not loaded; ``None``:
    none), which is what :func:`main` builds for the command line it is given."""
    from .. import __version__

    parser = _Parser(
        prog="refnet",
        description="Reference implementation of noisy analog neural networks "
                    "(Duque et al. 2024; Semenova et al. 2022).",
        epilog=_ONCE)
    parser.add_argument("--version", action="version", version=f"refnet {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the Python traceback too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, line in COMMANDS.items():
        mod = _command_module(name) if only in (ALL, name) else None
        if mod is None and only in (ALL, name):
            continue   # not installed: not offered
        p = sub.add_parser(name, help=line, description=line, epilog=_ONCE)
        if mod is None:
            continue   # listed only: this command line does not run it
        mod.add_arguments(p)
        # SUPPRESS: a missing sub-command --debug must not reset a top-level one to False
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="on an error, show the Python traceback too")
        p.set_defaults(_run=mod.run)
    return parser


def _command_named(argv: list[str]) -> str | None:
    """The command a command line runs: its first word that is not a flag (the top-level
    flags take no value), when that is a command's name; else None."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


#: ``--flag -1,0.1``: argparse takes a value starting with "-" for an option unless it is a
#: single negative number; such values are glued to their flag (``--flag=-1,0.1``) so that the
#: value's own check explains what is wrong with it.
_NEGATIVE_VALUE = re.compile(r"-\.?\d")


def _glue_negative_values(argv: list[str]) -> list[str]:
    out = []
    for tok in argv:
        if (out and _NEGATIVE_VALUE.match(tok) and out[-1].startswith("--")
                and "=" not in out[-1] and out[-1] != "--"):
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in text:
        text += f": {e.filename}"
    return text


#: Commands that pick up where an interrupted run stopped (caches, the sweep's store, verified
#: downloads); ``train`` does with ``--checkpoint``.
RESUMING = ("reproduce", "sweep", "fetch")


def _interrupted(args) -> str:
    """The one line after Ctrl-C (a new line first: the terminal's ^C, or a progress bar, may
    stand at the start of the current one). "Run the same command again to resume" was said
    after commands that resume nothing."""
    if args.command in RESUMING or getattr(args, "checkpoint", None):
        return ("\ninterrupted; completed work is kept (checkpoints and caches are written "
                "atomically). Run the same command again to resume.")
    if args.command == "train":
        return ("\ninterrupted; without --checkpoint nothing of the run is kept: give "
                "--checkpoint FILE, and the same command resumes after its last finished epoch.")
    return "\ninterrupted; no file was left half-written (each is written atomically)."


def _stdout_closed() -> int:
    """The exit status when stdout's reader went away (``refnet info --json M | head -1``):
    not the user's error, so no message, as Unix tools do. stdout is pointed at the null
    device first, so that the interpreter's last flush of what is still buffered does not
    fail again at shutdown."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout replaced by an object without a file descriptor
        pass
    return EXIT_BROKEN_PIPE


def _stdout_broken(error: BrokenPipeError) -> bool:
    """Whether ``error`` is stdout's reader gone, not a pipe or socket of the work's own (a
    worker's pipe, a Dask scheduler's connection), which is an error of the run.

    EPIPE, and stdout fails too: what is still buffered does not flush (a failed write leaves
    its bytes in the buffer), or, with nothing buffered (``python -u``), the system reports an
    error on stdout's descriptor (a pipe whose reader is gone polls as POLLERR)."""
    if error.errno != errno.EPIPE:  # ESHUTDOWN: a socket's, never stdout's
        return False
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):  # closed, or no descriptor: not a reader that went away
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # replaced by an object without one
        return False
    if not hasattr(select, "poll"):  # not POSIX: the flush above is all there is
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def main(argv=None) -> int:
    """Run ``refnet ARGV``; returns the exit status (``--help``/``--version`` exit with 0)."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # what is still buffered: a closed pipe fails here, not at shutdown
    except KeyboardInterrupt:  # before a command ran (_main has its own): while importing
        print("\ninterrupted before the command started; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout's reader went away (_main passes on no other), or stderr's, where no message
        # can go either
        return _stdout_closed()
    return status


def _main(argv) -> int:
    from ..errors import RefnetError, TrainingDiverged

    argv = _glue_negative_values(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser(_command_named(argv))
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"{e.prog}: error: {_one_line(e)} (see `{e.prog} --help`)", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "_run", None) is None:
        print(f"refnet: error: give a COMMAND, one of {', '.join(COMMANDS)} (see `refnet --help`)",
              file=sys.stderr)
        return EXIT_USAGE
    prog = f"refnet {args.command}"
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError as e:  # an OSError, but no error of the user's input
        if _stdout_broken(e):  # its reader went away: no message, see main()
            raise
        # a pipe or socket of the work's own broke (a worker's, a Dask scheduler's): the run
        # failed. Taken for a closed stdout before, it ended the command without a word
        return _report(prog, e, EXIT_FAILURE, debug=args.debug)
    # refnet's own errors, and what file opening and the array loaders raise on bad input
    except (RefnetError, ValueError, OSError) as e:
        return _report(prog, e, EXIT_FAILURE if isinstance(e, TrainingDiverged) else EXIT_USAGE,
                       debug=args.debug)


def _report(prog: str, error: BaseException, status: int, *, debug: bool) -> int:
    """One line on stderr for ``error`` (the traceback before it with ``--debug``); ``status``."""
    if debug:
        traceback.print_exc()
    print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
    return status
