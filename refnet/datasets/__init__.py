"""Datasets: fetching with verified sources and a cache, and loaders returning numpy arrays.

Fetching (``fetch``, ``_sources``, ``_quickdraw_sources``, ``_cache``, ``idx.read_header``)
needs only the standard library; the loaders need numpy. So that ``python data/fetch.py``
works before numpy is installed, this package imports the loaders lazily, on first use.
See docs/datasets.md.

===========================  ========================================================
``load_mnist``               MNIST, (x/255 - 0.1305)/0.3081 (the authors' constants)
``load_fashion_mnist``       Fashion-MNIST, (x/255 - 0.2860)/0.3530
``load_quickdraw``           QuickDraw, 20 fixed classes (or the 19 mirrored ones)
``load_mackey_glass``        Mackey-Glass next-point windows (generated)
``train_val_split``          seeded 48k/12k split, as the authors' (unseeded) one
``Dataset``                  X, y, classes, info (provenance)
``load_dataset``             any of the above by name ("mnist", "fashion-mnist", ...)
===========================  ========================================================
"""
from __future__ import annotations

import importlib

_LAZY = {
    "Dataset": ".dataset",
    "load_mnist": ".mnist",
    "load_fashion_mnist": ".mnist",
    "load_quickdraw": ".quickdraw",
    "load_mackey_glass": ".mackey_glass",
    "train_val_split": ".split",
    "PAPER_20": "._quickdraw_sources",
    "MIRROR_19": "._quickdraw_sources",
}

__all__ = sorted(_LAZY) + ["DATASET_NAMES", "load_dataset"]

#: name -> loader, for :func:`load_dataset` and the command line.
_LOADERS = {"mnist": "load_mnist", "fashion-mnist": "load_fashion_mnist",
            "quickdraw": "load_quickdraw", "mackey-glass": "load_mackey_glass"}
DATASET_NAMES = tuple(_LOADERS)


def load_dataset(name: str, split: str = "train", **options):
    """Load a dataset by name (``DATASET_NAMES``); ``options`` go to its loader.

    An unknown name or an option the loader does not take is a
    :class:`~refnet.errors.ConfigError` naming it and what is known.
    """
    import inspect

    from ..errors import ConfigError

    loader = _LOADERS.get(name) if isinstance(name, str) else None
    if loader is None:
        raise ConfigError(f"dataset: unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    function = __getattr__(loader)
    known = [p for p in inspect.signature(function).parameters if p != "split"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"{name}: unknown option(s) {', '.join(unknown)}; the loader takes "
                          f"{', '.join(known)}")
    return function(split, **options)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
