"""``refnet evaluate`` on a tiny saved model and a synthetic .npz data file."""
import csv
import hashlib
import json
import os

import numpy as np
import pytest

from refnet.cli import main
from refnet.io import save_model
from refnet.model import init_params, mlp, predict
from refnet.montecarlo import accuracy_sweep
from refnet.noise import NOISE_TYPES
from refnet.testing import NO_FALLBACK_WARNING


@pytest.fixture
def model_and_data(tmp_path):
    arch = mlp((6, 8, 8, 3), "sigmoid", "identity")
    params = init_params(arch, "normal", rng=0, std=1.5)
    X = np.random.default_rng(1).normal(size=(120, 6))
    y = predict(arch, params, X)
    model = save_model(tmp_path / "tiny.npz", arch, params, {"note": "test"})
    data = tmp_path / "data.npz"
    np.savez(data, X=X, y=y)
    return arch, params, X, y, str(model), str(data)


def _args(model, data, out, *extra, vmin="0.01", vmax="1"):
    return ["evaluate", model, "--data", data, "--variances", "3", "--vmin", vmin, "--vmax",
            vmax, "--repetitions", "2", "--batch-size", "50", "--seed", "7", "--out", str(out),
            *extra]


def test_evaluate_writes_csv_json_png_consistent_with_the_api(model_and_data, tmp_path, capsys):
    arch, params, X, y, model, data = model_and_data
    out = tmp_path / "res"
    assert main(_args(model, data, out)) == 0
    err = capsys.readouterr().err
    assert "evaluate: 24/24 passes" in err  # 4 types x 3 levels x 2 repetitions
    rows = list(csv.DictReader(open(out / "accuracy.csv")))
    assert [r["noise_type"] for r in rows] == [t for t in NOISE_TYPES for _ in range(3)]
    assert set(rows[0]) == {"noise_type", "variance", "mean", "std", "rep_0", "rep_1"}
    ref = accuracy_sweep(arch, params, X, y, "duque", noise_types=NOISE_TYPES,
                         variances=np.logspace(-2, 0, 3), repetitions=2, batch_size=50, rng=7)
    got = np.array([[float(r["rep_0"]), float(r["rep_1"])] for r in rows]).reshape(4, 3, 2)
    assert np.array_equal(got, ref.accuracy)
    np.testing.assert_array_equal([float(r["variance"]) for r in rows[:3]], np.logspace(-2, 0, 3))
    meta = json.load(open(out / "accuracy.json"))
    assert meta["seed"] == 7 and meta["refnet_version"] and meta["n_samples"] == 120
    assert meta["data"]["sha256"] == hashlib.sha256(open(data, "rb").read()).hexdigest()
    assert meta["model"]["sha256"] == hashlib.sha256(open(model, "rb").read()).hexdigest()
    assert meta["settings"]["layers"] == [1, 2] and meta["noise"]["preset"] == "duque"
    for name in ("accuracy.csv", "accuracy.png"):
        assert meta["files"][name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(out.glob(".*tmp"))          # no temporary files left behind


def test_evaluate_same_seed_same_csv_and_explicit_levels(model_and_data, tmp_path):
    *_, model, data = model_and_data
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_args(model, data, a, "--no-progress")) == 0
    assert main(_args(model, data, b, "--no-progress", "--workers", "2")) == 0
    assert (a / "accuracy.csv").read_bytes() == (b / "accuracy.csv").read_bytes()
    c = tmp_path / "c"
    assert main(["evaluate", model, "--data", data, "--levels", "0.1,0.5", "--noise-types",
                 "add_cor", "--repetitions", "1", "--out", str(c), "--no-progress",
                 "--dtype", "float32", "--backend", "numpy"]) == 0
    rows = list(csv.DictReader(open(c / "accuracy.csv")))
    assert [(r["noise_type"], float(r["variance"])) for r in rows] == [("add_cor", 0.1),
                                                                      ("add_cor", 0.5)]
    assert json.load(open(c / "accuracy.json"))["settings"]["dtype"] == "float32"


