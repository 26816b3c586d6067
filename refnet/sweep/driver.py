"""The driver: baselines first, then the cells missing from the store, written as they finish.

Resuming is the same call: finished cells (intact rows of the store) are skipped, missing or
corrupt ones are computed. Ctrl-C stops at once; every cell already written stays.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .cells import check_cells, duque_setup, run_cell, train_baseline
from .executors import make_executor
from .spec import SweepSpec, cell_id
from .store import SweepStore

__all__ = ["SweepSummary", "run_sweep", "progress_bar", "baseline_path", "BASELINES"]

#: The sub-folder of a sweep folder holding its baselines.
BASELINES = "baselines"


@dataclass(frozen=True)
class SweepSummary:
    """What one :func:`run_sweep` call did."""

    folder: Path
    n_cells: int
    skipped: int             #: finished before this call
    computed: tuple          #: cell ids computed (fully) by this call, in completion order
    baselines_trained: int
    seconds: float
    executor: str
    halving: dict | None = None


class _Quiet:
    """The progress display of ``progress=None``: nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self, note: str = "") -> None:
        pass


def progress_bar(label: str, total: int, stream):
    """refnet's one progress display (:class:`refnet.progress.Progress`: a bar with the
    elapsed time and an ETA, redrawn on a terminal, one final line in a log), or nothing."""
    from ..progress import Progress

    return _Quiet() if stream is None else Progress(label, total, stream, unit="cells")


def baseline_path(folder, settings: dict) -> Path:
    """Where the baseline of ``settings``' (dataset, seed) is kept: the file name
    :func:`refnet.reproduction.duque.train_models` gives its standard model."""
    setup = duque_setup(settings)
    return Path(folder) / BASELINES / f"{setup.dataset}-standard-{setup.key()}.npz"


def _baselines(ex, spec: SweepSpec, folder: Path, seeds, log) -> tuple[dict, int]:
    """``{seed: baseline}`` for ``seeds``: loaded from the folder or trained on the executor."""
    from ..io import load_cached_model, save_model
    from ..model import Architecture, Params

    out, todo = {}, []
    for seed in seeds:
        settings = {**spec.data, "seed": seed}
        path = baseline_path(folder, settings)
        cached = load_cached_model(path, log)  # a damaged one is set aside and trained again
        if cached is not None:
            arch, params, meta = cached
            out[seed] = {"arch": arch.as_dict(), "W": list(params.W), "b": list(params.b),
                         "meta": meta}
        else:
            todo.append(settings)
    if todo:
        log(f"training {len(todo)} baseline(s) ({spec.data['dataset']}, "
            f"{spec.data['baseline_epochs']} epochs) on {ex.name}")
        cache = str(Path(folder) / BASELINES) if ex.shares_files else None
        tasks = [(s, cache) for s in todo]
        for i, base in ex.map(_train_baseline_task, tasks):
            settings = todo[i]
            path = baseline_path(folder, settings)
            if not path.exists():  # a remote worker trained it: keep a copy here
                save_model(path, Architecture.from_dict(base["arch"]),
                           Params(tuple(base["W"]), tuple(base["b"])), base["meta"])
            out[settings["seed"]] = base
    return out, len(todo)


def _train_baseline_task(task):
    settings, cache = task
    return train_baseline(settings, cache)


def _cell_task(spec: SweepSpec, settings: dict, baseline: dict, **extra) -> dict:
    return {"settings": settings, "evaluate": spec.evaluate, "report": spec.report,
            "baseline": baseline, **extra}


def _compute(ex, store, spec, folder, todo, finished, computed, halving, progress, log, on_cell):
    """Baselines, halving rungs if asked, then the cells ``todo`` (appended to ``computed``
    as they are stored). Returns (baselines trained, halving info or None)."""
    cells = spec.cells()
    ids = [cell_id(c) for c in cells]
    seeds = sorted({cells[i]["seed"] for i in (range(len(cells)) if halving else todo)})
    baselines, n_base = _baselines(ex, spec, folder, seeds, log)
    share = getattr(ex, "share", lambda obj: obj)   # an executor of the caller may lack it
    baselines = {seed: share(b) for seed, b in baselines.items()}  # once, not per cell
    halving_info, resume = None, {}
    if halving is not None:
        from .halving import successive_halving

        survivors, halving_info = successive_halving(ex, store, spec, cells, ids, baselines,
                                                     progress=progress, **halving)
        todo = [i for i in survivors if ids[i] not in finished]
        resume = halving_info.pop("checkpoints")
    tasks = [_cell_task(spec, cells[i], baselines[cells[i]["seed"]], checkpoint=resume.get(i))
             for i in todo]
    bar = progress_bar(f"sweep on {ex.name}", len(tasks), progress)
    for j, out in ex.map(run_cell, tasks):
        i = todo[j]
        store.put(ids[i], i, out["result"], out["timing"])
        computed.append(ids[i])
        bar.update()
        if on_cell is not None:
            on_cell(len(computed))
    bar.close()
    return n_base, halving_info


def run_sweep(spec: SweepSpec, folder, *, workers: int | None = None, scheduler=None,
              executor=None, progress=sys.stderr, log=None, on_cell=None,
              halving: dict | None = None) -> SweepSummary:
    """Compute every cell of ``spec`` missing from ``folder``'s store.

    ``executor`` (or ``workers`` / ``scheduler``, see :func:`make_executor`) says where cells
    run. ``on_cell(n)`` is called after the ``n``-th cell of this call is stored. ``halving``
    (``{"eta": 3, "min_epochs": 1}``) runs successive halving first
    (:func:`refnet.sweep.halving.successive_halving`) and then only the surviving cells.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr) if progress is not None else None)
    folder = Path(folder)
    t0 = time.perf_counter()
    check_cells(spec.cells())
    if halving is not None:  # refused before the store and the baselines are made
        from .halving import halving_rungs

        halving_rungs(spec, **halving)
    store = SweepStore.create_or_open(folder, spec)
    try:
        cells = spec.cells()
        ids = [cell_id(c) for c in cells]
        finished = store.finished()
        todo = [i for i, cid in enumerate(ids) if cid not in finished]
        computed, n_base, halving_info = [], 0, None
        # no more local workers than tasks in the largest map: the cells left, or with
        # halving its first rung (every cell); the baselines are at most one per cell
        most = len(cells) if halving is not None else len(todo)
        ex = executor or make_executor(workers, scheduler, tasks=most)
        if todo:
            with ex:
                n_base, halving_info = _compute(ex, store, spec, folder, todo, finished, computed,
                                                halving, progress, log, on_cell)
        skipped = sum(cid in finished for cid in ids)
        return SweepSummary(folder, len(cells), skipped, tuple(computed), n_base,
                            time.perf_counter() - t0, ex.name, halving_info)
    finally:
        store.close()
