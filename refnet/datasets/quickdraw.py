"""QuickDraw loader: a fixed, documented class list, ``per_class`` rows of each, a seeded
stratified train/test split, and normalisation constants computed from the training rows.

The authors' code has no QuickDraw (reference-code-facts.md), so the normalisation follows
their MNIST recipe, ``(x/255 - mean)/std``, with mean and std of x/255 over all pixels of the
training rows used; both are recorded in ``info["normalization"]`` and the same constants are
applied to the test split.
"""
from __future__ import annotations

import numpy as np

from ._cache import cache_root, sha256_file
from ._quickdraw_sources import PIXELS, QuickDrawError, cached_classes, check_per_class, \
    fetch_quickdraw, resolve_classes
from .dataset import Dataset, check_dtype, check_split
from .split import per_class_split


def _cached_record(names, per_class, cache_dir) -> dict:
    folder = cache_root(cache_dir) / "quickdraw"
    record = {"classes": cached_classes(folder)}
    bad = [n for n in names
           if n not in record["classes"] or record["classes"][n]["rows"] < per_class
           or not (folder / record["classes"][n]["file"]).is_file()
           or sha256_file(folder / record["classes"][n]["file"]) != record["classes"][n]["sha256"]]
    if bad:
        raise QuickDrawError(f"QuickDraw: fetch=False but the cache {folder} lacks verified "
                             f"files with {per_class} rows for {bad}. Run `python data/fetch.py "
                             f"quickdraw --per-class {per_class}` (with --classes) first.")
    return {"folder": str(folder), "cached": list(names),
            "classes": {n: record["classes"][n] for n in names}}


#: Rows per class fetched when ``per_class=None`` ("every row present"): the offline mirror's
#: smallest class files hold 1000 rows.
MIN_ROWS_ALL = 1000


def load_quickdraw(split: str = "train", classes="paper-20", per_class: int | None = 1000,
                   test_fraction: float = 0.2, seed: int = 0, cache_dir=None, mirror=None,
                   normalize: bool = True, fetch: bool = True, dtype=np.float64) -> Dataset:
    """QuickDraw bitmaps (Google, CC BY 4.0) as a Dataset.

    Parameters
    ----------
    split : "train" or "test"
    classes : "paper-20" (default), "mirror-19", "a,b,c" or a sequence of Google category names
        Label k is ``classes[k]``.
    per_class : int or None
        The first ``per_class`` rows (1 to ``MAX_PER_CLASS``, 1,000,000: more than any Google
        class file holds) of each class file (Google's row order) are used; ``None``
        uses every row of each cached class file (at least :data:`MIN_ROWS_ALL` are fetched;
        the offline mirror holds 1000 to 4960), so the classes may differ in size.
    test_fraction, seed : float, int
        In each class, a seeded random ``round(test_fraction * n_k)`` rows form the test
        split (``per_class_split``); the same seed gives the same split on every machine.

    Returns
    -------
    Dataset
        X of shape (n, 784), y int64 labels; ``info`` holds each class's source, sha256, rows
        used in this split, and the normalisation mean/std.
    """
    check_split(split)
    dt = check_dtype(dtype)
    names = resolve_classes(classes)
    check_per_class(per_class, none_ok=True)
    need = MIN_ROWS_ALL if per_class is None else per_class
    record = (fetch_quickdraw(names, need, cache_dir, mirror) if fetch
              else _cached_record(names, need, cache_dir))
    folder = cache_root(cache_dir) / "quickdraw"
    rows = []
    for name in names:
        path = folder / record["classes"][name]["file"]
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise QuickDrawError(f"{path}: cannot be read as a .npy array ({e}); delete it and "
                                 "fetch again") from e
        if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != PIXELS or a.shape[0] < need:
            raise QuickDrawError(f"{folder / record['classes'][name]['file']}: expected uint8 "
                                 f"(>= {need}, 784), got {a.dtype} {a.shape}; delete it and "
                                 "fetch again")
        rows.append(np.array(a[:per_class]))
    X_all = np.concatenate(rows)
    y_all = np.repeat(np.arange(len(names), dtype=np.int64), [len(r) for r in rows])
    train_idx, test_idx = per_class_split(y_all, test_fraction, rng=seed)
    x_train = X_all[train_idx].astype(np.float64) / 255.0
    mean, std = float(x_train.mean()), float(x_train.std())
    idx = train_idx if split == "train" else test_idx
    X, y = X_all[idx].astype(dt) / dt.type(255), y_all[idx]
    if normalize:
        X = (X - dt.type(mean)) / dt.type(std)
    info = {"dataset": "quickdraw", "split": split, "classes": list(names),
            "per_class": per_class, "test_fraction": test_fraction, "seed": seed,
            "n_samples": int(y.size), "class_counts": np.bincount(y, minlength=len(names)).tolist(),
            "folder": str(folder), "cached": record["cached"],
            "sources": {n: {k: record["classes"][n][k] for k in ("source", "sha256", "rows",
                                                                   "google_rows")}
                        for n in names},
            "normalization": ({"formula": "(x/255 - mean)/std", "mean": mean, "std": std,
                               "computed_from": "all pixels of the training rows used"}
                              if normalize else {"formula": "x/255"})}
    return Dataset(X, y, names, info)
