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
Writes are atomic. refnet never imports torch: ``torch.from_numpy`` the arrays, or pass
tensors in (they are converted with ``.detach().cpu().numpy()``).
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from . import __version__
from .errors import ConfigError, ModelFileError
from .model import Architecture, Params, check_params

__all__ = ["STATE_DICT_NAMINGS", "STATE_DICT_SUFFIXES", "to_state_dict", "from_state_dict",
           "save_state_dict", "load_state_dict", "save_tensors", "load_tensors",
           "metadata_path"]

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
    architecture; entries not named by ``naming`` (e.g. a BatchNorm's buffers) are ignored.
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
            raise ModelFileError(f"{source}: {key!r} has dtype {a.dtype}, expected floats")
        arrays[name] = np.array(a)
    if arch is None:
        sizes = (arrays["W1"].shape[-1],) + tuple(arrays[f"W{l}"].shape[0] for l in range(1, L + 1))
        arch = Architecture(sizes, (hidden,) * (L - 1) + (output,))
    params = Params(tuple(arrays[f"W{l}"] for l in range(1, L + 1)),
                    tuple(arrays[f"b{l}"] for l in range(1, L + 1)))
    try:
        check_params(arch, params)
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


def save_tensors(path, tensors: Mapping[str, np.ndarray], metadata: dict | None = None) -> Path:
    """Write named arrays, tensors only, to ``.safetensors`` or ``.npz`` (atomically).

    ``metadata`` (JSON-able) goes to the safetensors header (``__metadata__["refnet"]``) or to
    the JSON file :func:`metadata_path` beside an ``.npz``.
    """
    from .io import atomic_write_bytes  # io re-exports this module: import here, not at the top

    path = Path(path)
    kind = _suffix(path)
    # C order for safetensors; not np.ascontiguousarray, which turns a scalar into shape (1,)
    arrays = {str(k): np.array(_to_numpy(v), order="C") for k, v in tensors.items()}
    text = json.dumps(metadata or {}, sort_keys=True)
    if kind == ".safetensors":
        st = _safetensors_numpy(path)
        return atomic_write_bytes(path, st.save(arrays, metadata={"format": "pt", "refnet": text}))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_bytes(metadata_path(path), (text + "\n").encode())
    return path


def load_tensors(path) -> tuple[dict, dict]:
    """``(arrays, metadata)`` from a file of :func:`save_tensors` or any tensors-only file.

    A missing ``.npz.json`` or a safetensors header without refnet's entry gives ``{}``.
    """
    path = Path(path)
    kind = _suffix(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    meta_text = None
    try:
        if kind == ".safetensors":
            st = _safetensors_numpy(path)
            data = path.read_bytes()
            arrays = st.load(data)
            header = _safetensors_header(data)
            meta_text = header.get("__metadata__", {}).get("refnet")
        else:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}  # reading each member checks its CRC-32
            side = metadata_path(path)
            if side.is_file():
                meta_text = side.read_text()
    except ModelFileError:
        raise
    except Exception as e:  # the parsers raise assorted types (SafetensorError, BadZipFile...)
        raise ModelFileError(f"{path}: cannot be read ({type(e).__name__}: {e}); the file is "
                             "truncated, corrupted or not a tensor file") from e
    try:
        metadata = json.loads(meta_text) if meta_text else {}
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: refnet metadata is not valid JSON ({e})") from e
    return arrays, metadata


def _safetensors_header(data: bytes) -> dict:
    """The JSON header of a safetensors file: 8-byte little-endian length, then JSON."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n])


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

