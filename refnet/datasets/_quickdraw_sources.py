"""QuickDraw bitmaps: the class lists and the source chain. Standard library only.

Per class, in order: the verified cache; a mirror folder with a ``MANIFEST.json`` (as
``/work/shared/datasets/quickdraw``: per class ``file``, ``rows``, ``sha256``), whose files are
copied whole after their sha256 matches the manifest; then Google's ``numpy_bitmap`` file,
streamed, of which only the first ``per_class`` rows are kept (the full files are ~100 MB
each, and Google publishes no checksums: the sha256 of the stored rows is computed and
recorded). Both sources hold Google's rows in Google's order, from row 0.

A class that no source can deliver with ``per_class`` rows is never replaced by another class
or by fewer rows: ``QuickDrawError`` lists exactly what is missing and how to choose.
"""
from __future__ import annotations

from ..errors import ConfigError, DataError

import ast
import io
import json
import struct
import sys
import urllib.parse
import urllib.request

from . import _registry as reg
from ._cache import CHUNK, cache_root, install_file, install_stream, read_provenance, \
    read_record_text, record_entries, sha256_file, write_provenance
from ..progress import Progress
from ._sources import HOST_TIMEOUT, check_timeout, mirror_folder

#: The 19 classes of the offline mirror (/work/shared/datasets/quickdraw), Google's names.
MIRROR_19 = ("airplane", "apple", "banana", "bicycle", "bird", "book", "cat", "clock", "cookie",
             "diamond", "dog", "eye", "fish", "flower", "horse", "house", "house plant",
             "rainbow", "train")
#: The fixed 20-class list (the paper uses 20 classes without naming them): the 19 mirrored
#: classes plus "sun", a common, simple and visually distinct Google category that is not a
#: near-duplicate of any of the 19. Label k is the k-th name (alphabetical order).
PAPER_20 = tuple(sorted(MIRROR_19 + ("sun",)))
CLASS_SETS = {"paper-20": PAPER_20, "mirror-19": MIRROR_19}
PIXELS = 784
#: The most rows of one class a fetch or a load asks for: more than any of Google's 345 class
#: files holds (50 million drawings, about 145,000 a class; the largest files hold a few
#: hundred thousand), so a larger count could never be delivered; it also bounds what one
#: class's download holds in memory (784 MB).
MAX_PER_CLASS = 1_000_000


class QuickDrawError(DataError, RuntimeError):
    """Some requested classes or rows are not available; the message says which and what to do."""


def resolve_classes(classes, what: str = "classes") -> tuple:
    """"paper-20", "mirror-19", "a,b,c" or a sequence of Google category names -> tuple.
    ``what`` names the argument (or flag) in the :class:`ConfigError` for anything else."""
    if isinstance(classes, str):
        names = CLASS_SETS.get(classes) or tuple(c.strip() for c in classes.split(","))
    else:
        names = tuple(classes)
    if not names or any(not isinstance(c, str) for c in names):
        raise ConfigError(f"{what}: expected 'paper-20', 'mirror-19' or category names, "
                          f"got {classes!r}")
    if not all(names):
        raise ConfigError(f"{what}: an empty class name in {classes!r}; give 'paper-20', "
                          "'mirror-19' or category names separated by single commas")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ConfigError(f"{what}: duplicated {dup}")
    return names


def check_per_class(per_class, *, none_ok: bool = False) -> None:
    """Refuse a ``per_class`` that is not an int in 1..:data:`MAX_PER_CLASS` (``none_ok``:
    or None, every row) before anything is fetched or allocated."""
    if per_class is None and none_ok:
        return
    if (isinstance(per_class, bool) or not isinstance(per_class, int)
            or not 1 <= per_class <= MAX_PER_CLASS):
        raise ConfigError(f"per_class: expected an int from 1 to at most {MAX_PER_CLASS} (no "
                          f"Google class file holds more){' or None (every row)' * none_ok}, "
                          f"got {per_class!r}")


def class_file(name: str) -> str:
    return name.replace(" ", "_") + ".npy"


