"""``refnet fetch``: the same as ``python data/fetch.py`` (see refnet/datasets/fetch.py).

The options are declared in refnet.datasets.fetch, which must run without numpy; here the
counts and times get the command line's checking types (the same rules, refnet's wording).
"""
import argparse

from refnet.datasets._quickdraw_sources import MAX_PER_CLASS
from refnet.datasets._sources import MAX_HOST_TIMEOUT
from refnet.datasets.fetch import DATASETS, run  # noqa: F401
from refnet.datasets.fetch import add_arguments as _add_arguments

from ._common import int_between, positive_float, retype


def add_arguments(parser) -> None:
    _add_arguments(parser)
    retype(parser, "--per-class", int_between(1, MAX_PER_CLASS, "QuickDraw rows per class; no "
                                                                "Google class file holds more"))
    retype(parser, "--timeout", _timeout)


def _timeout(text: str) -> float:
    """Seconds > 0 and at most a day (a socket refuses more than its time type holds)."""
    value = positive_float(text)
    if value > MAX_HOST_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_HOST_TIMEOUT:g} seconds (a day), "
                                         f"got {text!r}")
    return value
