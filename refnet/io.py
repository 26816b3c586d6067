"""Saving and loading models: ``.npz`` arrays plus JSON metadata, never pickle.

A model file holds ``W1, b1, ..., WL, bL`` (``W`` of shape ``(n_out, n_in)``) and one
``metadata`` entry: a JSON string with the architecture, the refnet version and whatever the
caller adds (noise spec used in training, seed, data provenance, history). Files are written
atomically (temporary file, flush, fsync, rename), so an interrupted write never leaves a
half-written model under the final name.

PyTorch interchange (``state_dict`` key names, ``.safetensors``) is :mod:`refnet.statedict`;
``to_state_dict``, ``from_state_dict`` and ``STATE_DICT_NAMINGS`` are re-exported here.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .model import Architecture, Params, check_params

__all__ = ["save_model", "load_model", "atomic_write_bytes", "save_npz_atomic", "load_npz",
           "to_state_dict", "from_state_dict", "STATE_DICT_NAMINGS", "ModelFileError"]


class ModelFileError(ValueError):
    """A model or checkpoint file is missing, truncated, corrupted or not a refnet file."""


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def save_npz_atomic(path, arrays: dict, metadata: dict) -> Path:
    """Save ``arrays`` and a JSON ``metadata`` dict as one ``.npz``, atomically."""
    if "metadata" in arrays:
        raise ValueError("arrays: the key 'metadata' is reserved")
    buf = io.BytesIO()
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    np.savez(buf, **payload)
    return atomic_write_bytes(path, buf.getvalue())


def load_npz(path) -> tuple[dict, dict]:
    """Load a file written by :func:`save_npz_atomic`: ``(arrays, metadata)``.

    Raises :class:`ModelFileError` naming the file for a missing, truncated or corrupted file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}  # reading every member checks its CRC-32
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ModelFileError(f"{path}: cannot be read ({e}); the file is truncated or "
                             "corrupted: delete it and save or train again") from e
    if "metadata" not in arrays:
        raise ModelFileError(f"{path}: not a refnet file (no 'metadata' entry)")
    try:
        metadata = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({e})") from e
    return arrays, metadata


def save_model(path, arch: Architecture, params: Params, metadata: dict | None = None) -> Path:
    """Save a model to ``path`` (``.npz``) with its architecture and ``metadata`` (JSON-able)."""
    check_params(arch, params)
    meta = dict(metadata or {})
    meta.update({"format": "refnet-model", "refnet_version": __version__,
                 "architecture": arch.as_dict(), "dtype": str(params.dtype),
                 "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    arrays = {}
    for l, (w, b) in enumerate(zip(params.W, params.b), start=1):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    return save_npz_atomic(path, arrays, meta)


def load_model(path) -> tuple[Architecture, Params, dict]:
    """Load a model saved by :func:`save_model`: ``(arch, params, metadata)``."""
    arrays, meta = load_npz(path)
    if meta.get("format") not in ("refnet-model", "refnet-checkpoint"):
        raise ModelFileError(f"{path}: not a refnet model (format {meta.get('format')!r})")
    arch = Architecture.from_dict(meta["architecture"])
    try:
        params = Params(tuple(arrays[f"W{l}"] for l in range(1, arch.n_layers + 1)),
                        tuple(arrays[f"b{l}"] for l in range(1, arch.n_layers + 1)))
    except KeyError as e:
        raise ModelFileError(f"{path}: missing array {e}") from e
    check_params(arch, params)
    return arch, params, meta


# PyTorch state dicts live in refnet.statedict; re-exported here (imported last: it uses
# atomic_write_bytes above).
from .statedict import STATE_DICT_NAMINGS, from_state_dict, to_state_dict  # noqa: E402