def npy_header(n_rows: int) -> bytes:
    """A .npy format 1.0 header for a C-order uint8 array of shape (n_rows, 784)."""
    d = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, %d), }" % (n_rows, PIXELS)
    pad = -(10 + len(d) + 1) % 64
    header = (d + " " * pad + "\n").encode()
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def read_npy_header(read, what) -> int:
    """Parse a .npy header from ``read(n)``; check uint8 (N, 784) C order; return N."""
    pre = read(8)
    if len(pre) < 8 or pre[:6] != b"\x93NUMPY":
        raise ValueError(f"{what}: not a .npy file")
    size = struct.unpack("<H", read(2))[0] if pre[6] == 1 else struct.unpack("<I", read(4))[0]
    header = ast.literal_eval(read(size).decode("latin1"))  # a dict literal, never code
    shape = tuple(header.get("shape", ()))
    if header.get("descr") != "|u1" or header.get("fortran_order") or len(shape) != 2 \
            or shape[1] != PIXELS:
        raise ValueError(f"{what}: expected a C-order uint8 (N, 784) array, header is {header}")
    return shape[0]


def _manifest(folder) -> dict:
    """The ``classes`` object of ``folder/MANIFEST.json`` (entries with ``file``, ``rows``,
    ``sha256``); :class:`QuickDrawError` naming the file if it is not that."""
    path = folder / "MANIFEST.json"
    try:
        classes = json.loads(read_record_text(path))["classes"]
        if not isinstance(classes, dict) or not all(
                isinstance(e, dict) and isinstance(e.get("file"), str) and isinstance(e.get("sha256"), str)
                and type(e.get("rows")) is int for e in classes.values()):
            raise ValueError("'classes' must map names to {file, rows, sha256}")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise QuickDrawError(f"{path}: not a valid mirror manifest ({type(e).__name__}: {e}); "
                             "repair the mirror or give another with --mirror") from e
    return classes


def cached_classes(folder) -> dict:
    """``{class: entry}`` of the cache's provenance record, keeping only well-formed entries
    (``file`` its class's file name, ``rows`` an int, ``sha256`` and ``source`` strings,
    ``google_rows``): a damaged
    record counts as no record, and its classes are fetched (or reported missing) again."""
    return {name: e for name, e in record_entries(read_provenance(folder), "classes").items()
            if isinstance(e.get("file"), str) and e["file"] == class_file(name)
            and type(e.get("rows")) is int and isinstance(e.get("sha256"), str)
            and isinstance(e.get("source"), str) and "google_rows" in e}


def _from_mirror(mirror, name, per_class, dest):
    """Copy the class file from the mirror after checking it against the MANIFEST; return entry."""
    if mirror is None:
        raise LookupError("no --mirror given and REFNET_DATA_MIRROR is unset")
    folder = next((d for d in (mirror / "quickdraw", mirror) if (d / "MANIFEST.json").is_file()),
                  None)
    if folder is None:
        raise LookupError(f"no MANIFEST.json in {mirror} or {mirror / 'quickdraw'}")
    entry = _manifest(folder).get(name)
    if entry is None:
        raise LookupError(f"mirror {folder} has no class {name!r}")
    if entry["rows"] < per_class:
        raise LookupError(f"mirror {folder} has {entry['rows']} rows of {name!r}, "
                          f"{per_class} asked")
    install_file(folder / entry["file"], dest, entry["sha256"], f"verify quickdraw/{dest.name}")
    with open(dest, "rb") as f:
        rows = read_npy_header(f.read, dest)
    return {"rows": rows, "source": f"mirror {folder}",
            "google_rows": entry.get("google_rows", "unknown")}


def _from_host(name, per_class, dest, timeout):
    """Stream Google's class file, keep its first ``per_class`` rows, store them as .npy."""
    url = reg.QUICKDRAW_URL.format(urllib.parse.quote(name))
    want = per_class * PIXELS
    data = bytearray()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        n = read_npy_header(r.read, url)
        if n < per_class:
            raise LookupError(f"{url} has {n} rows, {per_class} asked")
        bar = Progress(f"download {url} (first {per_class} of {n} rows)", want,
                       unit="MB", scale=1e6)
        while len(data) < want:
            block = r.read(min(CHUNK, want - len(data)))
            if not block:
                raise LookupError(f"{url} ended early")
            data += block
            bar.update(len(block))
        bar.close()
    blob = npy_header(per_class) + bytes(data)
    install_stream(io.BytesIO(blob).read, dest, None, f"store quickdraw/{dest.name}")
    return {"rows": per_class, "source": "host storage.googleapis.com",
            "google_rows": f"0..{per_class - 1}"}


