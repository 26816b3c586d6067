"""Fuzzing the dataset files refnet reads (IDX images/labels, a QuickDraw mirror manifest):
a DataError naming the file, or arrays of the declared type and range."""
import json

import numpy as np

from refnet.datasets._quickdraw_sources import _manifest
from refnet.datasets.idx import read_images, read_labels, write_idx
from refnet.errors import DataError

import fuzzkit as fk

N_CASES = 1000


def test_fuzz_idx_files(tmp_path):
    rng0 = np.random.default_rng(0)
    images, labels = tmp_path / "images0.idx", tmp_path / "labels0.idx"
    write_idx(images, rng0.integers(0, 256, (6, 4, 4)))
    write_idx(labels, rng0.integers(0, 10, 6))
    originals = {"images": images.read_bytes(), "labels": labels.read_bytes()}
    failures = []
    path = tmp_path / "fuzzed.idx"
    cases = fk.seeds(7, N_CASES)
    for seed in cases:
        rng = np.random.default_rng(seed)
        kind = "images" if seed % 2 else "labels"
        path.write_bytes(fk.mutate_bytes(originals[kind], rng))
        read = read_images if kind == "images" else (lambda p: read_labels(p, n_classes=10))
        out = fk.expect_clean_error(lambda: read(path), path, DataError, seed, failures)
        if out is None:
            continue
        ok = (out.dtype == np.uint8 and out.ndim == 2 if kind == "images"
              else out.dtype == np.int64 and out.ndim == 1 and ((out >= 0) & (out < 10)).all())
        if not ok:
            failures.append((seed, f"accepted {kind} of dtype {out.dtype}, shape {out.shape}"))
    assert not failures, fk.report(failures, len(cases), "IDX")


def test_fuzz_quickdraw_manifest(tmp_path):
    man0 = {"classes": {"cat": {"file": "cat.npy", "rows": 1000, "sha256": "ab" * 32},
                        "dog": {"file": "dog.npy", "rows": 10, "sha256": "cd" * 32,
                                "google_rows": 5}}}
    text0 = json.dumps(man0)
    failures = []
    path = tmp_path / "MANIFEST.json"
    cases = fk.seeds(8, N_CASES)
    for seed in cases:
        rng = np.random.default_rng(seed)
        path.write_bytes(fk.mutate_bytes(text0.encode(), rng) if rng.random() < 0.3
                         else fk.mutate_json_text(text0, rng).encode())
        out = fk.expect_clean_error(lambda: _manifest(tmp_path), path, DataError, seed, failures)
        if out is not None and not all(isinstance(e["file"], str) and type(e["rows"]) is int
                                       for e in out.values()):
            failures.append((seed, f"accepted a wrongly typed manifest {out!r}"[:200]))
    assert not failures, fk.report(failures, len(cases), "manifest")
