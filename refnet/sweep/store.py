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
from ..npzfile import BadContent, parse_json
from ..paths import NO_SUCH_FILE, file_problem, short_path
from .spec import SweepSpec, cell_id, parse_spec

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
    def _connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
        """A connection to the store at ``path``; ``create``: make the file and its tables
        where missing (a run), else only read what is there (a report writes nothing into a
        file that is not a sweep store: it had added the tables to any SQLite file)."""
        conn = None
        try:
            conn = sqlite3.connect(path, isolation_level=None)  # explicit transactions below
            if create:
                conn.executescript(_SCHEMA)
            else:
                tables = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"meta", "cells", "rungs"} <= tables:
                    conn.close()
                    raise ResultFileError(
                        f"{short_path(path)}: an SQLite file without a sweep's tables (it has: "
                        f"{', '.join(sorted(tables)) or 'none'}); give the folder of a sweep")
            return conn
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
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
                changed = _spec_difference(parse_json(meta.get("spec", "{}"), "stored spec"),
                                           spec.as_dict())
            except BadContent:
                changed = ["(unreadable stored spec)"]
            raise ConfigError(f"{folder}: this sweep folder was made with a different spec "
                              f"(changed: {', '.join(changed) or 'format'}); run the new spec with "
                              "another --out folder, or delete this one to start afresh")
        return cls(folder, conn, spec)

    @classmethod
    def open(cls, folder) -> "SweepStore":
        """Open an existing sweep folder for reading (its spec comes from the store)."""
        path = Path(folder) / STORE_NAME
        problem = file_problem(path)
        if problem == NO_SUCH_FILE:
            raise ResultFileError(f"{short_path(path)}: no sweep store here; run `refnet sweep "
                                  f"SPEC --out {short_path(folder)}` first")
        if problem is not None:  # a folder named like the store, a name too long ...
            raise ResultFileError(f"{short_path(path)} {problem}; give the folder of a sweep")
        conn = cls._connect(path, create=False)
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise ResultFileError(f"{path}: format {meta.get('format')!r}, expected {FORMAT}; "
                                  "rerun the sweep into a new folder")
        try:
            spec = parse_spec(parse_json(meta["spec"], "stored spec"), str(path))
        except (KeyError, BadContent, ConfigError) as e:
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

    def _cells(self):
        """``(cell_id, result, timing, problem)`` of every row in grid order; ``problem`` says
        why the row cannot be used (None: intact), see :func:`_cell_problem`."""
        for cid, text, digest, timing in self.conn.execute(
                "SELECT cell_id, result, digest, timing FROM cells ORDER BY position"):
            result, timing, problem = _cell_problem(cid, text, digest, timing, self.spec)
            yield cid, result, timing, problem

    def finished(self) -> dict[str, dict]:
        """``{cell_id: result}`` of the intact cells (corrupt rows are left out: redone)."""
        return {cid: result for cid, result, _, problem in self._cells() if problem is None}

    def rows(self) -> list[tuple[dict, dict]]:
        """``(result, timing)`` of the intact cells in grid order."""
        return [(result, timing) for _, result, timing, problem in self._cells() if problem is None]

    def corrupt(self) -> list[tuple[str, str]]:
        """``(cell_id, what is wrong)`` of the rows that are in the store but unusable (edited
        or damaged); rerunning the sweep recomputes them."""
        return [(cid, problem) for cid, _, _, problem in self._cells() if problem is not None]

    def halving(self) -> dict | None:
        """The successive-halving record (``meta`` row ``halving``), checked; None if absent.

        A damaged record is a :class:`ResultFileError` naming the store and the fix.
        """
        raw = self.get_meta("halving")
        if raw is None:
            return None
        try:
            info = json.loads(raw)
            ok = (isinstance(info, dict) and _is_int(info.get("eta"))
                  and _is_int(info.get("min_epochs")) and _strings(info.get("survivors"))
                  and isinstance(info.get("rungs"), list)
                  and all(isinstance(r, dict) and _is_int(r.get("epochs"))
                          and _is_int(r.get("scored")) and _strings(r.get("kept"))
                          for r in info["rungs"]))
        except (ValueError, RecursionError):
            ok = False
        if not ok:
            raise ResultFileError(
                f"{self.folder / STORE_NAME}: the successive-halving record (meta row "
                "'halving') is damaged; rerun the sweep with the same --halving ETA into this "
                "folder to rewrite it (its rungs are reused)")
        return info

    def rung_timings(self) -> dict[str, list[dict]]:
        """``{cell_id: [timing of each of its rungs]}`` (damaged timings left out)."""
        out: dict[str, list[dict]] = {}
        for cid, t in self.conn.execute("SELECT cell_id, timing FROM rungs ORDER BY epochs"):
            timing = _timing(t)
            if timing is not None:
                out.setdefault(cid, []).append(timing)
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
        result, timing = _json_object(row[0]), _timing(row[2])
        if (result is None or timing is None or not isinstance(row[3], bytes)
                or ("diverged" not in result and not _analytic_ok(result, [self.spec.report["noise_type"]],
                                                                   self.spec.report["variance"]))):
            return None  # damaged: the rung is recomputed
        return result, timing, bytes(row[3])


