"""MNIST and Fashion-MNIST loaders, normalised exactly as the authors' code.

(x/255 - 0.1305)/0.3081 for MNIST (sic: 0.1305, not the usual 0.1307) and
(x/255 - 0.2860)/0.3530 for Fashion-MNIST (reference-code-facts.md).
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from . import _registry as reg
from ._cache import NotCached, cache_root, read_provenance, verified
from ._sources import fetch_idx
from .dataset import Dataset, check_dtype, check_split
from .idx import read_images, read_labels

#: dataset -> (mean, std) of x/255, as in the authors' code
NORMALIZATION = {"mnist": (0.1305, 0.3081), "fashion-mnist": (0.2860, 0.3530)}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


def _load_idx(spec, split, cache_dir, normalize, fetch, dtype, mirror, classes) -> Dataset:
    check_split(split)
    dt = check_dtype(dtype)
    folder = cache_root(cache_dir) / spec.name
    if fetch:
        record = fetch_idx(spec, cache_dir, mirror)
    else:
        for rf in spec.files:
            if not verified(folder / rf.filename, rf.sha256):
                raise NotCached(
                    f"{spec.title}: {folder / rf.filename} is missing or fails its sha256 check, "
                    f"and fetch=False. Run `python data/fetch.py {spec.name}` first.")
        source = (read_provenance(folder) or {}).get("source")
        record = {"source": source if isinstance(source, str) else "cache (no record)",
                  "cached": True}
    images, labels = spec.files[:2] if split == "train" else spec.files[2:]
    X = read_images(folder / images.filename)
    y = read_labels(folder / labels.filename, n_classes=10)
    if X.shape[0] != y.shape[0]:
        raise DataError(f"{folder}: {X.shape[0]} images but {y.shape[0]} labels in the "
                         f"{split} split; delete the folder and fetch again")
    counts = np.bincount(y, minlength=10)
    mean, std = NORMALIZATION[spec.name]
    X = X.astype(dt) / dt.type(255)
    if normalize:
        X = (X - dt.type(mean)) / dt.type(std)
    info = {"dataset": spec.name, "split": split, "source": record.get("source"),
            "cached": record.get("cached"), "folder": str(folder),
            "files": {f.filename: f.sha256 for f in (images, labels)},
            "n_samples": int(y.size), "class_counts": counts.tolist(),
            "normalization": ({"formula": "(x/255 - mean)/std", "mean": mean, "std": std}
                              if normalize else {"formula": "x/255"})}
    return Dataset(X, y, classes, info)


def load_mnist(split: str = "train", cache_dir=None, normalize: bool = True, fetch: bool = True,
               dtype=np.float64, mirror=None) -> Dataset:
    """MNIST images and labels (LeCun et al. 1998).

    Returns a Dataset with X of shape (60000 or 10000, 784) and y int64 digits 0..9. ``fetch``
    runs the source chain if the verified files are not cached yet (no network when they are).
    """
    return _load_idx(reg.MNIST, split, cache_dir, normalize, fetch, dtype, mirror,
                     tuple(str(d) for d in range(10)))


def load_fashion_mnist(split: str = "train", cache_dir=None, normalize: bool = True,
                       fetch: bool = True, dtype=np.float64, mirror=None) -> Dataset:
    """Fashion-MNIST images and labels (Xiao et al. 2017); shapes as ``load_mnist``."""
    return _load_idx(reg.FASHION_MNIST, split, cache_dir, normalize, fetch, dtype, mirror,
                     FASHION_CLASSES)
