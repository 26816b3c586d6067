"""refnet.sweep: spec validation, resumable store, executors giving the same bits, report.

The done-when of issue #14 in small: a 3 x 3 lambda grid (Eq. 4 x Eq. 7) x 2 seeds on
synthetic data runs, is interrupted (an exception after k cells; a subprocess killed with
SIGKILL), resumes without redoing finished cells, and gives the same store as an uninterrupted
run; a local Dask cluster gives the same store as the local pool.
"""
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refnet.errors import ConfigError, ResultFileError
from refnet.sweep import SweepStore, cell_id, load_spec, parse_spec, run_sweep
from refnet.sweep import driver as sweep_driver
from refnet.sweep.store import STORE_NAME
from refnet.testing import NO_FALLBACK_WARNING

ROOT = Path(__file__).resolve().parents[2]
#: 3 x 3 lambdas x 2 seeds = 18 cells, each well under a second once numba has compiled.
SMALL = {
    "data": {"dataset": "synthetic", "hidden": [12, 12], "baseline_epochs": 2, "n_val": 100},
    "grid": {"eq4_lambda": [0.0, 1e-3, 1e-2], "eq7_lambda": [0.0, 3e-3, 3e-2], "seed": [0, 1],
             "epochs": [1], "eq7_variant": ["addunc_sigm_mnist"]},
    "evaluate": {"noise_types": ["add_unc", "add_cor"], "variances": [0.1, 1.0],
                 "repetitions": 2, "n_test": 200, "analytic_inputs": 50, "batch_size": 100},
}


def fingerprint(folder) -> str:
    store = SweepStore.open(folder)
    try:
        return store.fingerprint()
    finally:
        store.close()


def n_rows(folder) -> int:
    with sqlite3.connect(Path(folder) / STORE_NAME) as c:
        return c.execute("SELECT COUNT(*) FROM cells").fetchone()[0]


