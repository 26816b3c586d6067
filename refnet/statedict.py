"""PyTorch-layout weights in and out: ``state_dict`` key names, ``.safetensors`` and ``.npz``.

A state dict maps ``"<prefix>.weight"`` to ``W`` of shape ``(n_out, n_in)`` and
``"<prefix>.bias"`` to ``b`` of shape ``(n_out,)``, exactly ``nn.Linear``'s layout, so no
transpose is ever needed. Key schemes (``naming``):

``"sequential"``  ``nn.Sequential(Linear, act, Linear, act, Linear)``: prefixes ``0, 2, 4``;
``"fc"``          attributes ``fc1, fc2, ...`` (the authors' code of Duque 2024);
``"h"``           attributes ``h1, h2, ...``;
``"auto"``        read off the keys: every ``<stem><number>.weight`` with one common stem
                  (``""``, ``"fc"``, ``"net.layers."``...), ordered by the number, so
                  ``nn.Sequential`` with any spacing (``0, 3, 6``) works too;
a list            one prefix per weight layer, e.g. ``["enc", "dec"]``;
a mapping         refnet's array names to keys, ``{"W1": "enc.weight", "b1": "enc.bias", ...}``.

Files hold tensors only, so ``torch.nn.Module.load_state_dict(strict=True)`` takes them as they
are: ``.safetensors`` (optional package ``safetensors``, ``pip install 'refnet[safetensors]'``;
refnet's metadata, a JSON string, under the header's ``__metadata__["refnet"]``) or ``.npz``
(``np.savez`` of the tensors; the metadata in a JSON file beside it, ``<file>.npz.json``).
Writes are atomic (an ``.npz`` and its ``.npz.json`` as a checked pair, see
:func:`save_tensors`); reads are bounded and validated as :mod:`refnet.npzfile` describes, never
unpickle, and every problem is a :class:`~refnet.errors.ModelFileError` naming the file.
refnet never imports torch: ``torch.from_numpy`` the arrays, or pass tensors in (they are
converted with ``.detach().cpu().numpy()``).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from . import __version__
from .errors import ConfigError, ModelFileError
from .model import Architecture, Params, check_params
from .npzfile import (MAX_METADATA_CHARS, MAX_TOTAL_BYTES, WANT_SHA256, BadContent, NpzReader,
                      check_fields, file_errors, parse_json, read_json_file)
from .paths import check_output_path

__all__ = ["STATE_DICT_NAMINGS", "STATE_DICT_SUFFIXES", "to_state_dict", "from_state_dict",
           "save_state_dict", "load_state_dict", "save_tensors", "load_tensors",
           "metadata_path", "check_destination"]

#: Named key schemes; ``naming`` may also be a list of prefixes or a mapping (module docstring).
STATE_DICT_NAMINGS = ("sequential", "fc", "h", "auto")
#: File formats by suffix.
STATE_DICT_SUFFIXES = (".safetensors", ".npz")
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def _numbered_prefixes(state, source: str) -> list[str]:
    """The ``"auto"`` scheme: prefixes ``<stem><n>`` of the 2-D ``.weight`` keys, by ``n``."""
    found = []
    for key in state:
        if not key.endswith(".weight") or np.ndim(_to_numpy(state[key])) != 2:
            continue
        m = _NUMBERED.match(key[:-len(".weight")])
        if m is None:
            raise ModelFileError(f"{source}: cannot order key {key!r} automatically (its prefix "
                                 "ends in no number); pass naming= a list of layer prefixes or "
                                 "a mapping {'W1': key, 'b1': key, ...}")
        found.append((m.group(1), int(m.group(2)), key[:-len(".weight")]))
    if not found:
        raise ModelFileError(f"{source}: no '<prefix>.weight' matrices found (keys: "
                             f"{sorted(state)[:8]})")
    stems = sorted({s for s, _, _ in found})
    if len(stems) > 1:
        raise ModelFileError(f"{source}: weight keys with different stems {stems}; pass naming= "
                             "a list of layer prefixes in forward order")
    return [p for _, _, p in sorted(found, key=lambda t: t[1])]


def _key_map(naming, n_layers: int | None, state=None, source: str = "state") -> dict[str, str]:
    """``{"W1": key, "b1": key, ...}`` for ``naming`` (``n_layers`` may be None for "auto")."""
    if isinstance(naming, Mapping):
        out = {str(k): str(v) for k, v in naming.items()}
        L = n_layers if n_layers is not None else sum(1 for k in out if k.startswith("W"))
        want = {f"{c}{l}" for l in range(1, L + 1) for c in "Wb"}
        if set(out) != want:
            raise ConfigError(f"naming: a mapping needs exactly the keys {sorted(want)}, got "
                              f"{sorted(out)}")
        return out
    if isinstance(naming, (list, tuple)):
        prefixes = [str(p) for p in naming]
    elif naming == "auto":
        if state is None:
            raise ConfigError("naming: 'auto' only reads a state dict; to write one pick "
                              "'sequential', 'fc', 'h' or a list of prefixes")
        prefixes = _numbered_prefixes(state, source)
    elif naming in ("sequential", "fc", "h"):
        def prefix(i):
            return str(2 * i) if naming == "sequential" else f"{naming}{i + 1}"
        n = n_layers
        if n is None:  # reading without an architecture: as many layers as the keys have
            n = 0
            while f"{prefix(n)}.weight" in state:
                n += 1
            if n == 0:
                raise ModelFileError(f"{source}: no {prefix(0)}.weight for naming {naming!r} "
                                     f"(keys present: {sorted(state)[:12]}); try naming='auto'")
        prefixes = [prefix(i) for i in range(n)]
    else:
        raise ConfigError(f"naming: unknown {naming!r}; known: {', '.join(STATE_DICT_NAMINGS)}, "
                          "a list of layer prefixes or a mapping {'W1': key, ...}")
    if n_layers is not None and len(prefixes) != n_layers:
        what = "found" if naming == "auto" else "given"
        raise ModelFileError(f"{source}: the architecture has {n_layers} weight layers, "
                             f"{len(prefixes)} layer prefixes {what} ({prefixes})")
    out = {}
    for l, p in enumerate(prefixes, start=1):
        out[f"W{l}"], out[f"b{l}"] = f"{p}.weight", f"{p}.bias"
    return out


def to_state_dict(arch: Architecture, params: Params, naming="sequential") -> dict:
    """``{"0.weight": W1, "0.bias": b1, ...}`` (NumPy arrays; ``torch.from_numpy`` them)."""
    check_params(arch, params)
    keys = _key_map(naming, arch.n_layers)
    out = {}
    for l, (w, b) in enumerate(zip(params.W, params.b), start=1):
        out[keys[f"W{l}"]], out[keys[f"b{l}"]] = np.array(w), np.array(b)
    return out


def _to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor; converted without importing torch here
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def from_state_dict(state: Mapping, arch: Architecture | None = None, naming="sequential",
                    hidden: str = "sigmoid", output: str = "identity",
                    source: str = "state") -> tuple[Architecture, Params]:
    """Weights and biases from a PyTorch ``state_dict`` (tensors or arrays).

    Without ``arch`` the layer sizes are read off the weights and the activations are
    ``hidden`` for hidden layers and ``output`` for the last. Shapes are checked against the
    architecture and every weight must be finite; entries not named by ``naming`` (e.g. a
    BatchNorm's buffers) are ignored.
    Errors are :class:`refnet.errors.ModelFileError` naming ``source`` (the file).
    """
    keys = _key_map(naming, None if arch is None else arch.n_layers, state, source)
    L = len(keys) // 2
    arrays = {}
    for name, key in keys.items():
        if key not in state:
            raise ModelFileError(f"{source}: missing key {key!r} (naming {naming!r}; keys "
                                 f"present: {sorted(state)[:12]})")
        a = _to_numpy(state[key])
        if a.dtype.kind != "f":
            raise ModelFileError(f"{source}: {key!r} has dtype {a.dtype}, expected floats; "
                                 "convert the weights to float32 or float64 before saving "
                                 "(PyTorch: {k: v.float() for k, v in sd.items()}; NumPy: "
                                 "a.astype(np.float32))")
        ndim = 2 if name[0] == "W" else 1
        if a.ndim != ndim or 0 in a.shape:
            raise ModelFileError(f"{source}: {key!r} ({name}) has shape {a.shape}; expected "
                                 f"{'a matrix (n_out, n_in)' if ndim == 2 else 'a vector (n_out,)'}"
                                 " with no empty dimension")
        arrays[name] = np.array(a)
    if arch is None:
        sizes = (arrays["W1"].shape[-1],) + tuple(arrays[f"W{l}"].shape[0] for l in range(1, L + 1))
        try:
            arch = Architecture(sizes, (hidden,) * (L - 1) + (output,))
        except ValueError as e:  # the shapes are checked above: an activation name is wrong
            raise ConfigError(f"hidden/output: {e}") from None
    params = Params(tuple(arrays[f"W{l}"] for l in range(1, L + 1)),
                    tuple(arrays[f"b{l}"] for l in range(1, L + 1)))
    try:
        check_params(arch, params, finite=True)
    except ValueError as e:  # says which of W1, b1, ... is off; name its key too
        raise ModelFileError(f"{source}: {e}; keys used: {keys}") from None
    return arch, params


# --- files -----------------------------------------------------------------------------------
def metadata_path(path) -> Path:
    """Where the JSON metadata of an ``.npz`` tensor file lives: ``<file>.npz.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _suffix(path: Path) -> str:
    if path.suffix not in STATE_DICT_SUFFIXES:
        raise ConfigError(f"{path}: unknown weight file type {path.suffix!r}; use "
                          f"{' or '.join(STATE_DICT_SUFFIXES)}")
    return path.suffix


def _safetensors_numpy(path: Path):
    try:
        import safetensors.numpy as st
    except ImportError:
        raise ConfigError(f"{path}: .safetensors files need the optional package 'safetensors' "
                          "(pip install 'refnet[safetensors]'), or use .npz") from None
    return st


def check_destination(path, flag: str | None = None, *, inputs: Mapping | None = None) -> Path:
    """Refuse an output ``path`` (and, for ``.npz``, its metadata file) that cannot be written.

    Checked before any work or write: a known suffix, then both destinations as
    :func:`refnet.paths.check_output_path` checks files (neither a folder nor another
    non-regular file, not under a file, in a writable folder; missing folders are created on
    writing), and neither one of the files the command reads (``inputs``, as
    :func:`~refnet.paths.check_output_path` takes them). Raises
    :class:`~refnet.errors.ConfigError` naming the path, what is wrong and what to do, led by
    the command-line ``flag`` if given.
    """
    path = Path(path)
    try:
        kind = _suffix(path)
    except ConfigError as e:
        if flag is None:
            raise
        raise ConfigError(f"{flag}: {e}") from None
    beside = {metadata_path(path): "the metadata file"} if kind == ".npz" else None
    return check_output_path(path, flag, beside=beside, inputs=inputs)


def save_tensors(path, tensors: Mapping[str, np.ndarray], metadata: dict | None = None) -> Path:
    """Write named arrays, tensors only, to ``.safetensors`` or ``.npz`` (atomically).

    ``metadata`` (JSON-able) goes to the safetensors header (``__metadata__["refnet"]``) or to
    the JSON file :func:`metadata_path` beside an ``.npz``. Both destinations are checked
    (:func:`check_destination`) before anything is written.

    An ``.npz`` and its ``.npz.json`` are written as a pair: both are staged complete under
    temporary names in the destination folder, then renamed, the ``.npz.json`` first. The
    ``.npz.json`` records ``"tensors_sha256"``, the sha256 of the ``.npz`` file's bytes, and
    :func:`load_tensors` refuses a pair whose digest differs, so an interruption between
    the two renames (new metadata beside the old tensors) or a tensors file replaced on its
    own is detected, never read as one file. The key is removed from the metadata returned.
    """
    # io re-exports this module: import here, not at the top
    from .io import atomic_write_bytes, atomic_write_files, npz_bytes

    path = check_destination(path)
    # C order for safetensors; not np.ascontiguousarray, which turns a scalar into shape (1,)
    arrays = {str(k): np.array(_to_numpy(v), order="C") for k, v in tensors.items()}
    meta = {k: v for k, v in (metadata or {}).items() if k != _DIGEST_KEY}
    if path.suffix == ".safetensors":
        st = _safetensors_numpy(path)
        text = json.dumps(meta, sort_keys=True)
        return atomic_write_bytes(path, st.save(arrays, metadata={"format": "pt", "refnet": text}))
    data = npz_bytes(arrays)   # on a helper thread: Ctrl-C cannot leave a half-open archive
    meta[_DIGEST_KEY] = hashlib.sha256(data).hexdigest()
    side = metadata_path(path)
    # both staged complete under temporary names, then renamed, the .npz.json first
    atomic_write_files({side: (json.dumps(meta, sort_keys=True) + "\n").encode(), path: data})
    return path


#: The ``.npz.json`` key holding the sha256 of its ``.npz`` (see :func:`save_tensors`).
_DIGEST_KEY = "tensors_sha256"
_LOAD_FIX = ("write it again: real-valued arrays in an .npz (np.savez) or .safetensors, "
             "refnet's metadata a JSON object")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_digest(path: Path, side: Path, metadata: dict) -> None:
    """Refuse an ``.npz.json`` whose ``tensors_sha256`` is not the sha256 of its ``.npz``.

    The key is taken out of ``metadata``. An ``.npz.json`` without it (written by refnet
    before it recorded the digest, before 6 December 2026, or by hand beside an ``np.savez``)
    is read unchecked; a key that is present must be a sha256: ``null`` or a malformed value
    would otherwise turn the check off unnoticed.
    """
    if _DIGEST_KEY not in metadata:
        return
    fix = f"write both again, or delete {side.name} to read the tensors without metadata"
    try:
        check_fields(metadata, {_DIGEST_KEY: WANT_SHA256}, f"its metadata file {side}",
                     extra=True)
    except BadContent as e:
        raise BadContent(f"{e} (refnet records the sha256 of the .npz there); {fix}") from None
    if metadata.pop(_DIGEST_KEY) != _file_sha256(path):
        raise BadContent(f"its metadata file {side} belongs to another version of it "
                         f"({_DIGEST_KEY} differs: the pair was not written together, e.g. an "
                         f"interrupted write or one file replaced on its own); {fix}")


def _check_real(dtypes: dict) -> None:
    """Refuse arrays that are not real numbers (``dtypes``: name -> dtype)."""
    bad = {k: d for k, d in dtypes.items() if np.dtype(d).kind not in "biuf"}
    if bad:
        k = sorted(bad)[0]
        raise BadContent(f"array {k!r} has dtype {bad[k]}; tensor files hold real numbers only "
                         "(bool, integer or float, no complex, text or objects)")


def load_tensors(path, expected: str = "a tensors-only file") -> tuple[dict, dict]:
    """``(arrays, metadata)`` from a file of :func:`save_tensors` or any tensors-only file.

    A missing ``.npz.json`` or a safetensors header without refnet's entry gives ``{}``. Read
    with the checks and ceilings of :mod:`refnet.npzfile` (sizes before allocation, no
    pickle); the metadata must be a JSON object; arrays must be real numbers (bool, integer,
    float); an ``.npz.json`` whose ``tensors_sha256`` does not match its ``.npz``, or is not a
    sha256 (``null`` included), is refused; one without the key (written before refnet recorded
    it, or by hand) is read without that check.
    Every problem is a :class:`~refnet.errors.ModelFileError` naming the file; ``expected``
    names the kind of file wanted in the message for a refnet model given instead.
    """
    path = Path(path)
    st = _safetensors_numpy(path) if _suffix(path) == ".safetensors" else None
    with file_errors(path, ModelFileError, _LOAD_FIX):
        if not path.is_file():
            raise BadContent("no such file" if not path.exists() else "not a regular file")
        if st is not None:
            return _load_safetensors(path, st)
        side = metadata_path(path)
        metadata = {}
        if side.exists():
            if not side.is_file():
                raise BadContent(f"its metadata file {side} is not a regular file")
            try:
                metadata = read_json_file(side, "refnet metadata")
            except BadContent as e:
                raise BadContent(f"its metadata file {side}: {e}") from None
            _check_digest(path, side, metadata)
        with NpzReader(path) as z:
            if "metadata" in z.headers and z.headers["metadata"].dtype.kind == "U":
                raise BadContent(f"a refnet model or checkpoint (it has a text 'metadata' "
                                 f"entry), not {expected} (read it with refnet.io.load_model; "
                                 "'refnet info FILE --export-state-dict OUT' converts a model, "
                                 "'refnet crosscheck make' writes a bundle)")
            _check_real({k: h.dtype for k, h in z.headers.items()})
            arrays = {k: z.array(k) for k in z.headers}  # each member's CRC-32 is checked
    return arrays, metadata


def _header_length(data: bytes) -> int:
    """The header's length: a safetensors file starts with it (8 bytes, little-endian), then
    the header. An empty or cut-short file was "header length -1", which said nothing useful."""
    if not data:
        raise BadContent("the file is empty (0 bytes), not a safetensors file (an interrupted "
                         "save, or the wrong path)")
    if len(data) < 8:
        raise BadContent(f"truncated: {len(data)} bytes, shorter than the 8-byte header length "
                         "every safetensors file starts with")
    n = int.from_bytes(data[:8], "little")
    if not 0 < n <= len(data) - 8:
        raise BadContent(f"truncated or not a safetensors file (its first 8 bytes give a "
                         f"header of {n} bytes, the file has {len(data) - 8} after them)")
    return n


#: The safetensors dtypes ``safetensors.numpy`` turns into arrays; PyTorch's bfloat16 and
#: float8 types (``BF16``, ``F8_E4M3`` ...) have no NumPy dtype.
_NUMPY_SAFETENSORS_DTYPES = ("F64", "F32", "F16", "I64", "U64", "I32", "U32", "I16", "U16",
                             "I8", "U8", "BOOL")


def _check_safetensors_dtypes(header: dict, path: Path) -> None:
    """Refuse a tensor of a dtype NumPy cannot hold by its name and dtype, before reading: the
    reader raised "KeyError: 'BF16'", which named neither the tensor nor what to do (a bfloat16
    model is common in PyTorch). Malformed entries are left to the reader's own checks."""
    for key, entry in header.items():
        dtype = entry.get("dtype") if isinstance(entry, dict) and key != "__metadata__" else None
        if isinstance(dtype, str) and dtype not in _NUMPY_SAFETENSORS_DTYPES:
            raise ModelFileError(f"{path}: tensor {key!r} has dtype {dtype}, which NumPy cannot "
                                 "hold; convert the tensors to float32 or float64 before saving "
                                 "(PyTorch: {k: v.float() for k, v in sd.items()})")


def _load_safetensors(path: Path, st) -> tuple[dict, dict]:
    """A safetensors file (``st``: ``safetensors.numpy``), its size and header checked before
    the tensors are read."""
    size = path.stat().st_size
    if size > MAX_TOTAL_BYTES + 4 * MAX_METADATA_CHARS:
        raise BadContent(f"{size} bytes, more than the ceiling of {MAX_TOTAL_BYTES} bytes of "
                         "tensors plus header")
    data = path.read_bytes()
    n = _header_length(data)
    header = parse_json(data[8:8 + n].decode("utf-8"), "safetensors header")
    _check_safetensors_dtypes(header, path)
    extra = header.get("__metadata__", {})
    text = extra.get("refnet") if isinstance(extra, dict) else None
    metadata = parse_json(text, "refnet metadata") if isinstance(text, str) else {}
    from safetensors import SafetensorError  # importable: _safetensors_numpy succeeded
    try:
        arrays = st.load(data)
    except SafetensorError as e:  # the Rust parser's own type, outside npzfile.PARSER_ERRORS
        raise BadContent(f"not a valid safetensors file ({e})") from None
    _check_real({k: a.dtype for k, a in arrays.items()})
    return arrays, metadata


def save_state_dict(path, arch: Architecture, params: Params, naming="sequential",
                    metadata: dict | None = None) -> Path:
    """Write ``params`` as a PyTorch state dict file (``.safetensors`` or ``.npz``).

    The metadata records the architecture and key scheme, so :func:`load_state_dict` needs no
    arguments; the file itself holds tensors only and loads with ``strict=True``.
    """
    check_params(arch, params)
    meta = dict(metadata or {})
    meta.update({"format": "refnet-state-dict", "refnet_version": __version__,
                 "architecture": arch.as_dict(), "dtype": str(params.dtype),
                 "naming": naming if isinstance(naming, str) else
                 (dict(naming) if isinstance(naming, Mapping) else list(naming)),
                 "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    return save_tensors(path, to_state_dict(arch, params, naming), meta)


def load_state_dict(path, arch: Architecture | None = None, naming="auto",
                    hidden: str = "sigmoid", output: str = "identity"):
    """Read a PyTorch state dict file: ``(arch, params, metadata)``.

    The architecture comes from ``arch``, else from refnet's metadata in the file, else from
    the weight shapes with ``hidden``/``output`` activations. ``naming`` as in the module
    docstring (default: read off the keys). Shapes are checked; every error is a
    :class:`refnet.errors.ModelFileError` naming the file.
    """
    path = Path(path)
    arrays, meta = load_tensors(path)
    if arch is None and "architecture" in meta:
        try:
            arch = Architecture.from_dict(meta["architecture"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: metadata 'architecture' is invalid ({e})") from e
    arch, params = from_state_dict(arrays, arch, naming, hidden, output, source=str(path))
    return arch, params, meta

