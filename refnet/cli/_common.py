"""Parser helpers shared by the subcommands, defined once and taken from the library's constants.

Noise types come from :data:`refnet.noise.NOISE_TYPES`, noise placements from
:data:`refnet.noise.NOISE_PRESETS`, dataset names from :data:`refnet.datasets.DATASET_NAMES`;
no subcommand spells these lists out. The ``argparse`` types here raise
``argparse.ArgumentTypeError``, which the parser turns into one line naming the flag.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..datasets import DATASET_NAMES
from ..errors import ConfigError, DataError
from ..noise import NOISE_PRESETS, NOISE_TYPES
from ..paths import file_problem, short_path

# the exit statuses of every subcommand (their own module: the command's entry reads them
# before it imports anything heavy)
from ._status import (EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK,  # noqa: F401
                      EXIT_USAGE)

#: Where noise can act; "none" (no noisy layer) is not a choice where the command measures noise.
NOISY_PRESETS = tuple(p for p in NOISE_PRESETS if p != "none")


def variance(text: str) -> float:
    """A noise VARIANCE (not a std): a finite number >= 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}; give a noise variance "
                                         "such as 0.01") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"variance must be finite, got {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"variance must be >= 0, got {v:g} (a noise variance, "
                                         "not a std; 0 means no noise)")
    return v


def variance_list(text: str) -> tuple[float, ...]:
    """Comma-separated noise variances, e.g. ``0.01,0.1,1`` (at least one, each once)."""
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"need comma-separated variances such as 0.01,0.1,1, "
                                         f"got {text!r}")
    first = {}  # variance -> how it was first written (0.1 and 1e-1 are one variance)
    for s in items:
        v = variance(s)
        if v in first:
            raise argparse.ArgumentTypeError(f"{v:g} given twice ({first[v]!r}, then {s!r}); "
                                             "give each variance once")
        first[v] = s
    return tuple(first)


def variances_spec(text: str, flag: str):
    """A :class:`~refnet.noise.NoiseSpec` from VARIANCES such as ``add_unc=0.01,mul_cor=0.001``,
    each noise type once; anything else is a :class:`ConfigError` naming ``flag`` and the item
    at fault (the messages were Python's: "dictionary update sequence element #0 has length
    1", "NoiseSpec.__init__() got an unexpected keyword argument 'bogus'")."""
    from ..noise import NoiseSpec

    lead = f"{flag}: expected VARIANCES like 'add_unc=0.01,mul_cor=0.001', got {text!r}"
    values, first = {}, {}  # noise type -> its variance, and the item that gave it
    for item in (item.strip() for item in text.split(",")):
        key, _, value = (part.strip() for part in item.partition("="))
        if "=" not in item or "=" in value:
            raise ConfigError(f"{lead} ({item!r} is not one TYPE=VARIANCE)")
        if key not in NOISE_TYPES:
            raise ConfigError(f"{lead} (unknown noise type {key!r}; the types are "
                              f"{', '.join(NOISE_TYPES)})")
        if key in first:  # a dict would keep the last one without a word
            raise ConfigError(f"{flag}: {key} given twice ({first[key]!r}, then {item!r}); give "
                              "each noise type once")
        try:
            values[key], first[key] = float(value), item
        except ValueError:
            raise ConfigError(f"{lead} ({key}: not a number: {value!r})") from None
    try:
        return NoiseSpec(**values)
    except ValueError as e:  # a negative or non-finite variance
        raise ConfigError(f"{lead} ({e})") from None


def repeated(items) -> list:
    """The items a list names more than once, sorted: a flag's list that names one thing twice
    is refused (it ran, added or drew that thing twice, without a word)."""
    return sorted({x for x in items if items.count(x) > 1})


def noise_type_list(text: str) -> tuple[str, ...]:
    """Comma-separated noise types, a subset of ``NOISE_TYPES``, each named once."""
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [t for t in items if t not in NOISE_TYPES]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown noise type(s) {', '.join(bad) or repr(text)}; "
                                         f"choose from {','.join(NOISE_TYPES)}")
    twice = repeated(items)
    if twice:   # a type twice would be measured twice and shown as two curves of one name
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} given twice; name each noise type "
                                         "once")
    return items


def dataset_name(text: str) -> str:
    """A dataset name from refnet.datasets' registry (case-insensitive)."""
    name = text.lower()
    if name not in DATASET_NAMES:
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose one of "
                                         f"{', '.join(DATASET_NAMES)}")
    return name