@pytest.fixture
def counting(monkeypatch):
    """Count the cells the driver trains (in-process executor)."""
    calls = []
    real = sweep_driver.run_cell

    def counted(task):
        calls.append(cell_id(task["settings"]))
        return real(task)

    monkeypatch.setattr(sweep_driver, "run_cell", counted)
    return calls


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted in-process run of SMALL."""
    folder = tmp_path_factory.mktemp("reference")
    s = run_sweep(parse_spec(SMALL), folder, workers=1, progress=None)
    assert len(s.computed) == 18 and s.baselines_trained == 2
    return folder


# --- spec --------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, key", [
    ({"grid": {"eq4_lamda": [0.1]}}, "grid.eq4_lamda"),
    ({"grid": {"eq4_lambda": [-1.0]}}, "grid.eq4_lambda[0]"),
    ({"grid": {"eq4_lambda": [{"7": 1e-3}]}}, "grid.eq4_lambda[0]"),
    ({"grid": {"eq4_lambda": [{"x": 1e-3}]}}, "grid.eq4_lambda[0]"),
    ({"grid": {"seed": [0, 0]}}, "grid.seed"),
    # one setting twice: two cells computing the same thing, shown as two points
    ({"grid": {"eq4_lambda": [0.0, -0.0]}}, "grid.eq4_lambda: a value is given twice"),
    ({"grid": {"eq7_lambda": [-0.0, 0]}}, "grid.eq7_lambda: a value is given twice"),
    ({"grid": {"eq4_lambda": [{"2": 1e-3, "02": 5e-3}]}},  # the last one was kept, silently
     "grid.eq4_lambda[0]: the keys '2' and '02' are both layer 2; give each layer once"),
    ({"grid": {"eq7_variant": ["eq8"]}}, "grid.eq7_variant[0]"),
    ({"grid": {"eq7_coefficients": [[1, 2]]}}, "grid.eq7_coefficients[0]"),
    ({"grid": {"eq7_variant": ["eq7"], "eq7_coefficients": [[1, 2, 3]]}}, "grid.eq7_coefficients"),
    ({"data": {"dataset": "cifar"}}, "data.dataset"),
    ({"data": {"hidden": []}}, "data.hidden"),
    ({"evaluate": {"noise_types": ["add_unc", "add_unc"]}}, "evaluate.noise_types"),
    ({"evaluate": {"repetitions": 0}}, "evaluate.repetitions"),
    ({"report": {"variance": 0.5}}, "report.variance"),
    ({"report": {"noise_type": "mul_cor"}, "evaluate": {"noise_types": ["add_unc"]}},
     "report.noise_type"),
    ({"grids": {}}, "[grids]"),
    ({"grid": {"eq4_variant": ["custom_sum"], "eq4_lambda": [{"2": 1.0}]}}, "grid.eq4_lambda"),
    ({"evaluate": {"noise_types": [["add_unc"]]}}, "evaluate.noise_types[0]: unknown ['add_unc']"),
    ({"evaluate": {"noise_types": [{"a": 1}]}}, "evaluate.noise_types[0]: unknown {'a': 1}"),
    ({"data": {"hidden": [10 ** 11]}}, "data.hidden: a layer of width 100000000000"),
    ({"data": {"hidden": [100_000, 100_000]}}, "data.hidden: layer sizes [784, 100000, 100000, 2]"),
    ({"data": {"hidden": [2] * 64}}, "data.hidden: 65 weight layers"),
    # an integer past a float's range: float() and math.isfinite raised OverflowError
    ({"grid": {"eq4_lambda": [10 ** 400]}}, "grid.eq4_lambda[0]: expected a finite number"),
    ({"evaluate": {"variances": [-10 ** 400]}}, "evaluate.variances: expected a finite number"),
    # sizes refused when the spec is read, not when the results array is allocated after the
    # baselines (10**11 repetitions: a MemoryError traceback for 1.46 TiB)
    ({"evaluate": {"repetitions": 10 ** 11}}, "evaluate.repetitions: expected an integer in"),
    ({"evaluate": {"variances": [1.0 + i for i in range(10_001)]}},
     "evaluate.variances: 10001 variances, at most"),
    ({"evaluate": {"variances": [1.0 + i for i in range(10_000)], "repetitions": 10_000}},
     "evaluate.variances/evaluate.repetitions: 10000 variances x 10000 repetitions"),
])
def test_spec_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError) as e:
        parse_spec(raw)
    assert key in str(e.value)


def test_spec_cells_product_and_per_layer_lambdas():
    spec = parse_spec({"data": {"hidden": [8, 8]},
                       "grid": {"eq4_lambda": [0.0, {"2": 1e-3, "-1": 1e-2}], "seed": [0, 1, 2]}})
    cells = spec.cells()
    assert len(cells) == 6
    assert {json.dumps(c["eq4_lambda"]) for c in cells} == {"0.0", '{"-1": 0.01, "2": 0.001}'}
    assert len({cell_id(c) for c in cells}) == 6


def test_spec_from_command_line_and_toml(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('[data]\ndataset = "synthetic"\n[grid]\neq4_lambda = [0.0, 1e-3]\n'
                    '[evaluate]\nvariances = [0.1, 1.0]\n')
    a = load_spec(toml, ["seed=0,1", "data.hidden=[20]"])
    b = load_spec(None, ["dataset=synthetic", "eq4_lambda=0,1e-3", "variances=0.1,1.0",
                         "seed=[0, 1]", "hidden=20"])
    assert a.canonical() == b.canonical() and len(a.cells()) == 4
    with pytest.raises(ConfigError, match="nonsense"):
        load_spec(None, ["nonsense=1"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_spec(bad)


@pytest.mark.parametrize("name, text, match", [
    ("deep.json", "[" * 100_000 + "]" * 100_000, "deep.json: nests deeper than 32 levels"),
    ("deepobj.json", '{"grid": {"seed": ' + "[" * 40 + "0" + "]" * 40 + "}}",
     "deepobj.json: nests deeper than 32 levels"),
    ("deep.toml", "[grid]\nseed = " + "[" * 5000 + "]" * 5000 + "\n",
     "deep.toml: nests deeper than 32 levels"),
    ("dup.json", '{"grid": {"seed": [0]}, "grid": {"seed": [1]}}',
     "dup.json: a JSON object repeats the key 'grid'"),
    ("dup2.json", '{"grid": {"seed": [0], "seed": [1]}}', "repeats the key 'seed'"),
])
def test_spec_files_nested_too_deep_or_with_repeated_keys_are_refused(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_spec(tmp_path / name)


@pytest.mark.parametrize("name, text", [("empty.toml", ""), ("comments.toml", "# later\n"),
                                        ("empty.json", "{}")])
def test_an_empty_spec_file_is_refused(tmp_path, name, text):
    """It ran every default, a 30-epoch MNIST baseline and its cell, without a word."""
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=f"{name}: the spec file is empty"):
        load_spec(tmp_path / name)
    with pytest.raises(ConfigError, match="the spec file is empty"):  # not made up by --set
        load_spec(tmp_path / name, ["seed=0"])


def test_a_spec_file_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors write one: "cannot be parsed (Invalid statement (at line 1, column 1))"."""
    for name, text in (("s.toml", '[data]\ndataset = "synthetic"\n'),
                       ("s.json", '{"data": {"dataset": "synthetic"}}')):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert load_spec(tmp_path / name).data["dataset"] == "synthetic"


