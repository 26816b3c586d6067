"""``refnet fetch``: the same as ``python data/fetch.py`` (see refnet/datasets/fetch.py).

The options are declared in refnet.datasets.fetch, which must run without numpy; here the
counts and times get the command line's checking types (the same rules, refnet's wording).
"""
from refnet.datasets._quickdraw_sources import MAX_PER_CLASS
from refnet.datasets.fetch import DATASETS, HELP, run  # noqa: F401
from refnet.datasets.fetch import add_arguments as _add_arguments

from ._common import int_between, positive_float, retype


def add_arguments(parser) -> None:
    _add_arguments(parser)
    retype(parser, "--per-class", int_between(1, MAX_PER_CLASS, "QuickDraw rows per class; no "
                                                                "Google class file holds more"))
    retype(parser, "--timeout", positive_float)
