"""Seeded mutations of refnet's .npz files (zip + .npy members + JSON metadata) for the fuzz tests.

Every case is drawn from ``np.random.default_rng(seed)`` alone, so a failing case is
reproduced by its seed: ``REFNET_FUZZ_SEED=<seed> pytest tests/fuzz -k <test>`` runs only it.
``REFNET_FUZZ_SCALE`` multiplies the number of cases (default 1).
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import warnings
import zipfile
import zlib

import numpy as np

import refnet.errors as errors

SCALE = float(os.environ.get("REFNET_FUZZ_SCALE", "1"))


def seeds(base: int, n: int) -> list[int]:
    """The case seeds of one test: ``REFNET_FUZZ_SEED`` alone if set, else ``n * SCALE`` seeds."""
    if os.environ.get("REFNET_FUZZ_SEED"):
        return [int(os.environ["REFNET_FUZZ_SEED"])]
    return [base * 1_000_000 + i for i in range(int(n * SCALE))]


# --- building blocks -------------------------------------------------------------------------

def read_members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def write_zip(members, compress=None) -> bytes:
    """A zip of ``(name, bytes)`` members (duplicates allowed); ``compress[i]`` True deflates."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names: we want them
        with zipfile.ZipFile(buf, "w") as z:
            for i, (name, data) in enumerate(members):
                deflate = bool(compress and compress[i])
                z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data,
                           zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    return buf.getvalue()


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_raw(header: str, data: bytes) -> bytes:
    """An .npy (version 1.0) with an arbitrary header dictionary text."""
    h = header.encode("latin1")
    pad = (-(10 + len(h) + 1)) % 64
    h = h + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


def split_npy(member: bytes) -> tuple[str, bytes]:
    """``(header text, data)`` of a version 1.0 .npy."""
    n = struct.unpack("<H", member[8:10])[0]
    return member[10:10 + n].decode("latin1").strip(), member[10 + n:]


def metadata_of(members) -> dict:
    for name, data in members:
        if name == "metadata.npy":
            return json.loads(str(np.load(io.BytesIO(data), allow_pickle=False)))
    raise KeyError("metadata.npy")


def with_member(members, name, data):
    return [(n, data if n == name else d) for n, d in members]


def patch_sizes(data: bytes, rng, huge: int) -> bytes:
    """Set one member's declared uncompressed size (local header and central directory)."""
    out = bytearray(data)
    central = [i for i in range(len(out) - 4) if out[i:i + 4] == b"PK\x01\x02"]
    local = [i for i in range(len(out) - 4) if out[i:i + 4] == b"PK\x03\x04"]
    if central:
        c = central[rng.integers(len(central))]
        out[c + 24:c + 28] = struct.pack("<I", huge & 0xFFFFFFFF)
        if rng.random() < 0.5 and local:
            l = local[min(central.index(c), len(local) - 1)]
            out[l + 22:l + 26] = struct.pack("<I", huge & 0xFFFFFFFF)
    return bytes(out)


# --- mutations -------------------------------------------------------------------------------

ODD_VALUES = [None, True, False, "no", "yes", "", -1, 0, 1, 2**63, 10**30, -10**30, 1e308, 1.5,
              float("nan"), float("inf"), [], {}, [1, 2], {"a": 1}, "x" * 300, [[[[]]]]]
ODD_SHAPES = ["(1000000000000,)", "(1099511627776, 1099511627776)", "(-1,)", "(3.0,)",
              "('a',)", "()", "(0,)", "(2, 3, 4, 5)", "(4294967296,)", "[3]", "None"]
ODD_DESCRS = ["'<i8'", "'<c16'", "'|O'", "'<U3'", "'|V8'", "'>f8'", "'<f2'", "'|b1'",
              "[('a', '<f8')]", "'<f8'", "'<f4'", "'garbage'", "('<f8', (2,))", "'<M8[s]'"]


def mutate_json_value(obj, rng, depth=0):
    """A copy of the JSON value ``obj`` with one random change somewhere inside."""
    if isinstance(obj, dict) and obj and rng.random() < 0.75:
        key = sorted(obj)[rng.integers(len(obj))]
        out = dict(obj)
        r = rng.random()
        if r < 0.15:
            del out[key]
        elif r < 0.25:
            out[key + "_x"] = out.pop(key)
        elif r < 0.3:
            out["unknown_key"] = 1
        else:
            out[key] = mutate_json_value(obj[key], rng, depth + 1)
        return out
    if isinstance(obj, list) and obj and rng.random() < 0.7:
        out = list(obj)
        i = int(rng.integers(len(out)))
        r = rng.random()
        if r < 0.2:
            del out[i]
        elif r < 0.3:
            out.append(out[i])
        else:
            out[i] = mutate_json_value(out[i], rng, depth + 1)
        return out
    r = rng.random()
    if r < 0.05:
        v = 0
        for _ in range(int(rng.integers(33, 400))):
            v = [v]
        return v
    if isinstance(obj, (int, float)) and not isinstance(obj, bool) and r < 0.35:
        try:
            v = obj * float(rng.choice([-1, 0, 2, 1e6, 1e300]))
            return int(v) if type(obj) is int and math.isfinite(v) else v
        except OverflowError:
            return 0
    return ODD_VALUES[rng.integers(len(ODD_VALUES))]


