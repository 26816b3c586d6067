"""Where cells run: in this process, on a local process pool, or on a Dask distributed cluster.

Each executor has ``map(fn, tasks)``, yielding ``(index, fn(tasks[index]))`` as results
arrive (any order; the store does not depend on it); the local ones also have
``submit(fn, task)``, a future, for callers whose tasks wait on each other. Workers only compute; the driver
alone writes the store. Results are the same bits on every executor: a cell's randomness comes
from its seed, never from the worker, and each cell runs single-threaded.

* :class:`InProcess` (``workers=1``): no pool, nothing to start.
* :class:`LocalPool` (default): a ``spawn`` process pool with one worker per core, never more
  workers than cells left to run (each costs a process and its memory). The workers
  start with ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and
  ``NUMBA_NUM_THREADS`` set to 1 in their environment, before NumPy loads, so that ``n`` workers
  use ``n`` cores, not ``n x n`` (``numba_threads`` raises numba's ceiling for callers whose
  tasks set their own count, ``refnet reproduce``'s training runs). Each worker ends when the
  driver process dies, even by SIGKILL (:func:`_exit_with_parent`), rather than running on
  orphaned. Ctrl-C stops the task a worker is running and nothing else
  (:func:`_interrupt_task`).
* :class:`DaskCluster` (``--scheduler ADDRESS``): an existing Dask distributed cluster, through
  the optional extra ``refnet[dask]``. Dask's nanny already starts workers with those
  variables at 1; each cell also limits its own numba and BLAS threads
  (:func:`refnet.sweep.cells.limit_threads`).

Tasks and results travel between processes by the executors' own transport; nothing is
stored with pickle (the store is SQLite + JSON + ``.npz`` bytes).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from ..cores import available_cores
from ..errors import ConfigError

__all__ = ["InProcess", "LocalPool", "DaskCluster", "make_executor", "available_cores",
           "THREAD_VARIABLES"]

#: Thread-count variables set to 1 in local workers before NumPy loads.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


#: prctl's option "send me this signal when my parent dies" (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def _start_worker(parent: int) -> None:
    """Pool initializer, run in each worker: Ctrl-C, then the driver's death."""
    _take_ctrl_c()
    _exit_with_parent(parent)


#: In a pool worker: whether it is running a task (see :func:`_interrupt_task`).
_task_running = False


def _run_task(fn, task):
    """``fn(task)`` in a pool worker, marked as running for :func:`_interrupt_task`."""
    global _task_running
    _task_running = True
    try:
        return fn(task)
    finally:
        _task_running = False


def _interrupt_task(signum, frame) -> None:
    """A worker's SIGINT handler. A terminal's Ctrl-C reaches the driver and every worker
    (one process group): a running task stops, its clean-up runs, and the driver stops the
    sweep; an idle worker ignores it, the driver ends it. (Python's KeyboardInterrupt in an
    idle worker printed a traceback per worker under the driver's one line.)"""
    global _task_running
    if _task_running:
        _task_running = False  # once: a second Ctrl-C must not cut the first one's clean-up
        raise KeyboardInterrupt


def _take_ctrl_c() -> None:
    """Install :func:`_interrupt_task`, then let SIGINT in: the worker started with it blocked
    (:meth:`LocalPool.__enter__`), and one that came meanwhile is handled now."""
    signal.signal(signal.SIGINT, _interrupt_task)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _exit_with_parent(parent: int) -> None:
    """End this pool worker when the driver ``parent`` dies.

    A driver killed by SIGKILL runs no clean-up: its workers ran on orphaned, busy with a
    cell nobody would store, then idle on the task queue forever (they hold its pipe's write
    end too, so they never see end-of-file).
    """
    if not _parent_death_signal():
        _watch_parent(parent)
    if os.getppid() != parent:  # the driver died before the signal was armed
        os._exit(1)


def _parent_death_signal() -> bool:
    """Linux: have the kernel SIGKILL this process when its parent dies (prctl
    PR_SET_PDEATHSIG); False where that is not available. The kernel sends it when the
    parent's thread that started the worker exits: :class:`LocalPool` starts every worker
    from the thread that then runs the whole ``with`` block."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc to load, or no prctl in it
        return False


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    """Elsewhere: a daemon thread polls the parent's pid and ends the worker once it changes
    (an orphan is adopted by another process)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="refnet-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT held back from this thread, and so from the workers it starts (a child inherits
    the mask; the worker lets it in once its handler is set, :func:`_take_ctrl_c`). A Ctrl-C
    while a worker imported refnet printed its KeyboardInterrupt traceback; here it waits,
    and reaches the driver when the block ends. Enter it once the pool is made: starting the
    pool's resource tracker blocks SIGINT for that child and unblocks it after, undoing this."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class InProcess:
    """Runs each task in this process, one after the other."""

    name = "in-process"
    shares_files = True  #: workers see this machine's files (baselines can be cached there)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def share(self, obj):
        """``obj`` as tasks should carry it (here: itself)."""
        return obj

    def map(self, fn, tasks):
        for i, t in enumerate(tasks):
            yield i, fn(t)

    def submit(self, fn, task) -> Future:
        """``fn(task)``, run now; a future that holds its result (or its exception)."""
        f = Future()
        try:
            f.set_result(fn(task))
        except Exception as e:  # noqa: BLE001 -- handed to whoever reads the future
            f.set_exception(e)
        return f


