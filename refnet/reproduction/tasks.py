"""Work of a reproduction script as tasks that wait on each other, run on worker processes.

A task is a frozen dataclass with a ``name``, the names of the tasks it ``needs``, a
``priority`` (lower starts first among those that can) and a field ``threads``: the numba
threads it may use, set here when it starts on a worker (``None`` in this process: the
process's own count stays). Tasks run on a spawn pool of worker processes
(:class:`refnet.sweep.executors.LocalPool`), or one after the other in this process when there
is one worker.

Scripts that use it: ``duque_fig4`` (:mod:`.duque.tasks`: each dataset's trainings and
sweeps) and ``semenova_fig5`` (one task per trained network). Their numbers do not depend on
it: training's and the Monte-Carlo's products are the same bits on any thread count
(:mod:`refnet._gemm`) and every task's randomness comes from its seed.
"""
from __future__ import annotations

import functools
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import replace

__all__ = ["executor_for", "run_tasks", "set_task_threads", "Labelled", "worker_print"]


def executor_for(workers: int | None, n_tasks: int):
    """``(executor, slots, cores)`` for ``n_tasks`` tasks: a pool of ``workers`` processes
    (default one per core; never more than the tasks), or this process for one."""
    from ..cores import available_cores
    from ..sweep.executors import InProcess, LocalPool

    cores = available_cores()
    slots = max(1, min(cores if workers is None else int(workers), int(n_tasks)))
    if slots == 1:
        return InProcess(), 1, cores
    return LocalPool(slots, numba_threads=cores), slots, cores


def set_task_threads(task) -> bool:
    """In a worker (``task.threads`` set): use that many numba threads, True; else False."""
    if task.threads is None:
        return False
    from .._numba import max_threads, set_threads

    set_threads(min(task.threads, max_threads()))
    return True


def run_tasks(tasks, fn, executor, *, slots: int, cores: int, on_start=None, log=print):
    """Run ``fn(task)`` for each of ``tasks`` on ``executor`` (``submit(fn, task)``), each once
    the tasks it needs have ended, at most ``slots`` at a time; yields ``(task, result)`` as
    each ends. ``on_start(task)`` is called as each starts. In this process (``slots == 1``)
    ``fn`` is called as ``fn(task, log=log)``: a worker's log cannot be sent to it, so there it
    prints.

    With ``slots > 1`` a task gets ``cores`` divided by the number of tasks that will run
    beside it (itself included) as its numba threads: one each when two run, every core when
    it runs alone. A task's error is raised here, once it ends.
    """
    waiting = sorted(tasks, key=lambda t: t.priority)   # sorted() keeps equal ones in order
    call = fn if slots > 1 else functools.partial(fn, log=log)
    done, running = set(), {}
    try:
        while waiting or running:
            ready = [t for t in waiting if all(n in done for n in t.needs)]
            for i, t in enumerate(ready[:max(0, slots - len(running))]):
                waiting.remove(t)
                if on_start is not None:
                    on_start(t)
                if slots > 1:
                    beside = min(slots, len(running) + len(ready) - i)
                    t = replace(t, threads=max(1, cores // beside))
                running[executor.submit(call, t)] = t
            if not running:
                raise ValueError("tasks: some need tasks that are not given: "
                                 + ", ".join(f"{t.name} needs {t.needs}" for t in waiting))
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in sorted(finished, key=lambda f: running[f].priority):
                t = running.pop(f)
                result = f.result()
                done.add(t.name)
                yield t, result
    finally:
        for f in running:
            f.cancel()


class Labelled:
    """A text stream that starts each line with ``label`` and is not a terminal (so a training
    run's progress writes only its final lines: two workers' bars drawn in place on one
    terminal line would overwrite each other)."""

    def __init__(self, stream, label: str):
        self.stream, self.label, self._at_start = stream, label, True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        out = []
        for line in text.splitlines(keepends=True):
            out.append((self.label if self._at_start else "") + line)
            self._at_start = line.endswith("\n")
        self.stream.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def worker_print(*args) -> None:
    """``print`` for a worker: its stdout is a pipe or a file, so each line is flushed."""
    print(*args, flush=True)