def mutate_json_text(text: str, rng) -> str:
    r = rng.random()
    if r < 0.2:
        return text[: rng.integers(len(text) + 1)]
    if r < 0.4 and text:
        i = int(rng.integers(len(text)))
        return text[:i] + chr(int(rng.integers(32, 127))) + text[i + 1:]
    if r < 0.5:
        n = int(rng.integers(100, 100000))
        return "[" * n + "]" * n
    if r < 0.6:
        return text[:-1] + ', "format": "x"}' if text.endswith("}") else text
    if r < 0.7:
        return json.dumps(ODD_VALUES[rng.integers(len(ODD_VALUES))])
    return json.dumps(mutate_json_value(json.loads(text), rng), allow_nan=True)


def metadata_member(text: str) -> bytes:
    return npy(np.array(text))


def mutate_members(members, rng, weight_names):
    """One structural change to the list of ``(name, bytes)`` members; returns new members
    and, sometimes, per-member deflate flags."""
    m = list(members)
    r = rng.random()
    if r < 0.08:                                   # swap two members' contents
        i, j = rng.choice(len(m), 2, replace=False)
        m[i], m[j] = (m[i][0], m[j][1]), (m[j][0], m[i][1])
    elif r < 0.14:                                 # duplicate a member (same or other content)
        i = int(rng.integers(len(m)))
        other = m[int(rng.integers(len(m)))][1]
        m.insert(int(rng.integers(len(m) + 1)), (m[i][0], other if rng.random() < 0.5 else m[i][1]))
    elif r < 0.2:                                  # drop a member
        del m[int(rng.integers(len(m)))]
    elif r < 0.25:                                 # rename a member
        i = int(rng.integers(len(m)))
        m[i] = (rng.choice(["W9.npy", "metadata", "x.npy", "W1", "../evil.npy", "opt/step.npy"]), m[i][1])
    elif r < 0.3:                                  # an extra member
        m.append((rng.choice(["extra.npy", "W0.npy", "b7.npy"]), npy(np.zeros(3))))
    elif r < 0.55 and weight_names:                # weight values: NaN/inf/dtype
        w = weight_names[rng.integers(len(weight_names))]
        a = np.load(io.BytesIO(dict(m)[w + ".npy"]), allow_pickle=False)
        kind = rng.integers(7)
        if kind == 0 and a.size:
            a = a.astype(np.float64) if a.dtype.kind != "f" else a.copy()
            a.flat[rng.integers(a.size)] = rng.choice([np.nan, np.inf, -np.inf])
        elif kind == 1:
            a = np.nan_to_num(a * 10).astype(rng.choice([np.int64, np.int32, np.uint8, np.bool_]))
        elif kind == 2:
            a = a.astype(np.complex128)
        elif kind == 3:
            a = a.astype(rng.choice([np.float32, np.float16, np.longdouble]))
        elif kind == 4:
            a = a.T.copy() if a.ndim == 2 else a.reshape(-1, 1)
        elif kind == 5:
            a = np.asfortranarray(a) if a.ndim == 2 else a[:-1]
        else:
            a = a.astype(a.dtype.newbyteorder(">"))
        m = with_member(m, w + ".npy", npy(a))
    elif r < 0.75:                                 # .npy header edits
        i = int(rng.integers(len(m)))
        name, data = m[i]
        try:
            header, body = split_npy(data)
        except (struct.error, UnicodeDecodeError):
            return m, None
        k = rng.integers(4)
        if k == 0:
            header = "{'descr': %s, 'fortran_order': False, 'shape': %s, }" % (
                ODD_DESCRS[rng.integers(len(ODD_DESCRS))], _shape_of(header))
        elif k == 1:
            header = "{'descr': %s, 'fortran_order': False, 'shape': %s, }" % (
                _descr_of(header), ODD_SHAPES[rng.integers(len(ODD_SHAPES))])
        elif k == 2:
            header = header.replace("False", "True") if "False" in header else header.replace("True", "1")
        else:
            j = int(rng.integers(len(header) + 1))
            header = header[:j] + rng.choice(["{", "'", ")", "x", "\\x00", "(" * 200]) + header[j:]
        m[i] = (name, npy_raw(header, body))
    elif r < 0.9:                                  # metadata JSON edits
        meta = dict(m).get("metadata.npy")
        if meta is None:
            return m, None
        text = str(np.load(io.BytesIO(meta), allow_pickle=False))
        m = with_member(m, "metadata.npy", metadata_member(mutate_json_text(text, rng)))
    else:                                          # deflate members (zip-level variety)
        return m, [bool(rng.random() < 0.7) for _ in m]
    return m, None


