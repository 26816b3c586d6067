"""Saving and loading models: ``.npz`` arrays plus JSON metadata, never pickle.

A model file holds ``W1, b1, ..., WL, bL`` (``W`` of shape ``(n_out, n_in)``) and one
``metadata`` entry: a JSON string with the architecture, the refnet version and whatever the
caller adds (noise spec used in training, seed, data provenance, history). Files are written
atomically (temporary file, flush, fsync, rename), so an interrupted write never leaves a
half-written model under the final name. ``save_model`` stores a sha256 over arrays and
metadata (:func:`refnet.npzfile.content_sha256`).

Reading trusts nothing (see :mod:`refnet.npzfile` for the ceilings): sizes, headers and the
declared shapes are checked against the architecture before any weight is read, the weights
must be finite float32/float64, and every problem is a :class:`~refnet.errors.ModelFileError`
naming the file (``ModelFileError`` is re-exported here for code that imported it from here).

PyTorch interchange (``state_dict`` key names, ``.safetensors``) is :mod:`refnet.statedict`;
``to_state_dict``, ``from_state_dict`` and ``STATE_DICT_NAMINGS`` are re-exported here.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ConfigError, ModelFileError
from .model import MAX_LAYERS, MAX_WIDTH, Architecture, Params, check_params
from .npzfile import (MAX_METADATA_CHARS, MAX_TOTAL_BYTES, WANT_OBJECT, WANT_SHA256, BadContent,
                      NpzReader, check_fields, content_sha256, file_errors, first_nonfinite,
                      want_str)

__all__ = ["save_model", "load_model", "load_cached_model", "check_savable", "atomic_write_bytes",
           "atomic_write_files", "npz_bytes", "save_npz_atomic", "load_npz", "MODEL_KEYS",
           "expected_arrays", "verify_sha256", "to_state_dict", "from_state_dict", "STATE_DICT_NAMINGS",
           "ModelFileError"]


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    return atomic_write_files({path: data})[0]


def atomic_write_files(files: dict, *, verify: bool = False) -> list[Path]:
    """Write several files ({path: bytes}) so that they land as a set, as far as POSIX allows.

    Each is written to a temporary file in its own folder first (flushed, fsynced); only when
    all are complete are they renamed into place, one after another in the order given (put
    last the file that vouches for the others). A failure or Ctrl-C before the renames changes
    no target and leaves no temporary file: written one after another, an error between them
    left a mix of new and old files. POSIX renames one file at a time, so the renames' own
    window (no data is written in it) remains. ``verify``: each temporary file is read back
    and compared with its data before any rename (an ``OSError`` if it differs).
    Returns the paths, in order.
    """
    staged = {}  # target -> temporary file
    try:
        for path, data in files.items():
            path = Path(path)
            staged[path] = _staged_copy(path, data)
            if verify and Path(staged[path]).read_bytes() != data:
                raise OSError(f"{path}: read-back differs from what was written")
        for path, tmp in staged.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in staged.values():
            with contextlib.suppress(FileNotFoundError):  # those renamed are gone already
                os.unlink(tmp)
        raise
    return list(staged)


def _staged_copy(path: Path, data: bytes) -> str:
    """``data`` in a new temporary file beside ``path`` (flushed and fsynced, an ordinary
    file's permissions); its name. Removed again if writing it fails."""
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
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def npz_bytes(arrays: dict) -> bytes:
    """The bytes ``np.savez`` writes for ``arrays`` ({name: array}), made on a helper thread.

    Python raises KeyboardInterrupt (Ctrl-C) in the main thread only. Inside ``np.savez`` it
    could land just after zipfile opened a member for writing and before the member's handle
    existed: the archive then refused to close, and when it was garbage-collected Python
    printed that refusal ("Exception ignored in: ZipFile.__del__", a traceback) under the
    CLI's one line (seen once in CI, an interrupted sweep, whose processes save models and
    checkpoints through here). On a helper thread, which also blocks SIGINT, the archive is always
    finished; Ctrl-C interrupts the main thread's wait instead, and the half-made bytes, in
    memory only, are dropped. An object array is refused (``ValueError``): ``np.savez`` would
    pickle it, and refnet writes no pickle.
    """
    arrays = {k: np.asanyarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype.hasobject:
            raise ValueError(f"{k}: an object array would be written as a pickle; refnet writes "
                             "numbers and strings only (convert it, e.g. with .astype(float))")
    result = {}

    def work():
        if hasattr(signal, "pthread_sigmask"):   # a Ctrl-C goes to the main thread, not here
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            result["data"] = buf.getvalue()
        except BaseException as e:   # handed to the caller's thread
            result["error"] = e

    helper = threading.Thread(target=work, name="refnet-npz-bytes")
    helper.start()
    helper.join()
    if "error" in result:
        raise result["error"]
    return result["data"]


def save_npz_atomic(path, arrays: dict, metadata: dict, *, sha256: bool = False) -> Path:
    """Save ``arrays`` and a JSON ``metadata`` dict as one ``.npz``, atomically.

    With ``sha256`` the metadata also gets the content hash of
    :func:`refnet.npzfile.content_sha256`, so that readers can refuse an edited or damaged file.
    """
    if "metadata" in arrays:
        raise ValueError("arrays: the key 'metadata' is reserved")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    if sha256:
        metadata = json.loads(json.dumps(metadata, sort_keys=True))  # as a reader will see it
        metadata["sha256"] = content_sha256(payload, metadata)
    payload["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    return atomic_write_bytes(path, npz_bytes(payload))


def load_npz(path, *, error: type = ModelFileError,
             fix: str = "the file is truncated or corrupted: delete it and save or train again",
             ) -> tuple[dict, dict]:
    """Load a file written by :func:`save_npz_atomic`: ``(arrays, metadata)``.

    Validated as :class:`refnet.npzfile.NpzReader` describes (sizes and headers before any
    data, no duplicate members, metadata a JSON object). Any problem raises ``error`` (a
    :class:`~refnet.errors.RefnetError` subclass) naming the file, what was wrong and ``fix``.
    """
    with file_errors(path, error, fix), NpzReader(path) as z:
        metadata = z.metadata()
        arrays = {k: z.array(k) for k in z.headers if k != "metadata"}
    return arrays, metadata


#: Bytes of a model file's array data kept free for its metadata by :func:`check_savable`
#: (the metadata member counts towards the reader's ``MAX_TOTAL_BYTES``, 4 bytes a character).
METADATA_RESERVE = 4 << 20


def check_savable(sizes, dtype="float64", what: str = "architecture") -> None:
    """Refuse, before any work, a network that :func:`load_model` would refuse to read.

    The ceilings are the reader's own: at most ``MAX_LAYERS`` weight layers, every layer at
    most ``MAX_WIDTH`` wide (:mod:`refnet.model`), and weights plus biases at most
    ``MAX_TOTAL_BYTES`` minus :data:`METADATA_RESERVE` (:mod:`refnet.npzfile`). ``sizes`` are
    the layer widths, input first; ``what`` names the flag or setting in the
    :class:`~refnet.errors.ConfigError`.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) - 1 > MAX_LAYERS:
        raise ConfigError(f"{what}: {len(sizes) - 1} weight layers, more than the {MAX_LAYERS} "
                          "a refnet model file may hold; use fewer hidden layers")
    wide = [s for s in sizes if s > MAX_WIDTH]
    if wide:
        raise ConfigError(f"{what}: a layer of width {wide[0]} (layer sizes "
                          f"{str(sizes)[:80]}) is wider than the {MAX_WIDTH} a refnet model "
                          "file may hold; use narrower layers")
    n = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    nbytes = n * np.dtype(dtype).itemsize
    if nbytes > MAX_TOTAL_BYTES - METADATA_RESERVE:
        raise ConfigError(f"{what}: layer sizes {str(sizes)[:80]} have {n} weights and biases, "
                          f"{nbytes / 2**30:.3g} GiB as {np.dtype(dtype)}, more than the "
                          f"{(MAX_TOTAL_BYTES - METADATA_RESERVE) / 2**30:.3g} GiB a refnet model "
                          "file may hold; use narrower or fewer layers")


def save_model(path, arch: Architecture, params: Params, metadata: dict | None = None) -> Path:
    """Save a model to ``path`` (``.npz``) with its architecture and ``metadata`` (JSON-able).

    A model that :func:`load_model` would refuse (see :func:`check_savable`, and metadata
    longer than the reader's ceiling) is refused with a ConfigError and nothing is written.
    """
    check_params(arch, params)
    check_savable(arch.sizes, params.dtype)
    meta = dict(metadata or {})
    meta.update({"format": "refnet-model", "refnet_version": __version__,
                 "architecture": arch.as_dict(), "dtype": str(params.dtype),
                 "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    bad = first_nonfinite(meta)
    if bad is not None:  # written as NaN/Infinity: `refnet info --json` then printed no JSON
        raise ConfigError(f"metadata: {bad[0]} is {bad[1]}, which JSON cannot hold; store a "
                          "finite number, or None or a string such as 'nan' for a missing "
                          "value")
    chars = len(json.dumps(meta, sort_keys=True)) + 100  # + the content hash save_npz adds
    if chars > min(MAX_METADATA_CHARS, METADATA_RESERVE // 4):
        raise ConfigError(f"metadata: {chars} characters of JSON, more than a refnet model file "
                          f"may hold ({min(MAX_METADATA_CHARS, METADATA_RESERVE // 4)}); pass "
                          "less metadata")
    arrays = {}
    for l, (w, b) in enumerate(zip(params.W, params.b), start=1):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    return save_npz_atomic(path, arrays, meta, sha256=True)


#: The metadata keys refnet itself reads from a model file, and what each must be. Other
#: top-level keys are the caller's (training history, data provenance...): returned unread.
MODEL_KEYS = {"format": want_str(choices=("refnet-model", "refnet-checkpoint")),
              "refnet_version": want_str(64), "architecture": WANT_OBJECT,
              "dtype": want_str(choices=("float32", "float64")), "saved": want_str(64),
              "sha256": WANT_SHA256}
_MODEL_FIX = ("the file is truncated or corrupted, or not a refnet model: save or train it "
              "again (PyTorch weights: convert them with refnet.io.from_state_dict)")


def load_model(path) -> tuple[Architecture, Params, dict]:
    """Load a model saved by :func:`save_model` (or a checkpoint): ``(arch, params, metadata)``.

    Validated before use: the metadata is a JSON object whose refnet keys (``MODEL_KEYS``)
    have the right types; the architecture is read strictly (:meth:`Architecture.from_dict`);
    every ``W``/``b`` member's declared shape must match it and its dtype be float32/float64
    before any data is read; the weights must be finite; a checkpoint's content hash must
    match. Anything else raises :class:`~refnet.errors.ModelFileError` naming the file.
    """
    path = Path(path)
    with file_errors(path, ModelFileError, _MODEL_FIX), NpzReader(path) as z:
        meta = z.metadata()
        check_fields(meta, MODEL_KEYS, "metadata", required=("format", "architecture"),
                     extra=True)
        arch = Architecture.from_dict(meta["architecture"])
        names = expected_arrays(arch, z.headers, meta.get("dtype"))
        if meta["format"] == "refnet-model":
            extra = sorted(set(z.headers) - set(names) - {"metadata"})
            if extra:
                raise BadContent(f"unexpected arrays {extra[:5]} beside the model's weights")
        arrays = {k: z.array(k) for k in z.headers if k != "metadata"}
        if "sha256" in meta or meta["format"] == "refnet-checkpoint":
            verify_sha256(arrays, meta)  # optional in models written before it existed
        L = arch.n_layers
        params = Params(tuple(arrays[f"W{l}"] for l in range(1, L + 1)),
                        tuple(arrays[f"b{l}"] for l in range(1, L + 1)))
        try:
            check_params(arch, params, finite=True)
        except ValueError as e:
            raise BadContent(str(e)) from None
    return arch, params, meta


def load_cached_model(path, log=None) -> tuple[Architecture, Params, dict] | None:
    """A model a run keeps in its own folder to resume from (a baseline, a fine-tuned model),
    or ``None`` when the file is absent or damaged, so that the caller trains it again.

    A damaged file (:class:`~refnet.errors.ModelFileError`) is not deleted but renamed to
    ``<name>.damaged`` (replacing an earlier one), and ``log`` says so: stopping with "train it
    again" would leave the user to do by hand what the run does anyway, and nothing is lost."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load_model(path)
    except ModelFileError as e:
        aside = path.with_name(path.name + ".damaged")
        os.replace(path, aside)
        if log is not None:
            log(f"{path}: unusable ({str(e).split('; ')[0].removeprefix(f'{path}: ')}); "
                f"kept as {aside.name}, training it again")
        return None


def expected_arrays(arch: Architecture, headers: dict, dtype: str | None) -> list[str]:
    """Check that the declared headers hold ``W1, b1, ...`` of ``arch``'s shapes, all of one
    float dtype (``dtype`` if given); returns their names. Reads no array data."""
    names = []
    for l in range(1, arch.n_layers + 1):
        for name, shape in ((f"W{l}", (arch.sizes[l], arch.sizes[l - 1])), (f"b{l}", (arch.sizes[l],))):
            h = headers.get(name)
            if h is None:
                raise BadContent(f"missing array {name!r} (the architecture has "
                                 f"{arch.n_layers} weight layers)")
            if h.shape != shape:
                raise BadContent(f"array {name} has shape {h.shape}, but the architecture "
                                 f"{list(arch.sizes)} needs {shape}")
            if h.dtype.kind != "f" or h.dtype.itemsize not in (4, 8):
                raise BadContent(f"array {name} has dtype {h.dtype}; weights must be float32 "
                                 "or float64 (not integer, complex or text)")
            want = dtype or str(headers["W1"].dtype.newbyteorder("="))
            if str(h.dtype.newbyteorder("=")) != want:
                raise BadContent(f"array {name} has dtype {h.dtype}, the model's dtype is {want}")
            names.append(name)
    return names


def verify_sha256(arrays: dict, meta: dict) -> None:
    """Refuse content whose ``sha256`` (see :func:`refnet.npzfile.content_sha256`) differs."""
    want = meta.get("sha256")
    if want is None:
        raise BadContent("no content hash ('sha256') in the metadata (written by an older "
                         "refnet?), so a damaged or edited file cannot be told apart")
    if content_sha256(arrays, meta) != want:
        raise BadContent("content does not match its sha256 (the file was truncated, edited "
                         "or corrupted)")


# PyTorch state dicts live in refnet.statedict; re-exported here (imported last: it uses
# atomic_write_bytes above).
from .statedict import STATE_DICT_NAMINGS, from_state_dict, to_state_dict  # noqa: E402
