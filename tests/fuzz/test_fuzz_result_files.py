"""Fuzzing result files (the validation scripts' npz + JSON record) and the reproduce run
record: refused with ResultFileError naming the file, or read back exactly as written."""
import json

import numpy as np
import pytest

from refnet.errors import ResultFileError
from refnet.reproduction.results import read_results, read_run_state, save_results

import fuzzkit as fk

N_CASES = 2000
N_STATE_CASES = 1000


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    out = tmp_path_factory.mktemp("res")
    arrays = {"accuracy": np.linspace(0.1, 0.9, 6).reshape(2, 3), "counts": np.arange(4),
              "S/mc": np.array([1.0, np.nan, 3.0]),  # NaN: a value the script did not compute
              "A/density": np.array(["0.1 / 784", "full"])}
    path = save_results(out, "demo", arrays, {"preset": "quick", "seed": 0, "n": [1, 2]})
    return read_results(path), path.read_bytes()


def test_fuzz_result_files(original, tmp_path, monkeypatch):
    fk.small_ceiling(monkeypatch)  # so the zip bombs among the cases exceed it
    (arrays0, record0), data = original
    failures, loaded = [], 0
    path = tmp_path / "fuzzed_result.npz"
    cases = fk.seeds(4, N_CASES)
    for seed in cases:
        rng = np.random.default_rng(seed)
        path.write_bytes(fk.mutate_file(data, rng, ["accuracy", "counts", "S/mc"]))
        out = fk.expect_clean_error(lambda: read_results(path), path, ResultFileError, seed, failures)
        if out is None:
            continue
        loaded += 1
        arrays, record = out
        if record != record0 or set(arrays) != set(arrays0) or not all(
                np.array_equal(arrays[k], arrays0[k], equal_nan=arrays0[k].dtype.kind == "f")
                and arrays[k].dtype == arrays0[k].dtype for k in arrays0):
            failures.append((seed, "a result file differing from the saved one was accepted"))
    assert not failures, fk.report(failures, len(cases), "result-file")
    assert loaded < len(cases) // 2


def test_fuzz_reproduce_run_record(tmp_path):
    state0 = {"preset": "quick", "seed": 0,
              "scripts": {"duque_fig4": {"seconds": 12.5}, "semenova_fig3": {"seconds": 3.0}}}
    text0 = json.dumps(state0, indent=1)
    failures = []
    path = tmp_path / "reproduce.json"
    cases = fk.seeds(5, N_STATE_CASES)
    for seed in cases:
        rng = np.random.default_rng(seed)
        if rng.random() < 0.3:
            raw = fk.mutate_bytes(text0.encode(), rng)
        else:
            raw = fk.mutate_json_text(text0, rng).encode()
        path.write_bytes(raw)
        state = fk.expect_clean_error(lambda: read_run_state(path), path, ResultFileError, seed,
                                      failures)
        if state is None:
            continue
        ok = (isinstance(state["preset"], str) and type(state["seed"]) is int
              and all(type(e["seconds"]) in (int, float) and np.isfinite(e["seconds"])
                      and e["seconds"] >= 0 for e in state["scripts"].values()))
        if not ok:
            failures.append((seed, f"accepted a wrongly typed run record {state!r}"[:200]))
    assert not failures, fk.report(failures, len(cases), "run-record")