def test_a_spec_file_that_cannot_be_read_says_so_not_fix_the_syntax(tmp_path, monkeypatch):
    """A spec without read permission was "cannot be parsed ([Errno 13] Permission denied:
    ...); fix the syntax" (the tests may run as root, who reads every file: the error is made)."""
    spec = tmp_path / "s.toml"
    spec.write_text('[data]\ndataset = "synthetic"\n')

    def unreadable(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", unreadable)
    with pytest.raises(ConfigError) as e:
        load_spec(spec)
    assert str(e.value) == (f"{spec}: cannot be read (Permission denied); make it readable "
                            "(its permissions), or give another spec")


def test_an_override_of_an_unknown_table_names_the_override(tmp_path):
    """It was reported as an unknown table of the spec file: "s.toml: [data.hidden]"."""
    (tmp_path / "s.toml").write_text("[grid]\nseed = [0]\n")
    with pytest.raises(ConfigError, match=r"override 'data\.hidden\.x=1': unknown table "
                                          r"'data\.hidden'; use data, grid, evaluate, report"):
        load_spec(tmp_path / "s.toml", ["data.hidden.x=1"])


def test_ambiguous_or_too_deep_command_line_keys_are_refused():
    with pytest.raises(ConfigError, match=r"'batch_size' is in \[data\] and \[evaluate\]; say "
                                          r"which: --set data.batch_size=\.\.\. or "
                                          r"--set evaluate.batch_size="):
        load_spec(None, ["batch_size=7"])
    assert load_spec(None, ["evaluate.batch_size=7"]).evaluate["batch_size"] == 7
    with pytest.raises(ConfigError, match="nests deeper than 32 levels"):
        load_spec(None, ["seed=" + "[" * 2000 + "0" + "]" * 2000])
    with pytest.raises(ConfigError, match="repeats the key '2'"):
        load_spec(None, ['eq4_lambda={"2": 1e-3, "2": 1e-2}'])


@pytest.mark.parametrize("text, problem", [
    ('{"grid": {"seed": [0]}, "grid": {}}', "a JSON object repeats the key 'grid'"),
    ('{"grid": {"seed": ' + "[" * 40 + "]" * 40 + "}}", "nests deeper than 32 levels"),
    ("[" * 100_000 + "]" * 100_000, "nests deeper than 32 levels"),
    ('{"grid": {"seed": [' + "1" * 5000 + "]}}", "is not valid JSON (Exceeds the limit"),
    ('{"grid": ', "is not valid JSON (Expecting value"),
])
def test_spec_and_file_metadata_share_one_json_reader(tmp_path, text, problem):
    """A spec's JSON and a refnet file's metadata are refused by the same rules
    (npzfile.parse_json_value); the spec's message names the spec file and the fix."""
    from refnet.npzfile import BadContent, parse_json
    with pytest.raises(BadContent) as e:
        parse_json(text, "metadata")
    assert str(e.value).startswith("metadata") and problem in str(e.value)
    spec = tmp_path / "s.json"
    spec.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_spec(spec)
    assert str(e.value).startswith(f"{spec}") and problem in str(e.value)
    assert str(e.value).endswith(("fix the syntax (each key once)",
                                  "a spec needs at most a list of tables or lists"))


def test_command_line_items_past_the_digit_limit_or_nested_too_deep_are_config_errors():
    """parse_cli_value read comma-separated items with json.loads and caught only
    JSONDecodeError: a 5000-digit integer (a plain ValueError) and a deeply nested item
    (RecursionError) escaped as tracebacks."""
    with pytest.raises(ConfigError, match=r"grid\.seed\[1\]: expected an integer in 0\.\."):
        load_spec(None, ["seed=0," + "1" * 5000])
    with pytest.raises(ConfigError, match="nests deeper than 32 levels; a spec needs at most"):
        load_spec(None, ["seed=0," + "[" * 100_000 + "]" * 100_000])


def test_an_override_without_a_value_says_so():
    """'--set eq4_lambda=' was read as JSON ('' is in every string, so it passed the '[{'
    test) and refused as "value '' is not valid JSON; quote it for the shell"."""
    for item in ("eq4_lambda=", "eq4_lambda=  "):
        with pytest.raises(ConfigError, match=f"override {item!r}: no value after '='"):
            load_spec(None, [item])
    from refnet.sweep.spec import parse_cli_value
    assert parse_cli_value("") == "" and parse_cli_value("[1, 2]") == [1, 2]


def test_cli_nested_noise_types_is_one_line(tmp_path, capsys):
    from refnet.cli import main
    spec = tmp_path / "s.toml"
    spec.write_text('[evaluate]\nnoise_types = [["add_unc"]]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "evaluate.noise_types[0]: unknown ['add_unc']" in err
    assert not (tmp_path / "out").exists()


# --- resume and safety -------------------------------------------------------------------------
def test_exception_after_k_cells_then_resume_redoes_nothing(tmp_path, reference, counting):
    spec = parse_spec(SMALL)

    class Stop(Exception):
        pass

    def stop_after(n):
        if n == 5:
            raise Stop

    with pytest.raises(Stop):
        run_sweep(spec, tmp_path, workers=1, progress=None, on_cell=stop_after)
    assert n_rows(tmp_path) == 5 and len(counting) == 5
    first = list(counting)
    s = run_sweep(spec, tmp_path, workers=1, progress=None)
    assert s.skipped == 5 and s.baselines_trained == 0  # baselines are cached in the folder
    assert len(counting) == 18 and not set(first) & set(counting[5:])  # each cell trained once
    assert fingerprint(tmp_path) == fingerprint(reference)
    again = run_sweep(spec, tmp_path, workers=1, progress=None)
    assert again.computed == () and len(counting) == 18


def _start_cli_sweep(tmp_path):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SMALL))
    folder = tmp_path / "run"
    # a crash (one run of the full suite saw SIGSEGV here, not reproduced since) prints
    # every thread's stack to the stderr the test shows
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "refnet.cli", "sweep", str(spec_file),
                             "--out", str(folder), "--workers", "1", "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            # a test run started in the background inherits an ignored SIGINT,
                            # which Python then keeps ignoring: give the child the default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return spec_file, folder, proc


