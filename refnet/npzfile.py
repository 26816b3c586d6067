"""Reading ``.npz`` files that other programs may have written: bounded, validated, no pickle.

Every file refnet reads back (models, checkpoints, result files) is an ``.npz`` archive of
``.npy`` members plus one ``metadata`` member holding a JSON string. :class:`NpzReader` opens
one without trusting it: the zip directory, each member's ``.npy`` header and the declared
sizes are checked against the file's real size and the ceilings below *before* any array
data is read, so a zip bomb or a header claiming 10^12 elements is refused without
allocating. Anything the parsers (zipfile, zlib, numpy's header reader, json) raise on a
malformed file comes out as the caller's :class:`~refnet.errors.RefnetError` subclass with
the file name, what was wrong and what to do (see :func:`file_errors`).

Ceilings (module constants; raise them here for an unusually large model):
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RefnetError

__all__ = ["NpzReader", "ArrayHeader", "BadContent", "JsonTooDeep", "file_errors", "parse_json",
           "parse_json_value", "check_json_depth", "read_json_file",
           "read_arrays",
           "content_sha256", "check_fields", "Want", "WANT_SHA256", "MAX_MEMBERS",
           "MAX_TOTAL_BYTES", "MAX_METADATA_CHARS", "MAX_JSON_DEPTH", "DEFLATE_MAX_RATIO",
           "PARSER_ERRORS"]

#: at most this many members in one archive (a model of L layers has 2L + 1).
MAX_MEMBERS = 1024
#: at most this many bytes of array data in one file, summed over members (1 GiB).
MAX_TOTAL_BYTES = 1 << 30
#: the metadata JSON string has at most this many characters (16 Mi).
MAX_METADATA_CHARS = 1 << 24
#: JSON objects and lists nest at most this deep.
MAX_JSON_DEPTH = 32
#: deflate cannot expand data by more than about 1032:1; a member declaring more is lying.
DEFLATE_MAX_RATIO = 1100
#: the .npy header dictionary is at most this long (numpy's own default).
MAX_HEADER_BYTES = 10000

__doc__ += (f"\n* at most {MAX_MEMBERS} members; at most {MAX_TOTAL_BYTES} bytes of array data;"
            f"\n* metadata at most {MAX_METADATA_CHARS} characters, JSON nesting at most "
            f"{MAX_JSON_DEPTH} deep;\n* a deflated member may not declare more than "
            f"{DEFLATE_MAX_RATIO} times its compressed size.\n")

#: What the standard parsers raise on malformed input; :func:`file_errors` converts these.
PARSER_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, OSError,
                 EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                 NotImplementedError, RuntimeError, OverflowError, MemoryError, SyntaxError,
                 UnicodeError, json.JSONDecodeError, RecursionError,
                 tokenize.TokenError)  # numpy tokenizes the .npy header


class BadContent(ValueError):
    """Internal: a validation failure; :func:`file_errors` adds the file name and the fix."""


class MissingArrays(BadContent):
    """Internal: :func:`read_arrays` found the file without some of the arrays asked for
    (``missing``; the file has ``has``), so that a caller can name the flag that asked."""

    def __init__(self, message: str, missing: list, has: list):
        super().__init__(message)
        self.missing, self.has = missing, has


@contextlib.contextmanager
def file_errors(path, error: type, fix: str):
    """Turn anything a parser raises on a malformed ``path`` into ``error`` naming the file.

    ``error`` is a :class:`RefnetError` subclass; ``fix`` says what to do. A refnet error
    raised inside that already names the file passes through; one that does not is re-raised
    as ``error`` with the file name in front.
    """
    name = str(path)
    try:
        yield
    except RefnetError as e:
        if isinstance(e, error) and name in str(e):
            raise
        raise error(f"{name}: {e}" + ("" if fix in str(e) else f"; {fix}")) from e
    except BadContent as e:
        raise error(f"{name}: {e}; {fix}") from e
    except RecursionError as e:  # before PARSER_ERRORS' RuntimeError (its base class)
        raise error(f"{name}: cannot be read (nested too deeply: {e}); {fix}") from e
    except PARSER_ERRORS as e:
        raise error(f"{name}: cannot be read ({type(e).__name__}: {e}); {fix}") from e


@dataclass(frozen=True)
class ArrayHeader:
    """A member's ``.npy`` header: what it claims, checked against the member's real size."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int          # bytes before the data (magic + header)
    nbytes: int          # prod(shape) * itemsize == member size - offset


