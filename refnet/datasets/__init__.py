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

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
