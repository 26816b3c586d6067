"""Training checkpoints: written atomically after every epoch, read back only if intact.

A checkpoint is an ``.npz`` (see :mod:`refnet.io`) holding ``W1, b1, ...``, the optimizer
state as ``opt/<key>`` arrays and a metadata object with the architecture, the training
settings, the epochs done, the history and a ``sha256`` over all of it
(:func:`refnet.npzfile.content_sha256`). :func:`load_checkpoint` validates it like a model
file (sizes and headers before data, strict metadata types, finite values) and then checks the
hash, so a truncated, bit-flipped or hand-edited checkpoint is refused rather than resumed
from. A refused checkpoint raises :class:`~refnet.errors.CheckpointError` and is left on disk
untouched: training does not start, and the message says to delete or move it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import __version__
from .errors import CheckpointError
from .io import expected_arrays, save_npz_atomic, verify_sha256
from .model import Architecture, Params
from .npzfile import (WANT_LIST, WANT_OBJECT, WANT_SHA256, BadContent, NpzReader, check_fields,
                      file_errors, want_int, want_str)

__all__ = ["save_checkpoint", "load_checkpoint", "data_fingerprint", "CHECKPOINT_KEYS"]

#: Every key of a checkpoint's metadata and what it must be (no other keys are allowed).
CHECKPOINT_KEYS = {"format": want_str(choices=("refnet-checkpoint",)),
                   "refnet_version": want_str(64), "architecture": WANT_OBJECT,
                   "config": WANT_OBJECT, "epochs_done": want_int(0, 10**9),
                   "history": WANT_LIST, "dtype": want_str(choices=("float32", "float64")),
                   "sha256": WANT_SHA256, "best_epoch": want_int(1, 10**9),
                   "data_sha256": WANT_SHA256, "start_sha256": WANT_SHA256}
#: ``best_epoch`` (early stopping), ``data_sha256`` (the training data's
#: :func:`data_fingerprint`) and ``start_sha256`` (the starting parameters' fingerprint) are
#: optional: the last two are absent in checkpoints of older refnet versions.
_OPTIONAL = ("best_epoch", "data_sha256", "start_sha256")
_REQUIRED = tuple(k for k in CHECKPOINT_KEYS if k not in _OPTIONAL)


def data_fingerprint(*arrays) -> str:
    """sha256 over each array's dtype, shape and bytes: which training data (or starting
    parameters) a checkpoint belongs to (a resume on other ones is refused)."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _fix(path) -> str:
    return (f"delete or move {path} to start training afresh, or pass another checkpoint path "
            "(refnet leaves a refused checkpoint untouched)")


def save_checkpoint(path, arch: Architecture, params: Params, opt_state: dict, config,
                    epoch_done: int, history, best=None, data: str | None = None, *,
                    start: str | None = None) -> Path:
    """Write the state after ``epoch_done`` epochs atomically, with its content hash.

    ``best = (epoch, arrays)``: early stopping's best epoch so far and its parameter arrays
    (W1, b1, ...), stored as ``best/0``, ``best/1``, ... ``data``: the training data's
    :func:`data_fingerprint`, stored as ``data_sha256``; ``start``: the starting parameters'
    (the arrays the run began from, epoch 0), stored as ``start_sha256``.
    """
    arrays = {}
    for l, (w, b) in enumerate(zip(params.W, params.b), start=1):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    for k, v in opt_state.items():
        arrays[f"opt/{k}"] = v
    for i, a in enumerate(best[1] if best else ()):
        arrays[f"best/{i}"] = a
    meta = {"format": "refnet-checkpoint", "refnet_version": __version__,
            "architecture": arch.as_dict(), "config": config.as_dict(),
            "epochs_done": int(epoch_done), "history": list(history), "dtype": str(params.dtype)}
    if best:
        meta["best_epoch"] = int(best[0])
    if data is not None:
        meta["data_sha256"] = data
    if start is not None:
        meta["start_sha256"] = start
    return save_npz_atomic(path, arrays, meta, sha256=True)