_ALLOWED_KINDS = "biufcU"  # complex is parsed so that weight checks can name it


class NpzReader:
    """An opened ``.npz``: ``headers`` (validated) first, array data only on request.

    Use as a context manager. ``headers`` maps each array name (member name without
    ``.npy``) to its :class:`ArrayHeader`; :meth:`array` reads one array, :meth:`metadata`
    the JSON object of the ``metadata`` member. All errors are ``BadContent``/parser errors: wrap
    the use in :func:`file_errors`.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise BadContent("no such file" if not self.path.exists() else "not a regular file")
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(6)
        if head.startswith(b"\x93NUMPY"):
            raise BadContent("a plain .npy array, not an .npz archive of arrays with metadata")
        if not head.startswith(b"PK\x03\x04"):
            raise BadContent(f"not an .npz (zip) archive (starts with {head[:4]!r}, {size} bytes)")
        self._zip = zipfile.ZipFile(self.path)
        try:
            self.headers = self._read_headers(size)
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()

    def _read_headers(self, file_size: int) -> dict:
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BadContent(f"{len(infos)} members, more than the ceiling {MAX_MEMBERS}")
        names = [i.filename for i in infos]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise BadContent(f"duplicate members {dup} (which one is meant is ambiguous)")
        if sum(i.compress_size for i in infos) > file_size:
            raise BadContent("members declare more compressed bytes than the file holds")
        headers, total = {}, 0
        for info in infos:
            self._check_info(info)
            h = self._header(info)
            total += h.nbytes
            if total > MAX_TOTAL_BYTES:
                raise BadContent(f"arrays total more than the ceiling of {MAX_TOTAL_BYTES} bytes "
                           f"(member {info.filename} declares shape {h.shape})")
            headers[h.name] = h
        return headers

    @staticmethod
    def _check_info(info: zipfile.ZipInfo) -> None:
        n = info.filename
        if not n.endswith(".npy") or len(n) > 256:
            raise BadContent(f"member {n[:80]!r} is not an .npy array")
        if info.flag_bits & 0x1:
            raise BadContent(f"member {n} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise BadContent(f"member {n} is stored uncompressed but declares {info.file_size} "
                           f"bytes in {info.compress_size}")
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024:
                raise BadContent(f"member {n} declares {info.file_size} bytes from {info.compress_size} "
                           "compressed (more than deflate can produce: a zip bomb or a lying header)")
        else:
            raise BadContent(f"member {n} uses compression method {info.compress_type}; only stored "
                       "and deflated members are read")
        if info.file_size > MAX_TOTAL_BYTES + MAX_HEADER_BYTES:
            raise BadContent(f"member {n} declares {info.file_size} bytes, more than the ceiling "
                       f"{MAX_TOTAL_BYTES}")

    def _header(self, info: zipfile.ZipInfo) -> ArrayHeader:
        n = info.filename
        fmt = np.lib.format
        with self._zip.open(info) as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=MAX_HEADER_BYTES)
            else:
                raise BadContent(f"member {n}: .npy format version {version} is not read")
            offset = fh.tell()
        if dtype.hasobject:
            raise BadContent(f"member {n} holds Python objects (pickle), which refnet never loads")
        if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype:
            raise BadContent(f"member {n} has dtype {dtype}, not a plain numeric or text array")
        if len(shape) > 32 or not all(type(s) is int and s >= 0 for s in shape):
            raise BadContent(f"member {n} has an invalid shape {shape!r}")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise BadContent(f"member {n}: header declares shape {shape} of {dtype} ({nbytes} bytes) "
                       f"but the member holds {info.file_size - offset} bytes of data")
        return ArrayHeader(n[:-4], tuple(shape), dtype, bool(fortran), offset, nbytes)

    def array(self, name: str) -> np.ndarray:
        """The array ``name`` (native byte order, own memory); its CRC-32 is verified."""
        h = self.headers[name]
        with self._zip.open(f"{name}.npy") as fh:
            fh.read(h.offset)
            data = fh.read(h.nbytes)
            if len(data) != h.nbytes or fh.read(1):
                raise BadContent(f"member {name}.npy is shorter or longer than its header says")
        if h.dtype.itemsize == 0:
            a = np.zeros(h.shape, dtype=h.dtype)
        else:
            a = np.frombuffer(data, dtype=h.dtype).reshape(h.shape, order="F" if h.fortran_order else "C")
        return a.astype(h.dtype.newbyteorder("="), order="C")

    def metadata(self) -> dict:
        """The ``metadata`` member parsed as a JSON object (see :func:`parse_json`)."""
        h = self.headers.get("metadata")
        if h is None:
            raise BadContent("not a refnet file (no 'metadata' entry)")
        if h.dtype.kind != "U" or h.shape != ():
            raise BadContent(f"'metadata' is a {h.dtype} array of shape {h.shape}, not a JSON string")
        if h.dtype.itemsize // 4 > MAX_METADATA_CHARS:
            raise BadContent(f"'metadata' is longer than the ceiling of {MAX_METADATA_CHARS} characters")
        return parse_json(str(self.array("metadata")), "metadata")


class JsonTooDeep(BadContent):
    """JSON (or TOML read like it) nested deeper than ``MAX_JSON_DEPTH``; its own type so that
    a caller can suggest its own fix."""

    def __init__(self, what: str):
        super().__init__(f"{what}: nests deeper than {MAX_JSON_DEPTH} levels")


def _no_duplicate_keys(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = [k for k, _ in pairs]
        raise BadContent(f"a JSON object repeats the key {next(k for k in seen if seen.count(k) > 1)!r}")
    return d


def check_json_depth(obj, what: str):
    """``obj`` (a parsed JSON or TOML value) if it nests at most ``MAX_JSON_DEPTH`` deep, else
    :class:`JsonTooDeep` naming ``what``. Walks without recursion."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d > MAX_JSON_DEPTH:
                raise JsonTooDeep(what)
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return obj


