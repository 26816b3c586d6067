"""Successive halving: train every cell a few epochs, keep the best fraction, continue.

Rungs at ``min_epochs, min_epochs * eta, ...`` below the grid's fine-tuning epochs ``E``. At
each rung every surviving cell is trained to the rung's epochs (resuming from its previous
rung's checkpoint), scored by the analytic predicted accuracy at the report's noise type and
variance (:func:`refnet.sweep.cells.predicted_accuracy_curve`, no Monte-Carlo), and the best
``ceil(n / eta)`` are kept (ties: grid order). The survivors are then trained to ``E`` and
measured in full. A cell resumed from a checkpoint gives the same bits as one trained to ``E``
at once (:func:`refnet.train.train` draws epoch ``e``'s randomness from ``(seed, e)``), so the
survivors' rows are the rows a full grid would hold.

Rungs are stored (``rungs`` table, with their checkpoints) and reused on a rerun. Running the
same spec afterwards without ``--halving`` computes the dropped cells; the report then states
the time halving saved and whether it kept the grid's best cell.
"""
from __future__ import annotations

import math
import sys

from ..errors import ConfigError
from .cells import run_cell
from .store import canonical_json

__all__ = ["rung_schedule", "halving_rungs", "successive_halving"]


def rung_schedule(full_epochs: int, eta: int, min_epochs: int) -> list[int]:
    """The rungs' epochs: ``min_epochs * eta**k`` below ``full_epochs``."""
    if int(eta) < 2:
        raise ConfigError(f"--halving: eta must be >= 2, got {eta}")
    if int(min_epochs) < 1:
        raise ConfigError(f"--halving: min_epochs must be >= 1, got {min_epochs}")
    out, r = [], int(min_epochs)
    while r < full_epochs:
        out.append(r)
        r *= int(eta)
    if not out:
        raise ConfigError(f"--halving: min_epochs {min_epochs} is not below the grid's "
                          f"{full_epochs} fine-tuning epochs; lower min_epochs or raise epochs")
    return out


def halving_rungs(spec, *, eta: int = 3, min_epochs: int = 1) -> list[int]:
    """The rungs of ``spec``'s one ``grid.epochs`` value (:func:`rung_schedule`); a
    :class:`ConfigError` for a grid or schedule halving cannot run, checked by the driver
    before the store or any baseline is made."""
    if len(spec.grid["epochs"]) != 1:
        raise ConfigError("--halving: grid.epochs has several values; successive halving "
                          "allocates epochs itself: give one value (the full budget)")
    return rung_schedule(spec.grid["epochs"][0], eta, min_epochs)


def rung_score(result: dict, report: dict) -> float:
    """A rung's ranking score: predicted accuracy at the report's noise type and variance
    (a diverged cell ranks last)."""
    if "diverged" in result:
        return float("-inf")
    return result["analytic"]["by_type"][report["noise_type"]]["predicted_accuracy"][0]


def successive_halving(ex, store, spec, cells, ids, baselines, *, eta: int = 3,
                       min_epochs: int = 1, progress=sys.stderr):
    """Run the rungs; return (surviving cell positions, info with their checkpoints)."""
    from .driver import _cell_task, progress_bar

    rungs = halving_rungs(spec, eta=eta, min_epochs=min_epochs)
    alive, ckpts, log = list(range(len(cells))), {}, []
    for r in rungs:
        need = [i for i in alive if store.rung(ids[i], r) is None]
        tasks = [_cell_task(spec, cells[i], baselines[cells[i]["seed"]], epochs=r, full=False,
                            checkpoint=ckpts.get(i)) for i in need]
        bar = progress_bar(f"halving rung {r} epoch(s) on {ex.name}", len(tasks), progress)
        for j, out in ex.map(run_cell, tasks):
            store.put_rung(ids[need[j]], r, out["result"], out["timing"], out["checkpoint"])
            bar.update()
        bar.close()
        rows = {i: store.rung(ids[i], r) for i in alive}
        scores = {i: rung_score(rows[i][0], spec.report) for i in alive}
        ckpts = {i: rows[i][2] for i in alive}
        n_keep = max(1, math.ceil(len(alive) / int(eta)))
        ranked = sorted(alive, key=lambda i: (-scores[i], i))
        log.append({"epochs": r, "scored": len(alive),
                    "kept": [ids[i] for i in sorted(ranked[:n_keep])],
                    "scores": {ids[i]: scores[i] for i in alive}})
        alive = sorted(ranked[:n_keep])
    info = {"eta": int(eta), "min_epochs": int(min_epochs), "rungs": log,
            "survivors": [ids[i] for i in alive]}
    store.set_meta("halving", canonical_json(info))
    info["checkpoints"] = {i: ckpts[i] for i in alive}
    return alive, info
