"""refnet.progress: the one progress display (downloads, training epochs, evaluate)."""
import io

import pytest

from refnet import progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic ticks one second per call."""
    ticks = iter(range(1000))
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(ticks)))


def test_one_line_per_task_off_a_terminal_and_redrawn_on_one(clock):
    log, tty = io.StringIO(), FakeTTY()
    for stream in (log, tty):
        bar = progress.Progress("download f", 3_000_000, stream, unit="MB", scale=1e6)
        for _ in range(3):
            bar.update(1_000_000)
        bar.close("ok")
    assert log.getvalue() == "download f: 3.0/3.0 MB (100%) in 4.0 s ok\n"
    lines = tty.getvalue().split("\r")[1:]
    assert len(lines) == 4 and lines[-1].startswith("download f: 3.0/3.0 MB (100%) in 4.0 s ok")
    assert lines[-1].endswith("\n") and len(lines[-1]) == len(lines[-2]) + 1  # old line erased
    assert lines[0].startswith("download f: 1.0/3.0 MB (33%) [########") and "#########" not in lines[0]


def test_live_line_shows_elapsed_time_and_eta(clock):
    tty = FakeTTY()
    bar = progress.Progress("evaluate", 4, tty, unit="passes")  # t0 = 0
    bar.set(1, "loss 0.5")                                      # now = 1: 1 of 4 in 1 s
    assert tty.getvalue() == ("\revaluate: 1/4 passes (25%) [" + "#" * 6 + "." * 18
                              + "] 1 s, eta 3 s loss 0.5")


def test_unknown_total_and_the_callback_form(clock):
    log = io.StringIO()
    bar = progress.Progress("fetch", None, log, unit="MB", scale=1e6)
    bar.update(2_500_000)
    bar.close()
    assert log.getvalue() == "fetch: 2.5 MB in 2.0 s\n"
    log = io.StringIO()
    bar = progress.Progress("evaluate", stream=log, unit="passes")
    for done in range(1, 4):
        bar(done, 3)                                            # accuracy_sweep's callback
    assert log.getvalue() == "evaluate: 3/3 passes (100%) in 4.0 s\n"


def test_final_line_may_replace_the_count(clock):
    log = io.StringIO()
    progress.Progress("epoch 1/2", 10, log, unit="batches").close(line="epoch 1/2 loss 0.1")
    assert log.getvalue() == "epoch 1/2 loss 0.1\n"