def first_nonfinite(obj):
    """``(key path, value)`` of the first NaN or infinite float in the JSON-like ``obj``
    (path as ``history[2].val_loss``), or None. JSON has no such numbers: Python's json writes
    them as ``NaN``/``Infinity``, which strict readers refuse. Walks without recursion."""
    stack = [("", obj)]
    while stack:
        where, o = stack.pop()
        if isinstance(o, float) and not math.isfinite(o):
            return where, o
        if isinstance(o, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v)
                         for k, v in reversed(list(o.items())))
        elif isinstance(o, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(o))))
    return None


def parse_json_value(text: str, what: str):
    """``text`` as a JSON value of any type: how refnet reads the JSON of its files and specs.

    Refused, as :class:`BadContent` whose message names ``what`` (e.g. ``"metadata"``, a spec
    file's path): more than ``MAX_METADATA_CHARS`` characters; invalid JSON (also an integer
    past Python's digit limit, a plain ``ValueError``); a key given twice in an object;
    nesting deeper than ``MAX_JSON_DEPTH`` (:class:`JsonTooDeep`).
    """
    if len(text) > MAX_METADATA_CHARS:
        raise BadContent(f"{what} is longer than the ceiling of {MAX_METADATA_CHARS} characters")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except BadContent as e:  # a repeated key (_no_duplicate_keys)
        raise BadContent(f"{what}: {e}") from None
    except ValueError as e:  # JSONDecodeError, or an integer past Python's digit limit
        raise BadContent(f"{what} is not valid JSON ({e})") from e
    except RecursionError:
        raise JsonTooDeep(what) from None
    return check_json_depth(obj, what)