def fetch_quickdraw(classes="paper-20", per_class: int = 1000, cache_dir=None, mirror=None,
                    timeout: float = HOST_TIMEOUT) -> dict:
    """Make ``per_class`` verified rows of each class present in the cache; return the record.

    The record (also ``<cache>/quickdraw/provenance.json``) maps each class to its file, rows
    stored, sha256, source and Google row indices; ``cached`` lists classes needing no fetch.
    """
    names = resolve_classes(classes)
    check_per_class(per_class)
    check_timeout(timeout)
    folder = cache_root(cache_dir) / "quickdraw"
    record = {"dataset": "quickdraw", "classes": cached_classes(folder)}
    mirror = mirror_folder(mirror)
    cached, problems = [], {}
    for name in names:
        dest = folder / class_file(name)
        old = record["classes"].get(name)
        if (old and old["rows"] >= per_class and dest.is_file()
                and sha256_file(dest) == old["sha256"]):
            cached.append(name)
            continue
        tried = []
        for label, step in (("mirror", lambda: _from_mirror(mirror, name, per_class, dest)),
                            ("host", lambda: _from_host(name, per_class, dest, timeout))):
            try:
                entry = step()
            except Exception as e:  # recorded; the next source is tried
                tried.append(f"{label}: {type(e).__name__}: {e}")
                if label == "mirror" and mirror is not None:
                    print(f"quickdraw {name!r}: {tried[-1]}\n  -> trying the host",
                          file=sys.stderr)
                continue
            record["classes"][name] = dict(entry, file=dest.name, sha256=sha256_file(dest))
            write_provenance(folder, record)
            break
        else:
            problems[name] = tried
    if problems:
        raise QuickDrawError(_missing_message(names, per_class, problems, mirror))
    return {"dataset": "quickdraw", "folder": str(folder), "cached": cached, "per_class": per_class,
            "classes": {n: record["classes"][n] for n in names}}


def _missing_message(names, per_class, problems, mirror) -> str:
    lines = [f"QuickDraw: {len(problems)} of {len(names)} classes are not available with "
             f"{per_class} rows each (nothing was substituted):"]
    lines += [f"  {n}: " + "; ".join(t) for n, t in problems.items()]
    advice = ["What you can do:"]
    available = {}
    if mirror is not None:
        for d in (mirror / "quickdraw", mirror):
            if (d / "MANIFEST.json").is_file():
                man = _manifest(d)
                available = {n: man[n]["rows"] for n in names if n in man}
                break
    have = [n for n in names if n in available]
    if have and len(have) < len(names):
        advice.append(f"  use the {len(have)} classes the mirror has: --classes "
                      f"\"{','.join(have)}\"" + (" (or --classes mirror-19)"
                                                  if set(have) == set(MIRROR_19) else ""))
    short = [n for n in have if available[n] < per_class]
    if short:
        fewest = min(available[n] for n in have)
        advice.append(f"  the mirror has fewer than {per_class} rows of {', '.join(short)}: ask "
                      f"for at most {fewest} rows per class (--per-class {fewest}), or leave "
                      "those classes out (--classes)")
    advice.append(("  or" if len(advice) > 1 else " ")
                  + " run where storage.googleapis.com is reachable (the full class files), "
                  "or give a mirror holding these classes (--mirror FOLDER with a MANIFEST.json)")
    if mirror is None and set(problems) <= set(names) - set(MIRROR_19):
        advice.append("  or leave out the classes that offline mirrors lack: --classes mirror-19 "
                      "(the 19 classes of shared/datasets/quickdraw-style mirrors)")
    return "\n".join(lines + advice)
