"""duque_fig4's training runs and sweeps as tasks: the order they may run in, the cores each
gets, and the same bits on worker processes as in one process."""
import io
from concurrent.futures import Future

import numpy as np
import pytest

from refnet.cli import main
from refnet.io import load_model
from refnet.reproduction import tasks as runner
from refnet.reproduction.duque import DuqueSetup, tasks
from refnet.reproduction.duque import fig4
from refnet.reproduction.presets import Preset
from refnet.reproduction.results import load_results
from refnet.reproduction.stages import collecting
from refnet.sweep.executors import InProcess

SETUP = DuqueSetup("synthetic", hidden=(8, 8), baseline_epochs=2, finetune_epochs=1,
                   batch_size=64, n_val=100)


def _tasks(setup=SETUP, folder="models"):
    return tasks.fig4_tasks(setup, folder, fig4.CURVES, [1e-3, 1.0], 2)


class _Recorder:
    """An executor that runs nothing: each task ends at once, and what was running beside it
    when it started is recorded."""

    def __init__(self):
        self.started, self.running = [], set()

    def submit(self, fn, task):
        self.started.append((task, set(self.running)))
        f = Future()
        f.set_result({"seconds": 0.0})
        return f


def test_each_task_starts_after_the_tasks_it_needs_and_a_lone_one_gets_every_core():
    ex = _Recorder()
    ended = [t.name for t, _ in runner.run_tasks(_tasks(), tasks.run_task, ex,
                                                 slots=2, cores=2)]
    started = [t for t, _ in ex.started]
    assert sorted(ended) == sorted(t.name for t in _tasks()) and len(ended) == 11
    for i, t in enumerate(started):
        assert set(t.needs) <= {s.name for s in started[:i]}, t.name
    assert started[0].name == "synthetic standard" and started[0].threads == 2  # alone
    # the four fine-tunings can run two at a time: one thread each
    assert [t.threads for t in started if t.kind == "train" and t.mode != "standard"] == [1] * 4
    assert [t.threads for t in started[5:]] == [1] * 6   # six sweeps, two at a time
    # a chain (a model, then its one sweep): each task runs alone, on both cores
    chain = [t for t in _tasks() if t.mode == "standard"][:2]
    ex = _Recorder()
    list(runner.run_tasks(chain, tasks.run_task, ex, slots=2, cores=2))
    assert [(t.kind, t.threads) for t, _ in ex.started] == [("train", 2), ("sweep", 2)]
    # sweeps of uncorrelated noise (the longer ones) before those of correlated noise
    sweeps = [t for t in started if t.kind == "sweep"]
    assert all(t.priority[0] == 1 for t in sweeps) and all(t.kind == "train" for t in started[:5])


def test_in_one_process_the_thread_count_is_left_alone_and_errors_come_through():
    seen = []

    def fake(task, log=print):
        seen.append(task.threads)
        if task.kind == "sweep":
            raise FloatingPointError(f"{task.name}: diverged")
        return {"seconds": 0.0}

    with pytest.raises(FloatingPointError, match="sweep synthetic standard add_unc: diverged"):
        list(runner.run_tasks(_tasks(), fake, InProcess(), slots=1, cores=2))
    assert seen == [None] * 6   # five trainings, then the first sweep raised


def test_a_task_whose_needs_are_not_given_is_named():
    sweeps = [t for t in _tasks() if t.kind == "sweep"]
    with pytest.raises(ValueError, match="sweep synthetic standard add_unc needs"):
        list(runner.run_tasks(sweeps, tasks.run_task, _Recorder(), slots=2, cores=2))


def test_a_workers_progress_lines_carry_its_task_and_are_final_lines_only():
    buf = io.StringIO()
    s = runner.Labelled(buf, "  mnist standard: ")
    s.write("epoch 1/2 loss 0.5")
    s.write(" (3.0s)\nepoch 2/2 loss 0.4 (2.9s)\n")
    assert not s.isatty()
    assert buf.getvalue() == ("  mnist standard: epoch 1/2 loss 0.5 (3.0s)\n"
                              "  mnist standard: epoch 2/2 loss 0.4 (2.9s)\n")


def test_two_workers_give_the_bits_of_one_process(tmp_path):
    """Every model and every sweep accuracy equal bit for bit, whichever process trained a
    model and with how many threads (a fine-tuning starts from the standard model's file)."""
    preset = Preset("test", duque=(SETUP,), n_levels=3, repetitions=2)
    one, two = tmp_path / "one", tmp_path / "two"
    fig4.compute(preset, one, log=lambda *a: None, workers=1)
    with collecting() as parts:
        fig4.compute(preset, two, log=lambda *a: None, workers=2)
    assert [p[0] for p in parts] == ["synthetic: data and training, 2 workers",
                                     "synthetic: accuracy sweeps, 2 workers"]
    assert all(p[2] == "busy" and p[1] > 0 for p in parts)
    a, rec_a = load_results(one, "duque_fig4_synthetic")
    b, rec_b = load_results(two, "duque_fig4_synthetic")
    assert sorted(a) == sorted(b) and len(a) == 7
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert rec_a["clean_accuracy"] == rec_b["clean_accuracy"] and rec_a["data"] == rec_b["data"]
    models = sorted(p.name for p in (one / "models").glob("*.npz"))
    assert len(models) == 5 and models == sorted(p.name for p in (two / "models").glob("*.npz"))
    for name in models:
        pa, pb = load_model(one / "models" / name)[1], load_model(two / "models" / name)[1]
        assert all(np.array_equal(x, y) for x, y in zip(pa.W + pa.b, pb.W + pb.b)), name


@pytest.mark.parametrize("value, message", [
    ("0", "--workers: must be >= 1"), ("100000", "--workers: must be <= 1024")])
def test_reproduce_workers_out_of_range_is_one_line(value, message, capsys):
    assert main(["reproduce", "--workers", value]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_reproduce_more_workers_than_cores_is_refused_before_any_work(tmp_path, capsys,
                                                                     monkeypatch):
    import refnet.cores
    monkeypatch.setattr(refnet.cores, "available_cores", lambda: 2)
    out = tmp_path / "r"
    assert main(["reproduce", "--workers", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--workers 3: this machine lets refnet use 2 core(s)" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_a_workers_refnet_error_reaches_the_caller_as_itself():
    """What a task raises on a worker (a missing dataset, a damaged file) comes back as the
    same refnet error with its message, so the command line prints its one line."""
    from refnet.errors import DataError
    from refnet.sweep.executors import LocalPool

    with LocalPool(1) as pool:
        future = pool.submit(_raise_data_error, "mnist")
        with pytest.raises(DataError, match="mnist: not cached; run `python data/fetch.py mnist`"):
            future.result()


def _raise_data_error(name):
    from refnet.errors import DataError

    raise DataError(f"{name}: not cached; run `python data/fetch.py {name}`")