def test_evaluate_default_range_fills_in_what_is_not_given(model_and_data, tmp_path):
    """--vmin/--vmax default to 1e-3 and 1 (their defaults are None only to see them given)."""
    *_, model, data = model_and_data
    for extra, want in (([], [1e-3, 10 ** -1.5, 1.0]), (["--vmax", "10"], [1e-3, 0.1, 10.0]),
                        (["--vmin", "0.1"], [0.1, 10 ** -0.5, 1.0])):
        out = tmp_path / "-".join(["d", *extra])
        assert main(["evaluate", model, "--data", data, "--variances", "3", "--noise-types",
                     "add_unc", "--repetitions", "1", "--out", str(out), "--no-progress",
                     *extra]) == 0
        got = [float(r["variance"]) for r in csv.DictReader(open(out / "accuracy.csv"))]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_evaluate_bad_inputs_give_clear_errors(model_and_data, tmp_path, capsys):
    *_, model, data = model_and_data
    out = tmp_path / "o"
    cases = [
        (["evaluate", model, "--data", str(tmp_path / "missing.npz")], "--data: no such file"),
        (["evaluate", str(tmp_path / "nomodel.npz"), "--data", data], "no such file"),
        (_args(model, data, out, "--noise-types", "add_unk"), "--noise-types"),
        (["evaluate", model, "--data", data, "--levels", "0.1,x"], "--levels"),
        (["evaluate", model, "--data", data, "--vmin", "0"], "--vmin"),
        # a log axis reaching 1e308 broke the plot (an overflow warning, the axis at 1..10)
        (_args(model, data, out, vmax="1e308"), "--vmax: at most 1e+06 (noise of standard "
                                               "deviation 1000), got 1e+308"),
        (["evaluate", model, "--data", data, "--levels", "0.1,2e6"],
         "--levels: variances of at most 1e+06, got 2e+06"),
    ]
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=np.zeros((3, 6)))
    cases.append((["evaluate", model, "--data", str(bad)], "lacks ['y']"))
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, X=np.array([{"a": 1}], dtype=object), y=np.zeros(1, int))
    cases.append((["evaluate", model, "--data", str(pickled)], "pickle"))
    nan = tmp_path / "nan.npz"
    np.savez(nan, X=np.full((2, 6), np.nan), y=np.zeros(2, int))
    cases.append((["evaluate", model, "--data", str(nan)], "NaN"))
    for argv, msg in cases:
        assert main(argv + ["--no-progress"]) == 2, argv
        assert msg in capsys.readouterr().err, msg
    assert main(["evaluate", model, "--dataset", "cifar", "--no-progress"]) == 2
    assert "dataset: unknown dataset 'cifar'" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_result_files_get_default_permissions(model_and_data, tmp_path):
    *_, model, data = model_and_data
    out = tmp_path / "perm"
    assert main(_args(model, data, out, "--no-progress")) == 0
    umask = os.umask(0)
    os.umask(umask)
    for name in ("accuracy.csv", "accuracy.json", "accuracy.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_evaluate_triangular_draws_is_opt_in_and_recorded(model_and_data, tmp_path):
    """--triangular-draws gives the API's numbers with that shortcut (other draws than the
    default for additive uncorrelated noise, the same for the other types) and is recorded."""
    from refnet.montecarlo import DEFAULT_SHORTCUTS

    arch, params, X, y, model, data = model_and_data
    plain, tri = tmp_path / "plain", tmp_path / "tri"
    assert main(_args(model, data, plain, "--no-progress", vmin="1", vmax="4")) == 0
    assert main(_args(model, data, tri, "--no-progress", "--triangular-draws", vmin="1",
                      vmax="4")) == 0
    m_plain, m_tri = (json.load(open(d / "accuracy.json")) for d in (plain, tri))
    assert "triangular_draws" in m_tri["settings"]["shortcuts"]
    assert "triangular_draws" not in m_plain["settings"]["shortcuts"]
    ref = accuracy_sweep(arch, params, X, y, "duque", noise_types=NOISE_TYPES,
                         variances=np.logspace(0, np.log10(4), 3), repetitions=2, batch_size=50,
                         rng=7, shortcuts=DEFAULT_SHORTCUTS + ("triangular_draws",))
    got = np.array(m_tri["accuracy"])
    assert np.array_equal(got, ref.accuracy)
    a_plain, a_tri = np.array(m_plain["accuracy"]), got
    assert not np.array_equal(a_plain[0], a_tri[0])            # add_unc: other draws
    assert np.array_equal(a_plain[1:], a_tri[1:])              # the other types: the same


def test_evaluate_at_variance_zero_alone_writes_its_results(model_and_data, tmp_path, capsys):
    """--levels 0 computed every pass, then the log axis of the figure had no data and
    matplotlib raised "Data cannot be log-scaled": exit 2, a message naming no flag, no file."""
    arch, params, X, y, model, data = model_and_data
    out = tmp_path / "res"
    assert main(["evaluate", model, "--data", data, "--levels", "0", "--repetitions", "1",
                 "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "accuracy.csv")))
    assert {float(r["variance"]) for r in rows} == {0.0}
    clean = json.load(open(out / "accuracy.json"))["clean_accuracy"]
    assert all(float(r["mean"]) == clean for r in rows)  # no noise: the clean accuracy
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")




#: ``refnet ARGV`` in a child process that counts the Monte-Carlo chunks handed to its worker
#: threads (1 ms each) and those they compute (50 ms each): it touches MARKER at the 30th chunk
#: handed out, and writes both counts to COUNTS at the end.
_COUNTING_CHILD = """
import pathlib, sys, time
from concurrent.futures import ThreadPoolExecutor
import refnet.montecarlo.sweep as mc_sweep
from refnet.cli import main
marker, counts, argv = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
submitted, computed = [], []
real_submit, real_chunk = ThreadPoolExecutor.submit, mc_sweep.count_correct
def submit(self, fn, *a, **k):
    if fn.__name__ == "n_correct":  # not the clean pass's tasks
        submitted.append(1)
        if len(submitted) == 30:
            marker.touch()
        time.sleep(0.001)
    return real_submit(self, fn, *a, **k)
def chunk(*a, **k):
    time.sleep(0.05)
    computed.append(1)
    return real_chunk(*a, **k)
ThreadPoolExecutor.submit, mc_sweep.count_correct = submit, chunk
try:
    status = main(argv)
finally:
    counts.write_text(f"{len(submitted)} {len(computed)}")
sys.exit(status)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_ends_evaluate_without_running_the_queued_chunks(model_and_data, tmp_path):
    """Ctrl-C while the chunks were being handed to the worker threads (seconds, for a long
    evaluation) waited for every chunk handed out so far to run. The chunks are handed out a
    few per worker ahead of the results taken: those queued at Ctrl-C are dropped."""
    import signal
    import subprocess
    import sys
    import time

    from refnet.montecarlo.chunks import CHUNKS_AHEAD_PER_WORKER

    _, _, _, _, model, data = model_and_data
    marker, counts, out = tmp_path / "started", tmp_path / "counts", tmp_path / "res"
    workers = 2
    argv = ["evaluate", model, "--data", data, "--levels", "0.1", "--repetitions", "250",
            "--batch-size", "10", "--workers", str(workers), "--no-progress", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", _COUNTING_CHILD, str(marker), str(counts),
                             *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": NO_FALLBACK_WARNING},
                            # a test run in the background inherits an ignored SIGINT
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], err
    submitted, computed = map(int, counts.read_text().split())
    # at Ctrl-C, CHUNKS_AHEAD_PER_WORKER x workers chunks handed out, one of them awaited: the
    # running ones end (and each worker may just have taken one more), the others do not start
    dropped = submitted - computed
    assert workers < dropped <= CHUNKS_AHEAD_PER_WORKER * workers, (submitted, computed)
    assert submitted < 250 * 12  # 120 rows in batches of 10, 250 passes
    assert not out.exists()


def test_default_workers_count_the_cgroup_quota_as_the_sweep_does(model_and_data, tmp_path,
                                                                  monkeypatch):
    """--workers defaulted to the CPU affinity (64 here), at most 4, in a container given 1
    CPU: 4 threads time-sliced on one core. It counts what refnet.cores.available_cores
    counts, as refnet sweep does."""
    import refnet.cores
    from refnet.cli import build_parser

    *_, model, data = model_and_data
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    (tmp_path / "cgroup").write_text("0::/job\n")
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "cpu.max").write_text("100000 100000\n")
    monkeypatch.setattr(refnet.cores, "PROC_SELF_CGROUP", str(tmp_path / "cgroup"))
    monkeypatch.setattr(refnet.cores, "CGROUP_ROOT", str(tmp_path))
    args = build_parser().parse_args(["evaluate", model, "--data", data])
    assert args.workers == refnet.cores.available_cores() == 1


@pytest.mark.parametrize("failing", ["accuracy.png", "accuracy.json"])
@pytest.mark.parametrize("error, status", [(OSError(28, "No space left on device"), 2),
                                           (KeyboardInterrupt(), 130)])
def test_result_files_land_as_a_set_or_not_at_all(failing, error, status, model_and_data,
                                                  tmp_path, monkeypatch, capsys):
    """The three files were written one after another: a full disk or Ctrl-C while writing
    the png or the json left the new csv (and png) beside the old json, which vouched for
    other files. Now none of the old files changes, and no temporary file is left."""
    import tempfile

    *_, model, data = model_and_data
    out = tmp_path / "res"
    assert main(_args(model, data, out, "--no-progress")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["accuracy.csv", "accuracy.json", "accuracy.png"]
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*a, prefix="", **k):
        if prefix.startswith(f".{failing}."):  # the write of this file fails
            raise error
        return real_mkstemp(*a, prefix=prefix, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    capsys.readouterr()
    assert main(_args(model, data, out, "--no-progress", vmin="0.02")) == status  # new numbers
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    expected = "interrupted" if status == 130 else "No space left on device"
    assert len(lines) == 1 and expected in lines[0], lines