class LocalPool:
    """A process pool of ``workers`` single-threaded processes on this machine.

    ``tasks``: the most tasks one ``map`` call will be given; the pool starts no more workers
    than that (``--workers 1024`` started 1024 processes for 2 cells, each idle but holding
    NumPy's memory).
    """

    shares_files = True

    def __init__(self, workers: int | None = None, *, tasks: int | None = None,
                 numba_threads: int = 1):
        self.workers = available_cores() if workers is None else int(workers)
        self.numba_threads = int(numba_threads)
        if self.workers < 1:
            raise ConfigError(f"--workers: must be >= 1, got {workers}")
        if tasks is not None:
            self.workers = max(1, min(self.workers, int(tasks)))
        self.name = (f"local pool ({self.workers} "
                     f"{'process' if self.workers == 1 else 'processes'})")
        self.pool = None

    def __enter__(self):
        import multiprocessing

        # spawned children copy os.environ at start: set the thread limits for them only
        saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
        os.environ.update({k: "1" for k in THREAD_VARIABLES})
        if self.numba_threads > 1:  # tasks choose how many they use (numba.set_num_threads)
            os.environ["NUMBA_NUM_THREADS"] = str(self.numba_threads)
        try:
            self.pool = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_worker,
                                            initargs=(os.getpid(),))
            # start every worker now, while the variables are set (the pool spawns lazily)
            with _sigint_blocked():
                list(self.pool.map(int, range(self.workers)))
        except BaseException:  # Ctrl-C while the workers started: no __exit__ to end them
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)
            raise
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is KeyboardInterrupt:
            self._interrupt_workers()
        # waits for the running tasks, which Ctrl-C has stopped. Not waiting left the pool to
        # the interpreter's exit, which joins it anyway, and there it raced the pool's own
        # clean-up: "Exception ignored ... OSError: [Errno 9] Bad file descriptor" at times
        self.pool.shutdown(cancel_futures=True)
        return False

    def _interrupt_workers(self) -> None:
        """Pass a Ctrl-C on to the workers: a terminal's reached them already (then this one is
        ignored), a ``kill -INT`` of the driver did not, and their running cells ran on."""
        for pid in list(getattr(self.pool, "_processes", None) or {}):
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                os.kill(pid, signal.SIGINT)

    def share(self, obj):
        """``obj`` as tasks should carry it (here: itself, copied to a worker with each task
        that names it)."""
        return obj

    def submit(self, fn, task) -> Future:
        """``fn(task)`` on a worker; its future."""
        return self.pool.submit(_run_task, fn, task)

    def map(self, fn, tasks):
        futures = {self.submit(fn, t): i for i, t in enumerate(tasks)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=futures.get):
                    yield futures[f], f.result()
        finally:
            for f in pending:
                f.cancel()


class DaskCluster:
    """An existing Dask distributed cluster at ``address`` (``tcp://host:8786``), or a
    ``dask.distributed.Client``. Needs ``pip install refnet[dask]``."""

    shares_files = False  #: remote workers may not see this machine's files

    def __init__(self, address):
        self.address = address
        self.client = None
        self.name = "Dask cluster"

    def __enter__(self):
        try:
            from dask.distributed import Client
        except ImportError:
            raise ConfigError("--scheduler: dask.distributed is not installed; "
                              "`pip install refnet[dask]` (or dask[distributed])") from None
        if isinstance(self.address, Client):
            self.client, self._own = self.address, False
        else:
            try:
                self.client, self._own = Client(self.address, timeout="20s"), True
            except (OSError, ValueError) as e:  # ValueError: not an address dask can parse
                raise ConfigError(f"--scheduler {self.address}: cannot connect ({e}); give the "
                                  "address `dask scheduler` prints (tcp://HOST:PORT), or start "
                                  "one with `dask scheduler` and `dask worker ADDRESS`") from None
        self.name = f"Dask cluster at {self.client.scheduler.address}"
        return self

    def __exit__(self, *exc):
        if self._own:
            self.client.close()
        return False

    def share(self, obj):
        """``obj`` sent once to every worker; tasks carry the returned future, which Dask
        replaces by ``obj`` on the worker (a baseline's weights then cross the network once
        per worker, not once per cell)."""
        return self.client.scatter([obj], broadcast=True, hash=False)[0]

    def map(self, fn, tasks):
        from dask.distributed import as_completed

        futures = [self.client.submit(fn, t, pure=False) for t in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for f in as_completed(futures):
                yield index[f.key], f.result()
        finally:
            self.client.cancel([f for f in futures if not f.done()])


def make_executor(workers: int | None = None, scheduler=None, *, tasks: int | None = None):
    """The executor of the command-line options: Dask if ``scheduler`` is given, in-process for
    ``workers == 1``, else a local pool of ``workers`` (default: all cores), at most ``tasks``
    of them (the cells left to run)."""
    if scheduler is not None:
        return DaskCluster(scheduler)
    if workers is not None and int(workers) == 1:
        return InProcess()
    return LocalPool(workers, tasks=tasks)
