"""Duque 2024, Fig. 4's work as tasks: each dataset's training runs and accuracy sweeps, each
started as soon as what it needs exists, on worker processes when there are cores for them.

A dataset's standard model comes first; its four fine-tunings start from it; each sweep needs
its model. With ``workers=1`` the tasks run in this process, in that order. With more, a spawn
pool of worker processes (:func:`refnet.reproduction.tasks.run_tasks`) runs them side by side,
one thread each, and a task started while nothing else can run gets every core. Two tasks at
one thread each keep both cores busy through the parts a single task runs on one (a training
step's Python, the hand-offs between its kernels' threads): on the 2-core AVX2 machine the
quick preset's ``duque_fig4`` took 49.6-62.0 s on two workers against 64.1-67.8 s in one
process (four interleaved pairs of runs).

The numbers do not depend on any of it: training's products and the Monte-Carlo's are the same
bits on any thread count (:mod:`refnet._gemm`), a fine-tuning starts from the standard model's
file whichever process trained it, and each task's randomness comes from its seed.
"""
from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

from ..tasks import Labelled, set_task_threads, worker_print
from . import protocol as dq

__all__ = ["Task", "fig4_tasks", "run_task", "sweep_started"]


@dataclass(frozen=True)
class Task:
    """One training run (``kind="train"``) or one accuracy sweep (``kind="sweep"``, under the
    noise kind ``noise``, "cor" or "unc") of one dataset's model ``mode``."""

    kind: str
    setup: dq.DuqueSetup
    mode: str
    folder: str                      #: where the models are saved
    noise: str | None = None
    variances: tuple = ()            #: sweeps: the noise variances
    repetitions: int = 0             #: sweeps: passes over the test set per variance
    threads: int | None = None       #: numba threads to use; None: leave the process's count

    @property
    def name(self) -> str:
        if self.kind == "train":
            return f"{self.setup.dataset} {self.mode}"
        return f"sweep {self.setup.dataset} {self.mode} {dq.KIND_NOISE[self.noise]}"

    @property
    def needs(self) -> tuple:
        """The names of the tasks that must end first."""
        if self.kind == "sweep":
            return (f"{self.setup.dataset} {self.mode}",)
        return () if self.mode == "standard" else (f"{self.setup.dataset} standard",)

    @property
    def priority(self) -> tuple:
        """Lower first among the tasks that can start: trainings (they unblock the rest), the
        longest first; then sweeps, uncorrelated noise (a draw per neuron) before correlated."""
        if self.kind == "train":
            s = self.setup
            return (0, -(s.baseline_epochs if self.mode == "standard" else s.finetune_epochs))
        return (1, 0 if self.noise == "unc" else 1)


def fig4_tasks(setup: dq.DuqueSetup, folder, curves: dict, variances, repetitions: int) -> list:
    """The tasks of one dataset: its models' training runs, then the sweeps of ``curves``
    (``{noise kind: modes}``), in the order a single process runs them."""
    modes = list(dict.fromkeys(m for kind in curves for m in curves[kind]))
    modes = ["standard"] + [m for m in modes if m != "standard"]
    train = [Task("train", setup, m, str(folder)) for m in modes]
    sweeps = [Task("sweep", setup, m, str(folder), noise=kind,
                   variances=tuple(float(v) for v in variances), repetitions=int(repetitions))
              for kind in curves for m in curves[kind]]
    return train + sweeps


@functools.lru_cache(maxsize=2)
def _data(setup: dq.DuqueSetup) -> dq.DuqueData:
    """A dataset, loaded once per process for all the tasks it runs on it."""
    return dq.load_data(setup)


def run_task(task: Task, log=print) -> dict:
    """Run one task in this process; its result (sweeps: the accuracies) and its seconds.
    ``log``: where a training run says what it does (in a worker: this process's stdout)."""
    from ...io import load_model
    from ...montecarlo import accuracy_sweep

    in_worker = set_task_threads(task)
    t0 = time.perf_counter()
    data = _data(task.setup)
    if task.kind == "train":
        progress = Labelled(sys.stderr, f"  {task.name}: ") if in_worker else sys.stderr
        dq.train_model(task.setup, data, task.folder, task.mode, progress=progress,
                       log=worker_print if in_worker else log)
        return {"seconds": time.perf_counter() - t0}
    arch, params, _ = load_model(dq.model_path(task.setup, task.folder, task.mode))
    res = accuracy_sweep(arch, params, data.X_test, data.y_test, "duque",
                         noise_types=(dq.KIND_NOISE[task.noise],), variances=task.variances,
                         repetitions=task.repetitions, rng=task.setup.seed)
    return {"accuracy": res.accuracy[0], "clean_accuracy": res.clean_accuracy,
            "provenance": data.provenance, "n_test": int(len(data.y_test)),
            "seconds": time.perf_counter() - t0}


def sweep_started(task: Task, log=print) -> None:
    """What the driver says as a task starts: a sweep's size (a training run says its own)."""
    if task.kind == "sweep":
        log(f"  {task.name}: {len(task.variances)} levels x {task.repetitions} repetitions")