def activation(text: str) -> str:
    """An activation of :mod:`refnet.activations` (``sigmoid``, ``shifted_sigmoid(alpha=4)``
    ...), returned as typed. Checked here, at the flag: the loader that uses it only knew the
    activation was "hidden/output"."""
    from ..activations import get_activation

    try:
        get_activation(text)
    except ValueError as e:  # its message lists the names; the flag leads instead of its own
        raise argparse.ArgumentTypeError(str(e).removeprefix("activation: ")) from None
    return text


def _integer(text: str, low: int, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < low:
        raise argparse.ArgumentTypeError(f"must be >= {low} ({what}), got {n}")
    return n


def positive_int(text: str) -> int:
    """An integer >= 1 (a count of samples, epochs, repetitions ...)."""
    return _integer(text, 1, "a count")


#: The most worker threads or processes a command starts (each costs memory up front).
MAX_WORKERS = 1024


def check_workers(workers: int | None, per_worker: str = "") -> None:
    """``--workers`` against the cores this process may use: more worker processes than cores
    only add processes, memory and time-slicing (--workers 1024 on 2 cores started 1024
    processes). ``per_worker`` says what each one runs, for the message."""
    if workers is None:
        return
    from ..cores import available_cores

    cores = available_cores()
    if workers > cores:
        raise ConfigError(f"--workers {workers}: this machine lets refnet use {cores} "
                          f"core(s){per_worker}; give at most {cores}, or leave --workers out "
                          "for all of them")


def int_between(low: int, high: int, what: str):
    """An argparse type: an integer in ``low..high`` (``what`` says what it counts)."""
    def parse(text: str) -> int:
        n = _integer(text, low, what)
        if n > high:
            raise argparse.ArgumentTypeError(f"must be <= {high} ({what}), got {n}")
        return n
    return parse


def count(text: str) -> int:
    """An integer >= 0."""
    return _integer(text, 0, "a count; 0 means none")


def seed(text: str) -> int:
    """A random seed: an integer in ``0..MAX_SEED`` (numpy's seeds are non-negative; 64 bits
    is what a training config, and so a checkpoint, holds: :data:`refnet.train.MAX_SEED`)."""
    from ..train import MAX_SEED

    return int_between(0, MAX_SEED, "a random seed, 0 to 2**64 - 1")(text)


def positive_int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1, e.g. layer sizes ``300,300``."""
    return tuple(positive_int(s.strip()) for s in text.split(",") if s.strip())


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (a regularization strength ...)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, a time-out ...)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return v


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (an error rate ...)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < v < 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text!r}")
    return v


def add_noise_type(p: argparse.ArgumentParser, flag: str = "--noise-type", **kw) -> None:
    """A single noise type, one of ``NOISE_TYPES``."""
    p.add_argument(flag, choices=NOISE_TYPES, **kw)


def add_noise_preset(p: argparse.ArgumentParser, flag: str = "--preset", *,
                     default: str = "duque") -> None:
    """Which layers are noisy: a preset of :func:`refnet.noise.noise_config`."""
    p.add_argument(flag, default=default, choices=NOISY_PRESETS,
                   help=f"noisy layers: duque = after each hidden activation, semenova = every "
                        f"layer incl. input and output (default {default})")


def existing_file(what: str):
    """An argparse type: the path of an existing file; ``what`` says which file is wanted."""
    def check(text: str) -> Path:
        problem = file_problem(text)  # not is_file: a traceback from argparse for a long name
        if problem is None:
            return Path(text)
        raise argparse.ArgumentTypeError(f"{problem}: {short_path(text)} (give {what})")
    check.__name__ = "file"
    return check


def retype(p: argparse.ArgumentParser, name: str, type_) -> None:
    """Give the option ``name`` (a flag, or a positional's dest), declared elsewhere, the
    checking type ``type_``."""
    action = p._option_string_actions.get(name) or next(a for a in p._actions if a.dest == name)
    action.type = type_


# --- the user's own data files --------------------------------------------------------------

def read_npz_arrays(path, flag: str, required=(), optional=(), *, named_by=None) -> dict:
    """The arrays ``required`` (all) and ``optional`` (those present) of a user's .npz file.

    Read by :func:`refnet.npzfile.read_arrays` (sizes and headers checked before any data is
    read, pickled arrays refused); any failure is a :class:`DataError` naming ``flag``, the
    file and what to do. ``named_by`` maps a required array's name to the flag the user
    named it with (e.g. ``{"labels": "--y-key"}``): a file without that array is then that
    flag's error, listing the arrays the file has.
    """
    from ..npzfile import MissingArrays, read_arrays

    try:
        return read_arrays(path, tuple(required), error=DataError, optional=tuple(optional),
                           fix=f"write it with numpy.savez, arrays "
                               f"{', '.join((*required, *optional))}")
    except DataError as e:  # lead with the flag, as every other CLI message does
        cause = e.__cause__
        asked = ([n for n in cause.missing if n in (named_by or {})]
                 if isinstance(cause, MissingArrays) else [])
        if asked:
            n = asked[0]
            raise DataError(f"{named_by[n]} {n}: {path} has no array {n!r} (its arrays: "
                            f"{', '.join(cause.has[:8]) or 'none'}); give {named_by[n]} one of "
                            "those") from None
        raise DataError(f"{flag}: {e}") from None


def check_classes(data, flag: str, name: str) -> None:
    """Refuse a named dataset without classes (Mackey-Glass's targets are real numbers): the
    commands classify, and training on it failed after loading with "y: class labels must be
    integers", naming no flag."""
    if hasattr(data, "classes") and not data.classes:
        raise DataError(f"{flag} {name}: its targets are real numbers (a regression dataset), "
                        "not class labels; this command needs a classification dataset such "
                        "as mnist")


def check_rows(X, y, flag: str, path, names=("X", "y"), *, n_features: int | None = None,
               n_classes: int | None = None, flat: bool = True):
    """Refuse non-numeric or non-finite inputs, bad class labels, labels of another length.

    ``X`` must hold rows, ``(n_samples, n_features)`` (``flat=False``: or
    ``(n_samples, ...)``, each row flattened), at least one of each; ``n_features`` and
    ``n_classes`` (those of a model) bound the row width and the labels. Row numbers are those
    of the user's file (counting from 0, before any split or shuffle).
    """
    import numpy as np

    xname, yname = names
    X = np.asarray(X)
    want = "(n_samples, n_features)" if flat else "(n_samples, ...)"
    if X.dtype.kind not in "fiu" or X.ndim < 2 or (flat and X.ndim != 2):
        raise DataError(f"{flag}: {path}: array {xname} must be numeric {want}, got dtype "
                        f"{X.dtype}, shape {X.shape}"
                        + ("; one feature per row is shape (n, 1)" if X.ndim == 1 else ""))
    width = int(np.prod(X.shape[1:]))
    if X.size == 0:
        raise DataError(f"{flag}: {path}: array {xname} has shape {X.shape}, no data; give at "
                        "least one row of at least one feature")
    if n_features is not None and width != n_features:
        raise DataError(f"{flag}: {path}: array {xname} has {width} features per row (shape "
                        f"{X.shape}), the model takes {n_features}")
    from ..model import all_finite

    if not all_finite(X):   # one sum; the rows are looked at only when it is not finite
        _first_bad_row(np.isfinite(X.reshape(len(X), -1)).all(axis=1), flag, path, xname,
                       "holds NaN or inf")
    if y is None:
        return
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise DataError(f"{flag}: {path}: {xname} has {len(X)} rows but {yname} has shape "
                        f"{y.shape}; give one class label per row")
    if y.dtype.kind not in "fiu":
        raise DataError(f"{flag}: {path}: labels {yname} must be integers, got dtype {y.dtype}")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(y) & (y >= 0) & (y == np.round(y)) if y.dtype.kind == "f" else y >= 0
    _first_bad_row(ok, flag, path, yname, "is not a class label (an integer >= 0)")
    if n_classes is not None:
        _first_bad_row(y < n_classes, flag, path, yname,
                       f"is not a class of the model (labels 0..{n_classes - 1})")


def enough_rows(n: int, rows: int, *, flag: str, source: str, a_file: bool = True) -> None:
    """Refuse ``flag n`` asking for more rows than ``source`` has: taking the first rows of a
    shorter source in silence reported a result on 5 inputs as one on the 100 asked for."""
    if rows < n:
        raise ConfigError(f"{flag} {n}: {source} has only {rows} rows; give {flag} {rows} or "
                          "fewer" + (", or a file with more rows" if a_file else ""))


def _first_bad_row(ok, flag, path, name, problem):
    if not ok.all():
        row = int(ok.argmin())
        raise DataError(f"{flag}: {path}: {name}[{row}] (row {row} of the file, counting from 0) "
                        f"{problem}; fix or remove that row")
