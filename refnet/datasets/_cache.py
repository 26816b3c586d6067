"""The local cache: where verified files live, atomic installs, and provenance records.

Standard library only, so that ``data/fetch.py`` runs before numpy is installed.

Layout: ``<cache>/<dataset>/<file>`` holds the *uncompressed*, sha256-verified files and
``<cache>/<dataset>/provenance.json`` says where they came from. The cache folder is, in order
of precedence, the ``cache_dir`` argument (``--cache-dir``), ``$REFNET_DATA_DIR``,
``$XDG_CACHE_HOME/refnet`` and ``~/.cache/refnet``.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from ..errors import ConfigError, DataError
from ..paths import broken_link_problem
from ..progress import Progress

CHUNK = 1 << 20
#: The largest provenance record or mirror manifest read: one of every Google QuickDraw class
#: (345) is about 100 kB, so a bigger file is not one, and is refused before it is read.
MAX_RECORD_BYTES = 16 << 20


class ChecksumError(DataError):
    """A file's sha256 differs from the expected one."""


class NotCached(DataError, FileNotFoundError):
    """A dataset file is not in the cache (or fails its sha256) and fetching was not allowed."""


def cache_root(cache_dir=None) -> Path:
    """The cache folder: the argument, else $REFNET_DATA_DIR, $XDG_CACHE_HOME/refnet,
    ~/.cache/refnet.

    A path that is (or lies under) an existing file, or a broken symbolic link (every source
    then failed to create it, "File exists"), is refused at once with a
    :class:`~refnet.errors.ConfigError` naming where it came from, before any source is tried.
    """
    if cache_dir:
        root, origin = Path(cache_dir).expanduser(), "--cache-dir (cache_dir)"
    elif os.environ.get("REFNET_DATA_DIR"):
        root, origin = Path(os.environ["REFNET_DATA_DIR"]).expanduser(), "$REFNET_DATA_DIR"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "refnet"
        origin = "$XDG_CACHE_HOME" if xdg else "the default cache folder"
    if "\x00" in str(root):  # exists() says False for it: every source then failed on it
        raise ConfigError(f"{origin}: the cache folder {str(root)!r} has a NUL character in "
                          "its name; give another folder")
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == root else f"lies under the file {existing}"
        raise ConfigError(f"{origin}: the cache folder {root} {where}, not a folder; give a "
                          "folder (it is created if missing)")
    problem = broken_link_problem(root)
    if problem is not None:
        raise ConfigError(f"{origin}: the cache folder {problem}")
    return root


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def is_gzip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def install_stream(read, dest, sha256: str | None, label: str, total: int | None = None) -> str:
    """Copy a byte stream to ``dest`` atomically; return its sha256.

    ``read(n)`` returns up to n bytes (b"" at the end). The bytes go to a temporary file in
    dest's folder (so the final ``os.replace`` is atomic on every file system), are hashed on
    the way, and the temporary file replaces ``dest`` only if the hash equals ``sha256``
    (``None``: accept and report the computed hash, for files with no published checksum).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    h, bar = hashlib.sha256(), Progress(label, total, unit="MB", scale=1e6)
    try:
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: read(CHUNK), b""):
                h.update(block)
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256:
            bar.close("CHECKSUM MISMATCH")
            raise ChecksumError(f"{label}: sha256 {digest} differs from the expected {sha256}")
        bar.close("ok")
        os.chmod(tmp, 0o644 & ~_umask())  # mkstemp makes 0600; cache files are plain data
        os.replace(tmp, dest)
        return digest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def install_file(src, dest, sha256: str | None, label: str) -> str:
    """Install ``src`` (plain or gzip-compressed, detected by its magic bytes) as ``dest``,
    uncompressed and verified (see ``install_stream``)."""
    opener = gzip.open if is_gzip(src) else open
    total = None if opener is gzip.open else os.path.getsize(src)
    try:
        with opener(src, "rb") as f:
            return install_stream(f.read, dest, sha256, label, total)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise ChecksumError(f"{label}: cannot read {src}: {e}") from e


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def verified(path, sha256: str) -> bool:
    """True if ``path`` exists and its sha256 is ``sha256``."""
    return Path(path).is_file() and sha256_file(path) == sha256


def write_json_atomic(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        json.loads(Path(tmp).read_text())  # verify before it replaces the old record
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_record_text(path) -> str:
    """The UTF-8 text of a small JSON record (provenance, manifest); ValueError if ``path`` is
    not a regular file or holds more than :data:`MAX_RECORD_BYTES`, checked before reading
    (a FIFO would block the read, a huge file fill memory)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size > MAX_RECORD_BYTES:
        raise ValueError(f"{st.st_size} bytes, more than the {MAX_RECORD_BYTES} a record holds")
    with open(path, "rb") as f:
        data = f.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:  # grew since the stat
        raise ValueError(f"more than the {MAX_RECORD_BYTES} bytes a record holds")
    return data.decode("utf-8")


def read_provenance(folder) -> dict | None:
    """The dataset's provenance record, or None if absent, unreadable or not a JSON object.

    The record only says where the verified files came from (each file is checked by its own
    sha256), so a damaged one is treated as missing and written anew by the next fetch.
    """
    try:
        record = json.loads(read_record_text(Path(folder) / "provenance.json"))
    except (OSError, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return record if isinstance(record, dict) else None


def record_entries(record, key: str) -> dict:
    """``record[key]`` as ``{name: entry}``, keeping only the entries that are JSON objects
    (``{}`` if the record has no such object): a damaged provenance record is never trusted."""
    entries = record.get(key) if isinstance(record, dict) else None
    if not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if isinstance(v, dict)}


def write_provenance(folder, record: dict) -> None:
    write_json_atomic(Path(folder) / "provenance.json", record)