def parse_json(text: str, what: str) -> dict:
    """``text`` as a JSON object, read by :func:`parse_json_value` (``what`` names it)."""
    obj = parse_json_value(text, what)
    if not isinstance(obj, dict):
        raise BadContent(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def read_json_file(path, what: str = "file") -> dict:
    """A JSON object from a text file, checked as :func:`parse_json` (size checked first)."""
    path = Path(path)
    if not path.is_file():
        raise BadContent("no such file")
    if os.path.getsize(path) > 4 * MAX_METADATA_CHARS:
        raise BadContent(f"larger than the ceiling of {4 * MAX_METADATA_CHARS} bytes")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadContent(f"{what} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    return parse_json(text, what)


def content_sha256(arrays: dict, metadata: dict) -> str:
    """sha256 over every array (name, dtype, shape, bytes; in name order) and the metadata.

    The metadata is hashed as sorted-key JSON without its own ``"sha256"`` entry, so the hash
    can be stored in it; JSON round-trips floats exactly, so a re-read file hashes the same.
    """
    import hashlib

    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))  # as NpzReader returns it
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    meta = {k: v for k, v in metadata.items() if k != "sha256"}
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


# --- typed fields of a metadata object -------------------------------------------------------

@dataclass(frozen=True)
class Want:
    """What a metadata field must be: ``text`` for messages, ``ok(value)`` the test."""

    text: str
    ok: object


def want_int(lo: int, hi: int) -> Want:
    return Want(f"an integer in {lo}..{hi}", lambda v: type(v) is int and lo <= v <= hi)


def want_number(lo: float, hi: float) -> Want:
    # an int is compared as it is: math.isfinite(10**400) converts it and overflows
    return Want(f"a finite number in [{lo:g}, {hi:g}]",
                lambda v: (type(v) is int or type(v) is float and math.isfinite(v))
                and lo <= v <= hi)


def want_str(max_len: int = 256, choices=None) -> Want:
    if choices:
        return Want(f"one of {list(choices)}", lambda v: isinstance(v, str) and v in choices)
    return Want(f"a string of at most {max_len} characters",
                lambda v: isinstance(v, str) and len(v) <= max_len)


#: A sha256 as ``hashlib``'s ``hexdigest()`` writes it: 64 lowercase hexadecimal digits.
WANT_SHA256 = Want("a sha256 (64 lowercase hexadecimal digits)",
                   lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) is not None)
WANT_BOOL = Want("true or false (a JSON boolean, not a string or number)", lambda v: type(v) is bool)
WANT_OBJECT = Want("a JSON object", lambda v: isinstance(v, dict))
WANT_LIST = Want("a JSON list", lambda v: isinstance(v, list))


def check_fields(d, spec: dict, where: str, *, required=(), extra: bool = False) -> None:
    """Check the fields of the JSON object ``d`` against ``spec`` (key -> :class:`Want`).

    ``required`` keys must be present; other keys of ``spec`` may be missing. Keys not in
    ``spec`` are an error unless ``extra`` (then they are the caller's, passed through unread).
    """
    if not isinstance(d, dict):
        raise BadContent(f"{where} must be a JSON object, got {type(d).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        raise BadContent(f"{where} lacks {missing}")
    if not extra:
        unknown = sorted(set(d) - set(spec))
        if unknown:
            raise BadContent(f"{where} has unknown keys {unknown[:5]}; known: {sorted(spec)}")
    for k, want in spec.items():
        if k in d and not want.ok(d[k]):
            raise BadContent(f"{where}: {k!r} must be {want.text}, got {_short(d[k])}")


def _short(v) -> str:
    r = json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def read_arrays(path, names, *, error: type, fix: str, optional=()) -> dict:
    """The real-valued arrays ``names`` (and those of ``optional`` present) of a user's
    ``.npz`` (e.g. ``X`` and ``y`` written by ``np.savez``), read with the checks of
    :class:`NpzReader`; no metadata needed. Other members are ignored unread. Raises
    ``error`` (e.g. :class:`~refnet.errors.DataError`) naming the file, the problem and ``fix``.
    """
    with file_errors(path, error, fix), NpzReader(path) as z:
        missing = [n for n in names if n not in z.headers]
        if missing:
            raise MissingArrays(f"needs arrays {list(names)}, lacks {missing} (has "
                                f"{sorted(z.headers)[:8]})", missing, sorted(z.headers))
        out = {}
        for n in list(names) + [o for o in optional if o in z.headers]:
            if z.headers[n].dtype.kind not in "biuf":
                raise BadContent(f"array {n} has dtype {z.headers[n].dtype}, expected real numbers")
            out[n] = z.array(n)
    return out
