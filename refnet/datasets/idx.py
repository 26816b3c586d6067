"""IDX files (the MNIST format) with header and size validation.

``read_header`` needs only the standard library (the fetch script uses it for sample counts);
``read_images`` and ``read_labels`` return numpy arrays.

Format: a big-endian header ``00 00 <type> <ndim>`` (type 0x08 = uint8), then ``ndim``
big-endian uint32 dimensions, then the data, row-major. Labels are magic 0x00000801 (1 dim),
images 0x00000803 (3 dims: n, rows, cols).
"""
from __future__ import annotations

import os
import struct

from ..errors import DataError

LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803


class IdxError(DataError):
    """A malformed IDX file; the message names the file and what to do."""


def _fail(path, problem: str):
    raise IdxError(f"{path}: {problem}. The file is truncated or corrupted: delete it and run "
                   "`python data/fetch.py` (or `refnet fetch`) again to re-download and verify it.")


def read_header(path, expected_magic: int | None = None):
    """Return ``(magic, dims, header_bytes)`` after checking the magic and the exact file size.

    A missing or unreadable file (a folder, no permission) is an :class:`IdxError` naming it.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return _read_header(f, path, size, expected_magic)
    except OSError as e:
        raise IdxError(f"{path}: cannot be read ({e.strerror or e}); run `python data/fetch.py` "
                       "(or `refnet fetch`) to download and verify the dataset files") from None


def _read_header(f, path, size: int, expected_magic):
    head = f.read(4)
    if len(head) < 4:
        _fail(path, f"only {size} bytes, too short for an IDX header")
    magic = struct.unpack(">I", head)[0]
    if magic not in (LABELS_MAGIC, IMAGES_MAGIC) or (expected_magic
                                                     and magic != expected_magic):
        want = f"0x{expected_magic:08x}" if expected_magic else "0x00000801 or 0x00000803"
        _fail(path, f"magic number 0x{magic:08x}, expected {want}")
    ndim = magic & 0xFF
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        _fail(path, "header ends before its dimensions")
    dims = struct.unpack(f">{ndim}I", raw)
    header = 4 + 4 * ndim
    n_data = 1
    for d in dims:
        n_data *= d
    if size != header + n_data:
        _fail(path, f"{size} bytes, but the header {dims} implies {header + n_data}")
    return magic, dims, header


def read_labels(path, n_classes: int = 10):
    """Labels as int64, shape (n,), each checked to lie in 0..n_classes-1."""
    import numpy as np  # here, so that read_header works without numpy

    _, dims, header = read_header(path, LABELS_MAGIC)
    y = np.fromfile(path, dtype=np.uint8, offset=header).astype(np.int64)
    bad = (y >= n_classes)
    if bad.any():
        _fail(path, f"{int(bad.sum())} labels outside 0..{n_classes - 1} (first at index "
                    f"{int(np.argmax(bad))}: {int(y[np.argmax(bad)])})")
    return y


def read_images(path):
    """Images as uint8, shape (n, rows * cols) (row-major pixels)."""
    import numpy as np

    _, (n, rows, cols), header = read_header(path, IMAGES_MAGIC)
    return np.fromfile(path, dtype=np.uint8, offset=header).reshape(n, rows * cols)


def write_idx(path, array) -> None:
    """Write a uint8 array as IDX (1 dim: labels, 3 dims: images). Used by the tests."""
    import numpy as np

    a = np.ascontiguousarray(array, dtype=np.uint8)
    if a.ndim not in (1, 3):
        raise ValueError(f"array: IDX writes 1 or 3 dimensions, got shape {a.shape}")
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 + a.ndim) + struct.pack(f">{a.ndim}I", *a.shape))
        f.write(a.tobytes())
