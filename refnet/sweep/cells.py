"""What a worker computes: a baseline, or one cell (fine-tune, Monte-Carlo, analytic prediction).

These functions run in worker processes (the local pool or Dask workers). They take and return
plain data (dicts, lists, NumPy arrays); they never open the store. The protocol is Duque 2024's
as coded in :mod:`refnet.reproduction.duque` (reused, not copied): a 784-300-300-C sigmoid MLP,
Adagrad, batch 128, no shuffling, the baseline trained once per (dataset, seed), every cell
fine-tuned from it.

Every cell runs its numba kernels and matrix products on one thread (:func:`limit_threads`):
the executor runs one cell per core, and threads inside cells would oversubscribe the cores.
"""
from __future__ import annotations

import functools
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import __version__

__all__ = ["duque_setup", "cell_train_config", "check_cells", "predicted_accuracy_curve", "train_baseline",
           "run_cell", "limit_threads"]


@contextmanager
def limit_threads():
    """One numba thread and one BLAS thread for the calling thread (speed only: results do not
    depend on thread counts). The executors also set OMP/OPENBLAS/MKL_NUM_THREADS=1 in the
    workers' environment before NumPy loads."""
    from .._blas import fixed_blas_threads
    from .._numba import set_threads

    set_threads(1)   # a no-op without numba, whose NumPy twins are single-threaded anyway
    with fixed_blas_threads():
        yield


def duque_setup(settings: dict):
    """The :class:`refnet.reproduction.duque.DuqueSetup` of a cell's baseline."""
    from ..reproduction.duque import DuqueSetup

    return DuqueSetup(dataset=settings["dataset"], hidden=tuple(settings["hidden"]),
                      baseline_epochs=settings["baseline_epochs"], lr=settings["baseline_lr"],
                      batch_size=settings["batch_size"], n_train=settings["n_train"],
                      n_val=settings["n_val"], seed=settings["seed"])


@functools.lru_cache(maxsize=2)
def _data(setup):
    """The dataset of ``setup`` (a worker loads it once for all its cells of that seed)."""
    from ..reproduction.duque import load_data

    return load_data(setup)


def cell_train_config(settings: dict, n_layers: int, epochs: int | None = None):
    """The fine-tuning :class:`refnet.train.TrainConfig` of a cell.

    The authors' settings (batch, Adagrad, no shuffling, seed) come from
    :func:`refnet.reproduction.duque.mode_config`; the cell adds its epochs, learning rate,
    Eq. 4 / Eq. 7 penalties and noise-aware variance (each off at 0).
    """
    from ..reproduction.duque import mode_config
    from ..noise import NoiseSpec, noise_config
    from ..regularizers import RowSumPenalty, SaturationPenalty, regularizer_preset

    regs = []
    lam4 = settings["eq4_lambda"]
    if isinstance(lam4, dict):  # per-layer lambdas of (Duque 2024, Eq. 4, p. 3)
        regs.append(RowSumPenalty({int(l): v for l, v in lam4.items()}))
    elif lam4 > 0:
        regs.append(regularizer_preset(settings["eq4_variant"], lam4))
    lam7, variant = settings["eq7_lambda"], settings["eq7_variant"]
    if lam7 > 0 and settings["eq7_coefficients"]:
        # an authors' code set with other (c0, c1, c2): the form of regularizer_preset's sets
        c0, c1, c2 = settings["eq7_coefficients"]
        regs.append(SaturationPenalty({2: lam7 * c0}, {2: lam7 * c1, -1: lam7 * c2}, "sum",
                                      2 if variant == "addunc_sigm_sq" else 1))
    elif lam7 > 0:
        regs.append(regularizer_preset(variant, lam7))
    noise = None
    if settings["noise_aware_variance"] > 0:
        spec = NoiseSpec.single(settings["noise_aware_type"], settings["noise_aware_variance"])
        noise = noise_config("duque", spec, n_layers)
    base = mode_config(duque_setup(settings), "standard", n_layers)
    return replace(base, epochs=settings["epochs"] if epochs is None else int(epochs),
                   lr=settings["lr"], regularizers=tuple(regs), noise=noise)


