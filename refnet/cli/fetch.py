"""``refnet fetch``: the same as ``python data/fetch.py`` (see refnet/datasets/fetch.py)."""
from refnet.datasets.fetch import HELP, add_arguments, run  # noqa: F401