def _head_and_tail(err: bytes, n: int = 3000) -> str:
    """A child's stderr for an assertion message: its start and its end. A faulthandler dump
    starts with the thread that crashed, and a traceback ends with the error."""
    text = err.decode(errors="replace")
    return text if len(text) <= 2 * n else f"{text[:n]}\n[...]\n{text[-n:]}"


def _wait_for_rows(proc, folder, k):
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if (folder / STORE_NAME).exists() and n_rows(folder) >= k:
                return
        except sqlite3.OperationalError:  # the writer holds the lock for a moment
            pass
        time.sleep(0.05)
    raise AssertionError(f"the sweep ended or stalled before {k} cells: "
                         + proc.stderr.read().decode()[-2000:])


def test_sigkill_mid_sweep_then_resume_gives_the_same_store(tmp_path, reference, counting):
    spec_file, folder, proc = _start_cli_sweep(tmp_path)
    _wait_for_rows(proc, folder, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    k = n_rows(folder)
    assert 4 <= k < 18
    s = run_sweep(load_spec(spec_file), folder, workers=1, progress=None)
    assert s.skipped == k and len(counting) == 18 - k and len(s.computed) == 18 - k
    assert fingerprint(folder) == fingerprint(reference)


def test_ctrl_c_stops_cleanly_keeping_finished_cells(tmp_path, reference):
    spec_file, folder, proc = _start_cli_sweep(tmp_path)
    _wait_for_rows(proc, folder, 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err.decode(), _head_and_tail(err)
    assert "interrupted" in err.decode()
    k = n_rows(folder)
    assert 3 <= k < 18
    s = run_sweep(load_spec(spec_file), folder, workers=1, progress=None)
    assert s.skipped == k and len(s.computed) == 18 - k
    assert fingerprint(folder) == fingerprint(reference)


def test_corrupt_row_is_redone_and_only_it(tmp_path, reference, counting):
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / STORE_NAME).write_bytes((reference / STORE_NAME).read_bytes())
    for f in (reference / "baselines").iterdir():
        (folder / "baselines").mkdir(exist_ok=True)
        (folder / "baselines" / f.name).write_bytes(f.read_bytes())
    with sqlite3.connect(folder / STORE_NAME) as c:
        victim = c.execute("SELECT cell_id FROM cells ORDER BY position LIMIT 1 OFFSET 7"
                           ).fetchone()[0]
        c.execute("UPDATE cells SET result = replace(result, '0.', '1.') WHERE cell_id = ?",
                  (victim,))
    assert fingerprint(folder) != fingerprint(reference)
    s = run_sweep(parse_spec(SMALL), folder, workers=1, progress=None)
    assert s.computed == (victim,) and counting == [victim]
    assert fingerprint(folder) == fingerprint(reference)


def test_damaged_baseline_is_set_aside_and_trained_again(tmp_path, reference, counting):
    """A truncated cached baseline stopped the sweep with advice to train it again by hand; it
    is now kept as <name>.damaged and retrained (the same bits: the store is unchanged)."""
    folder = _copy(reference, tmp_path / "copy")
    with sqlite3.connect(folder / STORE_NAME) as c:
        victim = c.execute("SELECT cell_id FROM cells ORDER BY position LIMIT 1").fetchone()[0]
        c.execute("DELETE FROM cells WHERE cell_id = ?", (victim,))  # one cell needs it
    base = sorted((folder / "baselines").glob("*.npz"))[0]
    good = base.read_bytes()
    base.write_bytes(good[:len(good) // 2])
    lines = []
    s = run_sweep(parse_spec(SMALL), folder, workers=1, progress=None, log=lines.append)
    assert s.baselines_trained == 1 and s.computed == (victim,)
    assert base.with_name(base.name + ".damaged").read_bytes() == good[:len(good) // 2]
    assert any(f"{base}: unusable (" in ln and "training it again" in ln for ln in lines)
    assert fingerprint(folder) == fingerprint(reference)


def _copy(reference, folder):
    folder.mkdir()
    (folder / STORE_NAME).write_bytes((reference / STORE_NAME).read_bytes())
    (folder / "baselines").mkdir()
    for f in (reference / "baselines").iterdir():
        (folder / "baselines" / f.name).write_bytes(f.read_bytes())
    return folder


def _edit_victim(folder, column, edit):
    """Replace ``column`` of the 8th cell row by ``edit(old)``, with the result's digest
    recomputed (an edit that the digest alone does not catch); returns the cell id."""
    import hashlib
    with sqlite3.connect(folder / STORE_NAME) as c:
        victim, old = c.execute(f"SELECT cell_id, {column} FROM cells ORDER BY position "
                                "LIMIT 1 OFFSET 7").fetchone()
        new = edit(old)
        c.execute(f"UPDATE cells SET {column} = ? WHERE cell_id = ?", (new, victim))
        if column == "result":
            c.execute("UPDATE cells SET digest = ? WHERE cell_id = ?",
                      (hashlib.sha256(new.encode()).hexdigest(), victim))
    return victim


def _drop_monte_carlo(text):
    d = json.loads(text)
    del d["monte_carlo"]
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("column, edit, problem", [
    ("result", _drop_monte_carlo, "its result lacks fields the report reads"),
    ("timing", lambda t: "{bad", "its timing is not a JSON object with wall_seconds"),
])
def test_edited_row_with_a_valid_digest_is_refused_by_the_report_and_redone(
        tmp_path, reference, counting, column, edit, problem):
    from refnet.sweep.report import write_report
    folder = _copy(reference, tmp_path / "copy")
    victim = _edit_victim(folder, column, edit)
    with pytest.raises(ResultFileError, match=f"sweep.sqlite: 1 cell row\\(s\\) are damaged or "
                                              f"edited \\(cell {victim}: {problem}\\); rerun"):
        write_report(folder)
    assert not (folder / "report").exists()
    s = run_sweep(parse_spec(SMALL), folder, workers=1, progress=None)
    assert s.computed == (victim,) and counting == [victim]
    assert fingerprint(folder) == fingerprint(reference)
    write_report(folder)


def test_damaged_halving_record_is_a_result_file_error(tmp_path, reference):
    from refnet.sweep.report import write_report
    folder = _copy(reference, tmp_path / "copy")
    with sqlite3.connect(folder / STORE_NAME) as c:
        c.execute("INSERT OR REPLACE INTO meta VALUES ('halving', '{\"eta\": [1]}')")
    with pytest.raises(ResultFileError, match="sweep.sqlite: the successive-halving record "
                                              "\\(meta row 'halving'\\) is damaged; rerun"):
        write_report(folder)


def test_stored_spec_nested_too_deep_is_a_result_file_error(tmp_path, reference):
    """The stored spec was read with json.loads: 100,000 nested brackets were a RecursionError
    on report and on resume (a changed spec too)."""
    from refnet.sweep.report import write_report
    folder = _copy(reference, tmp_path / "copy")
    with sqlite3.connect(folder / STORE_NAME) as c:
        c.execute("UPDATE meta SET value = ? WHERE key = 'spec'", ("[" * 100000 + "]" * 100000,))
    with pytest.raises(ResultFileError, match="stored spec unreadable.*nests deeper"):
        write_report(folder)
    with sqlite3.connect(folder / STORE_NAME) as c:
        c.execute("UPDATE meta SET value = 'x' WHERE key = 'spec_sha256'")
    with pytest.raises(ConfigError, match="unreadable stored spec"):
        run_sweep(parse_spec(SMALL), folder, workers=1, progress=None)


@pytest.mark.parametrize("halving", [{"eta": 1, "min_epochs": 1}, {"eta": 2, "min_epochs": 1}])
def test_halving_that_cannot_run_is_refused_before_any_work(tmp_path, halving):
    """--halving 1, or a grid of one epoch, was refused after the store and the baselines."""
    with pytest.raises(ConfigError, match="--halving"):
        run_sweep(parse_spec(SMALL), tmp_path / "h", workers=1, progress=None, halving=halving)
    assert not (tmp_path / "h").exists()


def test_changed_spec_for_a_folder_is_an_error(tmp_path, reference):
    changed = json.loads(json.dumps(SMALL))
    changed["grid"]["eq4_lambda"] = [0.0, 2e-3, 1e-2]
    with pytest.raises(ConfigError, match=r"different spec.*grid\.eq4_lambda"):
        run_sweep(parse_spec(changed), reference, workers=1, progress=None)
    (tmp_path / STORE_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(ResultFileError, match=STORE_NAME):
        run_sweep(parse_spec(SMALL), tmp_path, workers=1, progress=None)


# --- executors ---------------------------------------------------------------------------------
def test_local_pool_gives_the_same_store(tmp_path, reference):
    s = run_sweep(parse_spec(SMALL), tmp_path, workers=2, progress=None)
    assert s.executor.startswith("local pool") and len(s.computed) == 18
    assert fingerprint(tmp_path) == fingerprint(reference)


def test_local_pool_starts_no_more_workers_than_tasks():
    from refnet.sweep.executors import make_executor
    assert make_executor(8, tasks=2).workers == 2  # nothing started before `with`
    assert make_executor(8, tasks=2).name == "local pool (2 processes)"
    assert make_executor(None, tasks=1).name == "local pool (1 process)"
    assert make_executor(3, tasks=10).workers == 3


def test_sweep_starts_no_more_local_workers_than_cells_left(tmp_path, reference, monkeypatch):
    """--workers 1024 started 1024 processes however few cells were left."""
    import shutil
    from refnet.sweep.executors import InProcess
    folder = tmp_path / "s"
    shutil.copytree(reference, folder)
    with sqlite3.connect(folder / STORE_NAME) as c:  # two cells left to run
        c.execute("DELETE FROM cells WHERE rowid IN (SELECT rowid FROM cells LIMIT 2)")
    sized, real = [], sweep_driver.make_executor

    def sized_in_process(workers, scheduler, **kw):
        sized.append(real(workers, scheduler, **kw).workers)  # the pool it would start
        return InProcess()

    monkeypatch.setattr(sweep_driver, "make_executor", sized_in_process)
    s = run_sweep(parse_spec(SMALL), folder, workers=64, progress=None)
    assert sized == [2] and len(s.computed) == 2


def test_cli_workers_beyond_the_usable_cores_is_a_usage_error(tmp_path, monkeypatch, capsys):
    from refnet.cli import main
    from refnet.sweep import executors
    monkeypatch.setattr(executors, "available_cores", lambda: 2)
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(SMALL))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--workers 3: this machine lets refnet use 2 core(s)" in err
    assert "give at most 2" in err and not (tmp_path / "out").exists()


#: A sweep driver's pool, its workers busy on long cells (a parent-death watch of ``poll``
#: instead of LocalPool's, for the fallback of systems without prctl).
_POOL_DRIVER = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from refnet.sweep import executors

if __name__ == "__main__":
    if sys.argv[1] == "poll":
        pool = ProcessPoolExecutor(2, mp_context=get_context("spawn"),
                                   initializer=executors._watch_parent, initargs=(os.getpid(),))
        list(pool.map(int, range(2)))
    else:
        ex = executors.LocalPool(2).__enter__()
        pool = ex.pool
    print(*sorted(pool._processes), flush=True)
    list(pool.map(time.sleep, [60, 60]))
"""


def _running(pid: int) -> bool:
    """``pid`` exists and is no zombie (an orphan killed under a PID 1 that reaps nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("watch", ["prctl", "poll"])
def test_local_pool_workers_exit_when_the_driver_is_killed(tmp_path, watch):
    """The workers of a SIGKILLed driver ran on orphaned (busy, then idle forever)."""
    script = tmp_path / "driver.py"
    script.write_text(_POOL_DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, str(script), watch], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    workers = [int(p) for p in driver.stdout.readline().split()]
    try:
        assert len(workers) == 2 and all(map(_running, workers))
        time.sleep(0.3)  # the sleeps handed out: the workers are busy
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 10
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_running, workers))
    finally:
        for pid in filter(_running, workers):
            os.kill(pid, signal.SIGKILL)


def _a_worker_is_starting(driver: int, folder: Path) -> bool:
    """A pool worker of ``driver`` has loaded NumPy: it is importing refnet (before, Python
    may not have set up its own SIGINT handler, and the signal ends it without a word)."""
    try:
        children = Path(f"/proc/{driver}/task/{driver}/children").read_text().split()
        return any(b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
                   and "_multiarray_umath" in Path(f"/proc/{c}/maps").read_text()
                   for c in children)
    except (FileNotFoundError, ProcessLookupError):  # a child gone meanwhile
        return False


def _one_worker_trains_the_other_waits(driver: int, folder: Path) -> bool:
    """One baseline on two workers: its checkpoint is there once one of them is at work."""
    return any((folder / "baselines").glob("*.ckpt.npz"))


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
@pytest.mark.parametrize("when, whom", [(_a_worker_is_starting, os.killpg),
                                        (_one_worker_trains_the_other_waits, os.killpg),
                                        (_one_worker_trains_the_other_waits, os.kill)],
                         ids=["workers-starting", "a-worker-idle", "kill-INT-the-driver"])
def test_ctrl_c_stops_a_local_pool_with_one_line(tmp_path, when, whom):
    """A terminal's Ctrl-C reaches the driver and its workers (one process group). A worker
    still importing, or idle on the task queue, printed "Process SpawnProcess-1: Traceback
    ... KeyboardInterrupt" under the driver's one line. ``kill -INT`` of the driver alone
    left the running cells to run to their end (here minutes) before it could exit."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**SMALL, "data": {**SMALL["data"], "baseline_epochs": 5000},
                                "grid": {**SMALL["grid"], "seed": [0]}}))
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "refnet.cli", "sweep", str(spec), "--out",
                             str(folder), "--workers", "2", "--no-progress"],
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "PYTHONWARNINGS": NO_FALLBACK_WARNING},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,  # its own group, as a terminal's job
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not when(proc.pid, folder) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        whom(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # the baseline alone takes minutes
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], err


def test_dask_local_cluster_gives_the_same_store(tmp_path, reference, monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    from refnet.sweep.executors import DaskCluster

    scattered = []
    share = DaskCluster.share
    monkeypatch.setattr(DaskCluster, "share",
                        lambda self, obj: scattered.append(obj) or share(self, obj))
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        s = run_sweep(parse_spec(SMALL), tmp_path, scheduler=client, progress=None)
    assert s.executor.startswith("Dask") and len(s.computed) == 18
    # each seed's baseline went to the workers once, not with each of its 9 cells
    assert len(scattered) == 2
    assert fingerprint(tmp_path) == fingerprint(reference)
    # the driver kept a copy of each baseline the remote workers trained
    assert len(list((tmp_path / "baselines").glob("*.npz"))) == 2


def test_dask_address_that_is_not_one_is_a_config_error_naming_the_flag():
    pytest.importorskip("dask.distributed")
    from refnet.sweep.executors import DaskCluster

    with pytest.raises(ConfigError, match="--scheduler notanaddress: cannot connect"):
        with DaskCluster("notanaddress"):
            pass


# --- report ------------------------------------------------------------------------------------
def _pt(name, clean, noisy, base=0.9):
    from refnet.sweep.report import Point

    return Point(name, {"seed": 0, "eq4_lambda": float(len(name))}, clean, noisy, 0.01, noisy,
                 base, 1.0)


def test_pareto_front_by_hand():
    from refnet.sweep.report import pareto_front

    pts = [_pt("a", 0.90, 0.50), _pt("b", 0.85, 0.70), _pt("c", 0.84, 0.60),  # c: dominated by b
           _pt("d", 0.80, 0.80), _pt("e", 0.90, 0.40), _pt("f", 0.80, 0.80)]  # e < a; f == d
    assert pareto_front(pts) == [3, 5, 1, 0]


@pytest.mark.parametrize("text, parsed", [("drop<=1pp", ("drop", 0.01)),
                                          (" drop <= 0.5 pp ", ("drop", 0.005)),
                                          ("clean>=97%", ("clean", 0.97)),
                                          ("clean>=0.9", ("clean", 0.9))])
def test_constraint_parsing(text, parsed):
    from refnet.sweep.report import parse_constraint

    kind, x = parse_constraint(text)
    assert kind == parsed[0] and x == pytest.approx(parsed[1])


@pytest.mark.parametrize("text", ["drop<1pp", "drop<=1", "drop>=1pp", "clean<=97%", "clean>=97pp",
                                  "clean>=120%", "noisy>=0.5", "", "drop<=1pp and more"])
def test_bad_constraints_are_config_errors(text):
    from refnet.sweep.report import parse_constraint

    with pytest.raises(ConfigError, match="--best"):
        parse_constraint(text)


def test_best_cell_maximises_noisy_accuracy_under_the_constraint():
    from refnet.sweep.report import best_cell

    pts = [_pt("a", 0.90, 0.50), _pt("b", 0.895, 0.60), _pt("c", 0.88, 0.70), _pt("d", 0.70, 0.9)]
    assert best_cell(pts, "drop<=1pp").cell_id == "b"
    assert best_cell(pts, "drop<=2pp").cell_id == "c"
    assert best_cell(pts, "clean>=0.5").cell_id == "d"
    with pytest.raises(ConfigError, match="no finished cell"):
        best_cell(pts, "clean>=95%")


def test_report_files_and_cli_best(reference, capsys):
    from refnet.cli import main
    from refnet.sweep.report import best_cell, points

    assert main(["sweep", "--out", str(reference), "--best", "drop<=2pp", "--no-progress"]) == 0
    out = capsys.readouterr().out
    store = SweepStore.open(reference)
    pts = points(store)
    store.close()
    chosen = best_cell(pts, "drop<=2pp")
    assert f"cell {chosen.cell_id}" in out
    md = (reference / "report" / "front.md").read_text()
    assert "| cell | eq4_lambda | eq7_lambda | seed |" in md and chosen.cell_id in md
    assert (reference / "report" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sweep", "--out", str(reference), "--best", "drop<1pp"]) == 2
    assert "--best 'drop<1pp'" in capsys.readouterr().err


def test_a_report_into_another_folder_only_reads_out(reference, tmp_path, monkeypatch, capsys):
    """--out and --report-dir are checked before any work; reporting on a finished sweep into
    another --report-dir only reads --out, so a sweep folder that may not be written is fine."""
    import refnet.paths
    from refnet.cli import main

    real = refnet.paths.os.access
    monkeypatch.setattr(refnet.paths.os, "access", lambda p, mode: reference not in (
        Path(p), *Path(p).parents) and real(p, mode))  # root may write anyway
    rep = tmp_path / "rep"
    assert main(["sweep", "--out", str(reference), "--report-dir", str(rep), "--no-progress"]) == 0
    assert (rep / "front.md").is_file() and (rep / "pareto.png").is_file()
    assert main(["sweep", "--out", str(reference), "--no-progress"]) == 2  # into OUT/report
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--out: {reference / 'report'}: cannot write in the folder {reference}" in err


@pytest.mark.parametrize("content", ["other database", "empty file", "not sqlite"])
def test_reading_a_folder_whose_store_is_not_a_sweeps_changes_nothing(tmp_path, content):
    """Opening for a report added the sweep's three tables to whatever SQLite file had the
    store's name (another program's database, an empty file) before finding no spec."""
    path = tmp_path / STORE_NAME
    if content == "other database":
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE mine (x INTEGER)")
            conn.commit()
    else:
        path.write_bytes(b"" if content == "empty file" else b"plain text, not a database")
    before = path.read_bytes()
    want = {"other database": "without a sweep's tables \\(it has: mine\\)",
            "empty file": "without a sweep's tables \\(it has: none\\)",
            "not sqlite": "not a readable sweep store"}[content]
    with pytest.raises(ResultFileError, match=want):
        SweepStore.open(tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [STORE_NAME]


# --- successive halving ------------------------------------------------------------------------
def test_halving_then_full_grid_gives_the_grid_store(tmp_path, counting):
    """Survivors resumed from their rung checkpoints are the very cells of a full run."""
    from refnet.sweep.halving import rung_schedule
    from refnet.sweep.report import write_report

    assert rung_schedule(9, 3, 1) == [1, 3] and rung_schedule(10, 2, 2) == [2, 4, 8]
    with pytest.raises(ConfigError, match="min_epochs"):
        rung_schedule(2, 3, 2)
    raw = {**SMALL, "grid": {**SMALL["grid"], "seed": [0], "epochs": [3]}}
    spec = parse_spec(raw)
    h = run_sweep(spec, tmp_path / "h", workers=1, progress=None,
                  halving={"eta": 3, "min_epochs": 1})
    assert len(h.computed) == 3 and h.halving["rungs"][0]["scored"] == 9
    assert set(h.computed) == set(h.halving["survivors"])
    assert "run the same spec without" in write_report(tmp_path / "h")["halving"]
    rest = run_sweep(spec, tmp_path / "h", workers=1, progress=None)
    assert rest.skipped == 3 and len(rest.computed) == 6
    full = run_sweep(spec, tmp_path / "full", workers=1, progress=None)
    assert len(full.computed) == 9
    assert fingerprint(tmp_path / "h") == fingerprint(tmp_path / "full")
    summary = write_report(tmp_path / "h")["halving"]
    assert "saved" in summary and ("was kept" in summary or "NOT kept" in summary)


def test_cli_grid_from_set_only_then_changed_spec_is_one_line(tmp_path, capsys):
    from refnet.cli import main

    args = ["sweep", "--out", str(tmp_path), "--workers", "1", "--no-progress",
            "--set", "dataset=synthetic", "--set", "hidden=8", "--set", "baseline_epochs=1",
            "--set", "n_val=50", "--set", "eq4_lambda=0,1e-2", "--set", "epochs=1",
            "--set", "noise_types=add_cor", "--set", "variances=1.0", "--set", "repetitions=2",
            "--set", "noise_type=add_cor", "--set", "n_test=100", "--set", "analytic_inputs=20"]
    assert main(args) == 0
    assert "2 cells: 0 already finished, 2 computed" in capsys.readouterr().out
    assert main(args) == 0
    assert "2 cells: 2 already finished, 0 computed" in capsys.readouterr().out
    assert main(args[:-1] + ["analytic_inputs=30"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "evaluate.analytic_inputs" in err and "--out" in err


def test_progress_goes_to_the_given_stream(tmp_path):
    """refnet's one progress display: on a log (not a terminal) the final line only."""
    import io

    raw = {**SMALL, "grid": {"eq4_lambda": [0.0, 1e-2], "seed": [0], "epochs": [1]}}
    buf = io.StringIO()
    run_sweep(parse_spec(raw), tmp_path, workers=1, progress=buf)
    assert "sweep on in-process: 2/2 cells (100%) in " in buf.getvalue()


def test_a_diverging_cell_is_recorded_and_the_sweep_goes_on(tmp_path):
    from refnet.sweep.report import write_report

    raw = {**SMALL, "grid": {"eq4_lambda": [0.0, 1e308], "seed": [0], "epochs": [1]}}
    s = run_sweep(parse_spec(raw), tmp_path, workers=1, progress=None)
    assert len(s.computed) == 2
    store = SweepStore.open(tmp_path)
    results = {r["settings"]["eq4_lambda"]: r for r, _ in store.rows()}
    store.close()
    assert "diverged" not in results[0.0] and "epoch 1, batch 1" in results[1e308]["diverged"]
    rep = write_report(tmp_path)
    assert len(rep["front"]) == 1 and "1 cell(s) diverged" in rep["markdown"].read_text()


def test_seed_means_pool_the_seeds_of_each_setting():
    from refnet.sweep.report import Point, seed_means

    def pt(seed, lam, clean, noisy):
        return Point(str(seed) + str(lam), {"seed": seed, "eq4_lambda": lam}, clean, noisy, 0.0,
                     0.0, 0.9, 1.0)

    rows = seed_means([pt(0, 0.0, 0.9, 0.5), pt(1, 0.0, 0.8, 0.7), pt(0, 1.0, 0.7, 0.4)])
    assert [(r[0], r[1]) for r in rows] == [({"eq4_lambda": 0.0}, 2), ({"eq4_lambda": 1.0}, 1)]
    assert rows[0][2] == pytest.approx(0.85) and rows[0][3] == pytest.approx(0.6)


def test_a_cell_the_network_cannot_take_is_a_config_error_before_any_work(tmp_path):
    raw = {"data": {"dataset": "synthetic", "hidden": [8]},
           "grid": {"eq7_lambda": [0.0, 6e-3], "eq7_variant": ["addunc_sigm_mnist"]}}
    with pytest.raises(ConfigError, match=r"eq7_lambda=0.006 \(addunc_sigm_mnist\).*hidden"):
        run_sweep(parse_spec(raw), tmp_path / "x", workers=1, progress=None)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("override, where", [
    ("seed=0,18446744073709551616", r"grid\.seed\[1\]"),
    ("epochs=1000000001", r"grid\.epochs\[0\]"),
    ("data.baseline_epochs=1000000001", r"data\.baseline_epochs"),
    ("data.batch_size=1000000001", r"data\.batch_size"),
    ("evaluate.batch_size=1000000001", r"evaluate\.batch_size"),  # rows per batch, as data's
])
def test_spec_ceilings_are_a_training_configs(override, where):
    """A cell's settings past what a training config holds (refnet.train's MAX_*) would train
    and then write a model file refnet refuses to read: refused in the spec. The evaluation's
    batch size (rows per batch, 1e20 was read) takes the training batch's ceiling."""
    with pytest.raises(ConfigError, match=where + r": expected an integer in \d+\.\.\d+, got"):
        load_spec(None, [override])
    key, _, value = override.partition("=")
    at_ceiling = str(int(value.split(",")[-1]) - 1)  # the largest value allowed is taken
    load_spec(None, [f"{key}={at_ceiling}"])
