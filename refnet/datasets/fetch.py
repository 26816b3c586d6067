"""``python data/fetch.py`` / ``refnet fetch``: fetch and verify datasets, then print a summary.

Standard library only (no numpy), so it runs on a fresh machine before anything is installed.
A second run finds the verified files in the cache and touches no network.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from . import _registry as reg
from ._cache import cache_root
from ._quickdraw_sources import (CLASS_SETS, MAX_PER_CLASS, QuickDrawError, fetch_quickdraw,
                                 resolve_classes)
from ._sources import HOST_TIMEOUT, MAX_HOST_TIMEOUT, FetchError, fetch_idx

HELP = "download and verify MNIST, Fashion-MNIST and QuickDraw into the cache"
DATASETS = ("mnist", "fashion-mnist", "quickdraw")


class _ScriptParser(argparse.ArgumentParser):
    """``data/fetch.py``'s parser: a usage error is one line and exit status 2, as for every
    ``refnet`` command (argparse prints its usage block first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _dataset(text: str) -> str:
    if text not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; fetchable: "
                                         f"{', '.join(DATASETS)} (Mackey-Glass is generated)")
    return text


def _checked(cast, ok, rule: str):
    """An argparse type: ``cast(text)``, refused unless ``ok`` (the refnet CLI's own types
    need numpy's imports, which this script may not have)."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {rule}: {text!r}") from None
        if not ok(value):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value
    return parse


#: QuickDraw's flags and their defaults.
_DEFAULTS = {"classes": "paper-20", "per_class": 1000}

_rows_per_class = _checked(int, lambda n: 1 <= n <= MAX_PER_CLASS,
                          f"an integer from 1 to {MAX_PER_CLASS}")
_seconds = _checked(float, lambda t: 0 < t <= MAX_HOST_TIMEOUT,
                    f"a number of seconds > 0 and at most {MAX_HOST_TIMEOUT:g} (a day)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("datasets", nargs="*", metavar="DATASET", default=list(DATASETS),
                        type=_dataset,
                        help=f"any of {', '.join(DATASETS)} (default: all). Mackey-Glass is "
                             "generated, not fetched.")
    parser.add_argument("--mirror", metavar="DIR",
                        help="a local folder tried first: the files themselves or a subfolder "
                             "per dataset (default: $REFNET_DATA_MIRROR)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where verified files are kept (default: $REFNET_DATA_DIR, else "
                             "$XDG_CACHE_HOME/refnet or ~/.cache/refnet)")
    # QuickDraw's two: defaults None (_DEFAULTS), so that one given without quickdraw is seen
    # and refused rather than ignored
    parser.add_argument("--classes",
                        help="QuickDraw classes: paper-20 (default), mirror-19, or a "
                             "comma-separated list of Google category names; 'paper-20' is "
                             + ", ".join(CLASS_SETS["paper-20"]))
    parser.add_argument("--per-class", type=_rows_per_class, metavar="N",
                        help=f"QuickDraw rows per class, at most {MAX_PER_CLASS} (no Google "
                             "class file holds more) (default 1000)")
    parser.add_argument("--timeout", type=_seconds, default=HOST_TIMEOUT, metavar="S",
                        help=f"seconds before an original host counts as unreachable "
                             f"(default {HOST_TIMEOUT:g})")


def _idx_row(spec, record) -> tuple:
    source = record["source"]
    if record["cached"]:
        source = f"cache (from {source})"
    s = record["samples"]
    return (spec.name, source, f"{s['train']} train + {s['test']} test",
            f"ok ({len(record['files'])} files, sha256)")


def _quickdraw_row(record) -> tuple:
    classes = record["classes"]
    sources = sorted({c["source"] for c in classes.values()})
    cached = len(record["cached"]) == len(classes)
    source = (f"cache (from {' + '.join(sources)})" if cached else " + ".join(sources))
    from_host = sum(c["source"].startswith("host") for c in classes.values())
    check = (f"ok ({len(classes) - from_host} manifest sha256"
             + (f", {from_host} computed: Google publishes none)" if from_host else ")"))
    return ("quickdraw", source, f"{len(classes)} classes x {record['per_class']} rows", check)


def format_table(rows) -> str:
    """Rows of (dataset, source, samples, checksum) as an aligned plain-text table."""
    head = ("dataset", "source used", "samples", "checksum")
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(4)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])


def check_mirror(mirror) -> None:
    """Refuse a ``--mirror`` that is no folder: it was tried, found lacking every file, and
    the fetch went on to the hosts and registries (or, with the files cached, it was never
    looked at), so a mistyped mirror went unnoticed."""
    from pathlib import Path

    from ..paths import NO_SUCH_FILE, file_problem, short_path

    if mirror is None:
        return
    problem = file_problem(Path(mirror).expanduser())  # one stat: a name too long is a message
    if problem != "is a folder, not a file":
        what = {None: "a file, not a folder", NO_SUCH_FILE: "no such folder"}.get(problem, problem)
        raise ConfigError(f"--mirror: {short_path(mirror)}: {what}; give the folder holding "
                          "the dataset files (or a subfolder per dataset)")


def _quickdraw_options(args) -> tuple:
    """``(classes, per_class)``, checked against the datasets: a dataset named twice (it was
    fetched once, without a word) and QuickDraw's flags without quickdraw (ignored) are usage
    errors. The refnet CLI's ``repeated`` needs numpy's imports, which this script may not
    have: the same test is spelled here."""
    twice = sorted({d for d in args.datasets if args.datasets.count(d) > 1})
    if twice:
        raise ConfigError(f"DATASET: {', '.join(twice)} given twice; name each dataset once")
    given = [f"--{k.replace('_', '-')}" for k in _DEFAULTS if getattr(args, k) is not None]
    if given and "quickdraw" not in args.datasets:
        raise ConfigError(f"{'/'.join(given)}: QuickDraw's, no effect on "
                          f"{', '.join(args.datasets)}; add quickdraw to the datasets, or leave "
                          f"out {'/'.join(given)}")
    return tuple(_DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)
                 for k in _DEFAULTS)


def run(args) -> int:
    """Fetch ``args.datasets``; 0, or 1 when one failed. A usage error (an unknown dataset, an
    unusable cache folder) is a :class:`~refnet.errors.ConfigError`, raised before any fetch;
    the caller prints it as one line under its own name."""
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        raise ConfigError(f"DATASET: unknown {unknown}; expected any of {', '.join(DATASETS)}")
    classes, per_class = _quickdraw_options(args)
    resolve_classes(classes, "--classes")  # a usage error, not a failed fetch
    check_mirror(args.mirror)
    rows, failed = [], 0
    root = cache_root(args.cache_dir)
    print(f"cache: {root}", file=sys.stderr)
    for name in args.datasets:
        try:
            if name == "quickdraw":
                rec = fetch_quickdraw(classes, per_class, args.cache_dir, args.mirror,
                                      args.timeout)
                rows.append(_quickdraw_row(rec))
            else:
                spec = reg.IDX_DATASETS[name]
                rows.append(_idx_row(spec, fetch_idx(spec, args.cache_dir, args.mirror,
                                                          timeout=args.timeout)))
        except (FetchError, QuickDrawError, ValueError, OSError) as e:
            failed += 1
            print(f"\nERROR {e}\n", file=sys.stderr)
            rows.append((name, "none (see the error above)", "-", "FAILED"))
    print(format_table(rows))
    return 1 if failed else 0


def main(argv=None) -> int:
    """``python data/fetch.py``: usage errors are one line on stderr and exit status 2."""
    parser = _ScriptParser(prog="data/fetch.py", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