def load_checkpoint(path, arch: Architecture, config, template: list,
                    with_best: bool = False, data: str | None = None, *,
                    start: str | None = None, start_from: str | None = None) -> tuple:
    """``(params, opt_state, epochs_done, history)`` from a checkpoint of this run (and, with
    ``with_best``, early stopping's ``(best_epoch, arrays)`` or None as a fifth item).

    ``config`` is the run's :class:`~refnet.train.TrainConfig` (the checkpoint must have been
    written with the same settings, ``epochs`` aside, and hold at most ``config.epochs``
    epochs: one with more was returned as it was, a model trained longer than asked and
    recorded as trained ``config.epochs`` epochs); ``template`` the run's parameter arrays
    (W1, b1, ...), whose fresh optimizer state fixes the expected ``opt/...`` arrays.
    ``data``: this run's :func:`data_fingerprint`; a checkpoint that records another one is
    refused (one without a record, from an older refnet, is taken as it is). ``start``: the
    fingerprint of this run's starting parameters, checked the same way; ``start_from`` says
    where they come from (e.g. ``--init-from model.npz``), for the message.
    Raises :class:`~refnet.errors.CheckpointError` naming the file and what to do.
    """
    path = Path(path)
    with file_errors(path, CheckpointError, _fix(path)), NpzReader(path) as z:
        meta = z.metadata()
        if meta.get("format") == "refnet-model":  # not "delete or move it": it is a model
            raise CheckpointError(f"{path}: a refnet model, not a training checkpoint; pass "
                                  "another checkpoint path (to fine-tune this model, give it "
                                  "as the initial parameters: refnet train --init-from)")
        check_fields(meta, CHECKPOINT_KEYS, "metadata", required=_REQUIRED)
        if Architecture.from_dict(meta["architecture"]) != arch:
            raise BadContent("checkpoint: holds a different architecture")
        saved, mine = dict(meta["config"]), config.as_dict()
        if type(saved.pop("epochs", None)) is not int:
            raise BadContent("checkpoint: its config lacks an integer 'epochs'")
        mine.pop("epochs")
        if json.dumps(saved, sort_keys=True) != json.dumps(mine, sort_keys=True):
            raise BadContent("checkpoint: was written with other settings")
        if meta["epochs_done"] > config.epochs:  # resumed, it gave a longer-trained model
            raise BadContent(f"checkpoint: {meta['epochs_done']} epochs done, more than the "
                             f"{config.epochs} this run trains; ask for at least "
                             f"{meta['epochs_done']} epochs to resume it")
        run_dtype = str(np.asarray(template[0]).dtype)
        if meta["dtype"] != run_dtype:
            raise BadContent(f"checkpoint: holds {meta['dtype']} parameters, this run trains "
                             f"{run_dtype}")
        names = expected_arrays(arch, z.headers, meta["dtype"])
        fresh = {f"opt/{k}": v for k, v in config.make_optimizer().init(
            [np.zeros(t.shape, np.dtype(meta["dtype"])) for t in template]).items()}
        n_best = 2 * arch.n_layers if "best_epoch" in meta else 0
        best_names = {f"best/{i}" for i in range(n_best)}
        for i, t in enumerate(template[:n_best]):
            h = z.headers.get(f"best/{i}")
            if h is None or h.shape != np.shape(t):
                raise BadContent(f"array best/{i} is missing or not of shape {np.shape(t)}")
        _check_opt_headers(z.headers, fresh, set(names) | best_names)
        arrays = {k: z.array(k) for k in z.headers if k != "metadata"}
        verify_sha256(arrays, meta)
        _check_history(meta["history"], meta["epochs_done"])
        for k, a in arrays.items():
            if not np.isfinite(a).all():
                raise BadContent(f"array {k} holds NaN or inf")
        if (arrays["opt/step"] < 0).any():
            raise BadContent("array opt/step holds a negative step count")
        # after the content checks: an edited or damaged checkpoint is that, not "other data"
        if data is not None and meta.get("data_sha256", data) != data:
            raise BadContent("checkpoint: was written while training on other data (the "
                             "sha256 of the training arrays differs); resume with the data it "
                             "was written for")
        if start is not None and meta.get("start_sha256", start) != start:
            raise BadContent(_other_start(start_from))
    L = arch.n_layers
    params = Params(tuple(arrays[f"W{l}"] for l in range(1, L + 1)),
                    tuple(arrays[f"b{l}"] for l in range(1, L + 1)))
    opt_state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    out = (params, opt_state, meta["epochs_done"], tuple(meta["history"]))
    if not with_best:
        return out
    best = ((meta["best_epoch"], [arrays[f"best/{i}"] for i in range(n_best)])
            if n_best else None)
    return out + (best,)


def _other_start(start_from: str | None) -> str:
    """A checkpoint started from other parameters: resumed, it would continue a run this one
    never was (fine-tuning model A, its checkpoint resumed under --init-from B)."""
    this = f"{start_from}; " if start_from else ""
    return (f"checkpoint: was started from other parameters than this run starts from ({this}"
            "the sha256 of the starting arrays differs); resume it with the ones it was "
            "started from (the same --init-from model, or none if it had none)")


def _check_opt_headers(headers: dict, fresh: dict, weights: set) -> None:
    """The ``opt/...`` members must be exactly the fresh state's keys, shapes and dtypes."""
    have = set(headers) - weights - {"metadata"}
    if have != set(fresh):
        raise BadContent(f"optimizer state does not fit the configured optimizer (missing "
                         f"{sorted(set(fresh) - have)[:4]}, unexpected {sorted(have - set(fresh))[:4]})")
    for k, v in fresh.items():
        h = headers[k]
        if h.shape != v.shape or h.dtype.newbyteorder("=") != v.dtype:
            raise BadContent(f"array {k} is {h.dtype} of shape {h.shape}, expected {v.dtype} "
                             f"of shape {v.shape}")


def _check_history(history: list, epochs_done: int) -> None:
    if len(history) != epochs_done:
        raise BadContent(f"history has {len(history)} entries for {epochs_done} epochs done")
    for i, entry in enumerate(history, start=1):
        if not isinstance(entry, dict) or entry.get("epoch") != i or not all(
                type(v) in (int, float) for v in entry.values()):
            raise BadContent(f"history entry {i} is not an object of numbers for epoch {i}")
