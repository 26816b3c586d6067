"""The result store of a sweep folder: one SQLite database, ``<folder>/sweep.sqlite``.

Why SQLite (the standard library's ``sqlite3``) and not one file per cell: a finished cell is
one ``INSERT`` in its own transaction, which SQLite's journal makes atomic and durable even
if the process is killed mid-write (a cell is in the store whole or not at all), the folder
holds one file instead of thousands, and any SQLite client can read it. Only the driver
process writes it (workers return results; they never open the store).

Tables::

    meta(key, value)                     format, the spec (canonical JSON) and its sha256
    cells(cell_id, position, result, digest, timing)
    rungs(cell_id, epochs, result, digest, timing, checkpoint)   successive halving

``result`` is canonical JSON of everything that is a function of the spec and the seeds
(settings, accuracies, predictions, refnet version): two runs of the same spec give the same
bytes. ``digest`` is its sha256; a row whose digest does not match is corrupt and is redone.
``timing`` (wall times, worker) varies between runs and is kept apart. No pickle: the halving
checkpoints are ``.npz`` bytes written by :func:`refnet.io.save_npz_atomic`'s format.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from ..errors import ConfigError, ResultFileError
from .spec import SweepSpec, parse_spec

__all__ = ["SweepStore", "canonical_json", "STORE_NAME"]

STORE_NAME = "sweep.sqlite"
FORMAT = "refnet-sweep-1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (cell_id TEXT PRIMARY KEY, position INTEGER NOT NULL,
    result TEXT NOT NULL, digest TEXT NOT NULL, timing TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rungs (cell_id TEXT NOT NULL, epochs INTEGER NOT NULL,
    result TEXT NOT NULL, digest TEXT NOT NULL, timing TEXT NOT NULL, checkpoint BLOB NOT NULL,
    PRIMARY KEY (cell_id, epochs));
"""


def canonical_json(obj) -> str:
    """JSON with sorted keys and no spaces: equal content, equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _spec_difference(old: dict, new: dict) -> list[str]:
    keys = []
    for table in sorted(set(old) | set(new)):
        a, b = old.get(table, {}), new.get(table, {})
        keys += [f"{table}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return keys


class SweepStore:
    """The store of one sweep folder. Use :meth:`create_or_open` (run) or :meth:`open` (read)."""

    def __init__(self, folder, conn: sqlite3.Connection, spec: SweepSpec):
        self.folder, self.conn, self.spec = Path(folder), conn, spec

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(path, isolation_level=None)  # explicit transactions below
            conn.executescript(_SCHEMA)
            return conn
        except sqlite3.DatabaseError as e:
            raise ResultFileError(f"{path}: not a readable sweep store ({e}); delete the file "
                                  "(its cells are recomputed) or choose another --out") from None

    @classmethod
    def create_or_open(cls, folder, spec: SweepSpec) -> "SweepStore":
        """Open ``folder``'s store for ``spec``, creating it; a different spec is a ConfigError."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / STORE_NAME
        conn = cls._connect(path)
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if not meta:
            with _transaction(conn):
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("format", FORMAT), ("spec", spec.canonical()), ("spec_sha256", spec.digest())])
        elif meta.get("spec_sha256") != spec.digest():
            conn.close()
            try:
                changed = _spec_difference(json.loads(meta.get("spec", "{}")), spec.as_dict())
            except json.JSONDecodeError:
                changed = ["(unreadable stored spec)"]
            raise ConfigError(f"{folder}: this sweep folder was made with a different spec "
                              f"(changed: {', '.join(changed) or 'format'}); run the new spec with "
                              "another --out folder, or delete this one to start afresh")
        return cls(folder, conn, spec)

    @classmethod
    def open(cls, folder) -> "SweepStore":
        """Open an existing sweep folder for reading (its spec comes from the store)."""
        path = Path(folder) / STORE_NAME
        if not path.is_file():
            raise ResultFileError(f"{path}: no sweep store here; run `refnet sweep SPEC --out "
                                  f"{folder}` first")
        conn = cls._connect(path)
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise ResultFileError(f"{path}: format {meta.get('format')!r}, expected {FORMAT}; "
                                  "rerun the sweep into a new folder")
        try:
            spec = parse_spec(json.loads(meta["spec"]), str(path))
        except (KeyError, json.JSONDecodeError, ConfigError) as e:
            raise ResultFileError(f"{path}: stored spec unreadable ({e}); rerun the sweep into "
                                  "a new folder") from None
        return cls(folder, conn, spec)

    def close(self) -> None:
        self.conn.close()

    def set_meta(self, key: str, value: str) -> None:
        with _transaction(self.conn):
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str):
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # --- cells -------------------------------------------------------------------------------
    def put(self, cell_id: str, position: int, result: dict, timing: dict) -> None:
        """Write one finished cell in its own transaction (atomic)."""
        text = canonical_json(result)
        with _transaction(self.conn):
            self.conn.execute("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?)",
                              (cell_id, int(position), text, _sha(text), canonical_json(timing)))

    def finished(self) -> dict[str, dict]:
        """``{cell_id: result}`` of the intact cells (corrupt rows are left out)."""
        out = {}
        for cid, text, digest in self.conn.execute("SELECT cell_id, result, digest FROM cells"):
            if _sha(text) == digest:
                try:
                    out[cid] = json.loads(text)
                except json.JSONDecodeError:
                    pass
        return out

    def rows(self) -> list[tuple[dict, dict]]:
        """``(result, timing)`` of the intact cells in grid order."""
        out = []
        for text, digest, timing in self.conn.execute(
                "SELECT result, digest, timing FROM cells ORDER BY position"):
            if _sha(text) == digest:
                out.append((json.loads(text), json.loads(timing)))
        return out

    def fingerprint(self) -> str:
        """sha256 over the cells' results in cell-id order: equal stores, equal fingerprints
        (timings excluded: they differ between any two runs)."""
        h = hashlib.sha256()
        for cid, text in self.conn.execute("SELECT cell_id, result FROM cells ORDER BY cell_id"):
            h.update(f"{cid}\n{text}\n".encode())
        return h.hexdigest()

    # --- successive halving -------------------------------------------------------------------
    def put_rung(self, cell_id: str, epochs: int, result: dict, timing: dict,
                 checkpoint: bytes) -> None:
        text = canonical_json(result)
        with _transaction(self.conn):
            self.conn.execute("INSERT OR REPLACE INTO rungs VALUES (?, ?, ?, ?, ?, ?)",
                              (cell_id, int(epochs), text, _sha(text), canonical_json(timing),
                               sqlite3.Binary(checkpoint)))

    def rung(self, cell_id: str, epochs: int):
        """``(result, timing, checkpoint bytes)`` of a cell's rung, or None (missing/corrupt)."""
        row = self.conn.execute("SELECT result, digest, timing, checkpoint FROM rungs WHERE "
                                "cell_id = ? AND epochs = ?", (cell_id, int(epochs))).fetchone()
        if row is None or _sha(row[0]) != row[1]:
            return None
        return json.loads(row[0]), json.loads(row[2]), bytes(row[3])

    def rung_timings(self) -> dict[str, list[dict]]:
        """``{cell_id: [timing of each of its rungs]}``."""
        out: dict[str, list[dict]] = {}
        for cid, t in self.conn.execute("SELECT cell_id, timing FROM rungs ORDER BY epochs"):
            out.setdefault(cid, []).append(json.loads(t))
        return out


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception, Ctrl-C included)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