def _shape_of(header: str) -> str:
    i = header.find("'shape':")
    return header[i + 8:].split(")")[0].strip() + ")" if i >= 0 else "(3,)"


def _descr_of(header: str) -> str:
    i = header.find("'descr':")
    return header[i + 8:].split(",")[0].strip() if i >= 0 else "'<f8'"


def zip_bomb_member(name: str, n_bytes: int, declared_shape: tuple) -> tuple[bytes, list]:
    """A zip whose deflated member ``name`` decompresses to an .npy of ``n_bytes`` zeros."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': %r, }" % (declared_shape,)
    body = npy_raw(header, b"")
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunks, crc, left, zero = [comp.compress(body)], zlib.crc32(body), n_bytes, bytes(1 << 20)
    while left > 0:
        block = zero[:min(left, len(zero))]
        chunks.append(comp.compress(block))
        crc = zlib.crc32(block, crc)
        left -= len(block)
    chunks.append(comp.flush())
    payload = b"".join(chunks)
    size = len(body) + n_bytes
    fn = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(payload),
                        size & 0xFFFFFFFF, len(fn), 0) + fn
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc,
                          len(payload), size & 0xFFFFFFFF, len(fn), 0, 0, 0, 0, 0, 0) + fn
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(payload), 0)
    return local + payload + central + end


def mutate_bytes(data: bytes, rng) -> bytes:
    """Byte-level damage: bit flips, truncation, overwritten or inserted/removed runs,
    huge declared member sizes."""
    out = bytearray(data)
    r = rng.random()
    if r < 0.35:
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(out)))
            out[i] ^= 1 << int(rng.integers(8))
    elif r < 0.55:
        del out[int(rng.integers(len(out))):]
    elif r < 0.7:
        i = int(rng.integers(len(out)))
        out[i:i + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
    elif r < 0.8:
        i, n = int(rng.integers(len(out))), int(rng.integers(1, 64))
        if rng.random() < 0.5:
            del out[i:i + n]
        else:
            out[i:i] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    else:
        return patch_sizes(data, rng, int(rng.choice([2**32 - 1, 2**31, 10**9, 1, 0,
                                                       int(rng.integers(1, 2**32))])))
    return bytes(out)


_BOMBS = {}


def zip_bomb(rng) -> bytes:
    """One of a few small files (tens of kB) that inflate to 8 or 32 MiB (over the ceiling the
    fuzz tests set, see :func:`small_ceiling`); the declared shape sometimes lies."""
    key = (int(rng.integers(3)), int(rng.integers(2)))
    if key not in _BOMBS:
        n = (8 << 20) if key[1] == 0 else (32 << 20)
        shape = [(n // 8,), (10**12,), (n // 16, 2)][key[0]]
        _BOMBS[key] = zip_bomb_member(["W1.npy", "metadata.npy", "b1.npy"][key[0]], n, shape)
    return _BOMBS[key]


def small_ceiling(monkeypatch):
    """Lower refnet's array-data ceiling to 4 MiB, so the fuzz bombs exceed it cheaply."""
    import refnet.npzfile

    monkeypatch.setattr(refnet.npzfile, "MAX_TOTAL_BYTES", 4 << 20)


def mutate_file(original: bytes, rng, weight_names) -> bytes:
    """One fuzz case: structured (members, headers, JSON) or byte-level damage, sometimes
    both; one case in fifty is a zip bomb."""
    r = rng.random()
    if r < 0.02:
        return zip_bomb(rng)
    if r < 0.4:
        return mutate_bytes(original, rng)
    members, compress = mutate_members(read_members(original), rng, weight_names)
    data = write_zip(members, compress)
    if r > 0.92:
        data = mutate_bytes(data, rng)
    return data


def expect_clean_error(fn, path, error: type, seed: int, failures: list):
    """Run ``fn()``: a ``error`` naming ``path`` is fine, anything else escaping is recorded.

    Returns the loaded value, or None after an error."""
    try:
        return fn()
    except error as e:
        if path.name not in str(e):
            failures.append((seed, f"message does not name the file: {e}"))
    except errors.RefnetError as e:
        failures.append((seed, f"wrong error family {type(e).__name__}: {e}"))
    except Exception as e:  # noqa: BLE001 - the point of the fuzz test is to find these
        failures.append((seed, f"unhandled {type(e).__name__}: {e!r}"[:300]))
    return None


def report(failures: list, n: int, what: str) -> str:
    lines = [f"{len(failures)} of {n} {what} fuzz cases failed; reproduce one with "
             "REFNET_FUZZ_SEED=<seed>:"]
    lines += [f"  seed {s}: {msg}" for s, msg in failures[:12]]
    return "\n".join(lines)