def check_cells(cells: list[dict]) -> None:
    """Build every cell's training settings and evaluate its penalties once on a tiny input, so
    that a setting the network cannot take (e.g. a code set naming W^(2) and W^(L) separately
    on a one-hidden-layer net) is a :class:`ConfigError` now, not a worker's crash later."""
    import json

    from ..errors import ConfigError
    from ..model import init_params, mlp
    from ..regularizers import value

    seen = set()
    for s in cells:
        arch = mlp((2, *s["hidden"], 2), "sigmoid")
        key = json.dumps([s["hidden"], s["eq4_lambda"], s["eq4_variant"], s["eq7_lambda"],
                          s["eq7_variant"], s["eq7_coefficients"]], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        try:
            config = cell_train_config(s, arch.n_layers)
            value(arch, init_params(arch, rng=0), np.zeros((1, 2)), config.regularizers)
        except ValueError as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(
                f"grid: the cell with eq4_lambda={s['eq4_lambda']} ({s['eq4_variant']}), "
                f"eq7_lambda={s['eq7_lambda']} ({s['eq7_variant']}) on hidden={s['hidden']} "
                f"cannot be trained: {e}; change that setting or data.hidden") from None


def predicted_accuracy_curve(arch, params, X, y, noise_type: str, variances, *, seed: int):
    """Analytic accuracy and output variance vs noise variance: THE ranking function.

    Accuracy: moment propagation beyond first order
    (:func:`refnet.propagation.moments.predicted_accuracy_curve`: each neuron's mean and
    variance through the sigmoid by quadrature, the correlations the noise type needs, a
    deterministic ``P(argmax = label)``), which tracks Monte-Carlo within about 1 pp where the
    first-order Gaussian is off by up to 8 pp at variance 1 (benchmarks/bench_moments.py).
    On the Duque placement of a 3-layer net the whole curve comes in one pass
    (:mod:`refnet.propagation.moment_curve`, ``method="auto"``), its cost against Monte-Carlo
    measured in that benchmark.
    Output variance: first order (:mod:`refnet.propagation.sensitivity`), linear in the noise
    variance, so computed once at variance 1 and scaled. Noise after every hidden sigmoid
    (the Duque placement). ``seed`` is recorded by the caller; both predictions are
    deterministic.

    X (n, n_in), y (n,), variances (n_levels,). Returns (accuracy (n_levels,), mean output
    variance over inputs and outputs (n_levels,)).
    """
    from ..noise import NoiseSpec, noise_config
    from ..propagation.moments import predicted_accuracy_curve as moment_curve
    from ..propagation.sensitivity import output_variance_contributions

    del seed  # nothing here is random
    cfg = noise_config("duque", NoiseSpec.single(noise_type, 1.0), arch.n_layers)
    _, _, cov1, _ = output_variance_contributions(arch, params, X, cfg)  # cov1 (n, C, C)
    unit_var = float(np.einsum("bkk->bk", cov1).mean())
    levels = np.asarray(variances, dtype=float)
    curve = moment_curve(arch, params, X, y, cfg, noise_type=noise_type, variances=levels)
    return np.asarray(curve.accuracy, dtype=float), unit_var * levels


def _quiet(*_args, **_kwargs):
    pass


def train_baseline(settings: dict, cache_dir: str | None) -> dict:
    """Train (or load from ``cache_dir``) the baseline of ``settings``' (dataset, seed) with
    :func:`refnet.reproduction.duque.train_models`; returns ``{"arch", "W", "b", "meta"}``.
    ``cache_dir=None`` (remote workers) trains in a temporary folder."""
    from ..reproduction.duque import train_models

    setup = duque_setup(settings)
    with limit_threads(), tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        arch, params, meta = train_models(setup, _data(setup), cache_dir or tmp,
                                          modes=("standard",), progress=None, log=_quiet)["standard"]
        return {"arch": arch.as_dict(), "W": list(params.W), "b": list(params.b), "meta": meta,
                "seconds": time.perf_counter() - t0}


def _train(arch, params, data, config, checkpoint: bytes | None):
    """Fine-tune; resumes from ``checkpoint`` (bytes of a refnet checkpoint) when given.
    Returns (TrainResult, the checkpoint's bytes after the last epoch)."""
    from ..train import train

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "cell.ckpt.npz"
        if checkpoint:  # b"": nothing to resume (e.g. a diverged rung)
            ckpt.write_bytes(checkpoint)
        res = train(arch, params, data.X_train, data.y_train, config, data.X_val, data.y_val,
                    checkpoint=ckpt)
        return res, (ckpt.read_bytes() if ckpt.exists() else b"")


def run_cell(task: dict) -> dict:
    """Fine-tune one cell from its baseline and measure it.

    ``task``: ``settings`` (the cell's), ``evaluate`` (the spec's table), ``report`` (the
    spec's table), ``baseline`` (from :func:`train_baseline`), optional ``epochs`` and
    ``checkpoint`` (successive halving: train to ``epochs``, resuming from the checkpoint) and
    ``full`` (False: a halving rung, only the analytic prediction at the report point).

    Returns ``{"result": ..., "timing": ..., "checkpoint": bytes}``; ``result`` depends only on
    the task (same task, same bytes), ``timing`` holds wall times. A cell whose training
    diverges is a result too (``"diverged"``: where and why), so the sweep goes on.
    """
    from ..model import Architecture, Params
    from ..montecarlo import accuracy_sweep
    from ..train import evaluate_accuracy

    s, ev, rep = task["settings"], task["evaluate"], task["report"]
    full = task.get("full", True)
    setup = duque_setup(s)
    t0 = time.perf_counter()
    with limit_threads():
        data = _data(setup)
        base = task["baseline"]
        arch = Architecture.from_dict(base["arch"])
        start = Params(tuple(base["W"]), tuple(base["b"]))
        config = cell_train_config(s, arch.n_layers, task.get("epochs"))
        try:
            res, ckpt = _train(arch, start, data, config, task.get("checkpoint"))
        except FloatingPointError as e:  # TrainingDiverged: a result too (too large a lambda)
            result = {"settings": s, "seed": s["seed"], "refnet_version": __version__,
                      "epochs_trained": int(config.epochs), "train_config": config.as_dict(),
                      "diverged": str(e).split("; the last good checkpoint")[0]}
            wall = time.perf_counter() - t0
            return {"result": result, "checkpoint": b"",
                    "timing": {"train_seconds": wall, "analytic_seconds": 0.0,
                               "monte_carlo_seconds": 0.0, "wall_seconds": wall}}
        t_train = time.perf_counter()
        X, y = data.X_test, data.y_test
        if ev["n_test"]:
            X, y = X[:ev["n_test"]], y[:ev["n_test"]]
        seed = s["seed"]
        result = {"settings": s, "seed": seed, "refnet_version": __version__,
                  "epochs_trained": int(config.epochs),
                  "train_config": config.as_dict(), "n_test": int(len(X)),
                  "history": [{k: v for k, v in h.items() if k != "seconds"} for h in res.history],
                  "clean_accuracy": evaluate_accuracy(arch, res.params, X, y),
                  "baseline_clean_accuracy": evaluate_accuracy(arch, start, X, y)}
        types = ev["noise_types"] if full else [rep["noise_type"]]
        levels = ev["variances"] if full else [rep["variance"]]
        Xa, ya = X[:ev["analytic_inputs"]], y[:ev["analytic_inputs"]]
        analytic = {}
        for i, t in enumerate(types):
            acc, outvar = predicted_accuracy_curve(arch, res.params, Xa, ya, t, levels,
                                                   seed=seed + 2 + 1000 * i)
            analytic[t] = {"predicted_accuracy": acc.tolist(),
                           "predicted_output_variance": outvar.tolist()}
        result["analytic"] = {"variances": list(levels), "n_inputs": int(len(Xa)),
                              "method": "accuracy: moment propagation (refnet.propagation.moments); output variance: first order (refnet.propagation.sensitivity)",
                              "by_type": analytic}
        t_analytic = time.perf_counter()
        if full:
            sw = accuracy_sweep(arch, res.params, X, y, "duque", rng=seed + 1,
                                noise_types=tuple(types), variances=tuple(levels),
                                repetitions=ev["repetitions"], batch_size=ev["batch_size"],
                                workers=1)
            reps = sw.accuracy.shape[2]
            se = sw.std / np.sqrt(reps) if reps > 1 else np.full(sw.mean.shape, np.nan)
            result["monte_carlo"] = {
                "variances": sw.variances.tolist(), "repetitions": reps, "seed": sw.seed,
                "by_type": {t: {"accuracy": sw.mean[i].tolist(), "stderr": se[i].tolist()}
                            for i, t in enumerate(types)}}
    t_end = time.perf_counter()
    timing = {"train_seconds": t_train - t0, "analytic_seconds": t_analytic - t_train,
              "monte_carlo_seconds": t_end - t_analytic, "wall_seconds": t_end - t0}
    return {"result": result, "timing": timing, "checkpoint": ckpt}
