"""``refnet fetch``: the same as ``python data/fetch.py`` (see refnet/datasets/fetch.py).

The options are declared in refnet.datasets.fetch, which must run without numpy; here they
get the command line's checking types.
"""
import argparse

from refnet.datasets.fetch import DATASETS, HELP, run  # noqa: F401
from refnet.datasets.fetch import add_arguments as _add_arguments

from ._common import positive_float, positive_int, retype


def _fetchable(text: str) -> str:
    if text not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; fetchable: "
                                         f"{', '.join(DATASETS)} (Mackey-Glass is generated)")
    return text


def add_arguments(parser) -> None:
    _add_arguments(parser)
    retype(parser, "datasets", _fetchable)
    retype(parser, "--per-class", positive_int)
    retype(parser, "--timeout", positive_float)