def _json_object(text):
    """``text`` as a JSON object, or None (not JSON, not an object, nested too deep)."""
    try:
        obj = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _is_int(v) -> bool:
    return type(v) is int


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(v, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(_number(x) for x in v)


def _strings(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _timing(text):
    timing = _json_object(text)
    return timing if timing is not None and _number(timing.get("wall_seconds")) else None


def _analytic_ok(result: dict, types, variance) -> bool:
    """``result["analytic"]`` holds a method and each type's predicted accuracies at its
    variances, ``variance`` among them."""
    a = result.get("analytic")
    if not (isinstance(a, dict) and isinstance(a.get("method"), str)
            and isinstance(a.get("variances"), list) and variance in a["variances"]
            and isinstance(a.get("by_type"), dict)):
        return False
    n = len(a["variances"])
    return all(isinstance(a["by_type"].get(t), dict)
               and _numbers(a["by_type"][t].get("predicted_accuracy"), n) for t in types)


def _cell_problem(cid: str, text, digest, timing_text, spec: SweepSpec):
    """``(result, timing, problem)`` of a cell row: ``problem`` is None if the row is intact
    (its digest matches, and it holds every field the report and a resume read, for the cell
    named by its settings), else what is wrong."""
    if not isinstance(text, str) or _sha(text) != digest:
        return None, None, "its result does not match its sha256 digest"
    result, timing = _json_object(text), _timing(timing_text)
    if result is None:
        return None, None, "its result is not a JSON object"
    if not isinstance(result.get("settings"), dict) or cell_id(result["settings"]) != cid:
        return None, None, "its result's settings are not those of the cell"
    if timing is None:
        return None, None, "its timing is not a JSON object with wall_seconds"
    if "diverged" in result:
        return result, timing, None if isinstance(result["diverged"], str) else \
            "its 'diverged' entry is not a text"
    types, variance = spec.evaluate["noise_types"], spec.report["variance"]
    mc = result.get("monte_carlo")
    fields_ok = (_number(result.get("clean_accuracy"))
                 and _number(result.get("baseline_clean_accuracy"))
                 and _analytic_ok(result, types, variance)
                 and isinstance(mc, dict) and isinstance(mc.get("variances"), list)
                 and variance in mc["variances"] and isinstance(mc.get("by_type"), dict)
                 and all(isinstance(mc["by_type"].get(t), dict)
                         and _numbers(mc["by_type"][t].get("accuracy"), len(mc["variances"]))
                         and _numbers(mc["by_type"][t].get("stderr"), len(mc["variances"]))
                         for t in types))
    return result, timing, None if fields_ok else "its result lacks fields the report reads"


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception, Ctrl-C included)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
