"""Benchmark: predicted accuracy vs variance (moment propagation) against Monte-Carlo.

Issue 14, item 3: the analytic curve of :func:`refnet.propagation.moments.predicted_accuracy_curve`
should agree with Monte-Carlo (:func:`refnet.montecarlo.accuracy_sweep`) within 1 pp over
variances in [1e-3, 1] for all four noise types on trained MNIST and Fashion-MNIST nets
(784-300-300-10, sigmoid, Adagrad lr 0.01, batch 128, no shuffling, as in
``refnet/reproduction/duque/protocol.py``), at a fraction of Monte-Carlo's cost.

For each dataset and noise type this prints, per variance, the predicted and Monte-Carlo
accuracy (with Monte-Carlo's standard error over repetitions) and their difference; then the
max |difference| in pp, both times and their ratio, and how many Monte-Carlo repetitions cost
as much as the analytic curve. For reference the last column is the first-order prediction
(clean logits and the Jacobian covariance of :mod:`refnet.propagation.sensitivity`, argmax
probability by the same deterministic Gaussian integral).

Trained nets are cached (refnet model files, no pickle) under ``--cache`` (default
``$REFNET_BENCH_CACHE`` or ``~/.cache/refnet-bench``); data come from ``REFNET_DATA_DIR``.

``--methods`` picks the analytic methods timed (``auto``: the one-pass curve of
:mod:`refnet.propagation.moment_curve`, the default; ``full``: every variance on its own);
each time is the fastest of ``--rounds`` runs, Monte-Carlo's too, so the ratio compares like
with like on a loaded machine; the CPU time of all threads (``time.process_time``) is printed
beside the wall time (Monte-Carlo's numba kernels may use several threads). Where the curve
conditions on W2's dominant directions (additive uncorrelated noise), it also prints where
the fastest round's time went: the conditioned levels' shared covariances and their cubature
points against the rest, and how much time per point a quarter of Monte-Carlo's time would
leave (:class:`ConditionedTimer`).

Usage:  python benchmarks/bench_moments.py [--quick] [--datasets mnist fashion-mnist]
        [--n-inputs 2000] [--reps 10] [--levels 10] [--epochs 3] [--methods auto full]
        [--rounds 3] [--cache DIR] [--directions K]
BLAS threads: on a loaded machine run with OPENBLAS_NUM_THREADS=1 (both methods alike).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from refnet.io import load_model, save_model
from refnet.model import init_params, mlp
from refnet.montecarlo import accuracy_sweep
from refnet.noise import NOISE_TYPES, NoiseConfig, NoiseSpec, noise_config
from refnet.propagation import moment_curve
from refnet.propagation.conditioned import cubature_rule
from refnet.propagation.gaussian_argmax import gaussian_argmax_probability
from refnet.propagation.moments import predicted_accuracy_curve
from refnet.propagation.sensitivity import output_variance_contributions
from refnet.train import TrainConfig, train


def trained_net(dataset: str, epochs: int, cache: Path):
    """A 784-300-300-10 sigmoid net trained for ``epochs`` (loaded from ``cache`` if there)."""
    path = cache / f"{dataset}-784-300-300-10-{epochs}ep-seed0.npz"
    if path.exists():
        arch, params, _ = load_model(path)
        return arch, params, "loaded " + str(path)
    from refnet.datasets import load_dataset

    tr = load_dataset(dataset, "train")
    arch = mlp((784, 300, 300, 10), "sigmoid", "identity")
    cfg = TrainConfig(epochs=epochs, lr=0.01, batch_size=128, optimizer="adagrad",
                      shuffle=False, seed=0)
    t0 = time.perf_counter()
    params = train(arch, init_params(arch, "torch", rng=0), tr.X.reshape(len(tr.X), -1), tr.y,
                   cfg).params
    cache.mkdir(parents=True, exist_ok=True)
    save_model(path, arch, params, {"dataset": dataset, "train": cfg.as_dict()})
    return arch, params, f"trained in {time.perf_counter() - t0:.0f} s, cached at {path}"


class ConditionedTimer:
    """Times the additive curve's conditioned levels: wraps the ``_conditional_level`` (each
    level's covariance, shared by its points) and the ``conditioned_probability`` (the
    cubature points) that :mod:`refnet.propagation.moment_curve` calls (same arguments, same
    results), and counts the cubature points, so that the benchmark can print where the
    curve's time goes."""

    def __init__(self):
        self.seconds, self.setup_seconds, self.points, self.levels = 0.0, 0.0, 0, 0
        self._inner = moment_curve.conditioned_probability
        self._inner_level = moment_curve._conditional_level

    def __call__(self, variance, q2, deflation, level_probability):
        t0 = time.perf_counter()
        out = self._inner(variance, q2, deflation, level_probability)
        self.seconds += time.perf_counter() - t0
        self.points += len(cubature_rule(deflation.US.shape[1])[1])
        self.levels += 1
        return out

    def _level(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self._inner_level(*args, **kwargs)
        self.setup_seconds += time.perf_counter() - t0
        return out

    def __enter__(self):
        moment_curve.conditioned_probability = self
        moment_curve._conditional_level = self._level
        return self

    def __exit__(self, *exc):
        moment_curve.conditioned_probability = self._inner
        moment_curve._conditional_level = self._inner_level


def first_order_curve(arch, params, X, y, noise, noise_type, variances):
    """First-order predicted accuracy: clean logits, Jacobian covariance (sensitivity.py)."""
    out = []
    for v in variances:
        cfg = noise.with_spec(NoiseSpec.single(noise_type, v))
        mean, _, cov, _ = output_variance_contributions(arch, params, X, cfg)
        out.append(gaussian_argmax_probability(mean, cov, y).mean())
    return np.array(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    ap.add_argument("--types", nargs="+", default=list(NOISE_TYPES))
    ap.add_argument("--n-inputs", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--levels", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--quadrature-nodes", type=int, default=16)
    ap.add_argument("--directions", type=int, default=None,
                    help="auto curve, additive uncorrelated noise: at most this many of W2's "
                    "dominant directions by cubature (0: none; default: the library's)")
    ap.add_argument("--preset", default="duque", help="noise placement: duque, semenova or "
                    "duque-pre (the duque layers, noise before the activation)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=os.environ.get("REFNET_BENCH_CACHE",
                                                      str(Path.home() / ".cache" / "refnet-bench")))
    ap.add_argument("--methods", nargs="+", default=["auto"], choices=["auto", "full"])
    ap.add_argument("--rounds", type=int, default=1, help="time each method this many times "
                    "and keep the fastest")
    ap.add_argument("--quick", action="store_true", help="300 inputs, 4 levels, 3 repetitions")
    args = ap.parse_args(argv)
    n, reps, levels = (300, 3, 4) if args.quick else (args.n_inputs, args.reps, args.levels)
    variances = np.logspace(-3, 0, levels)
    directions = {} if args.directions is None else {"directions": args.directions}
    from refnet.datasets import load_dataset

    print(f"inputs {n} (first of the test set), Monte-Carlo repetitions {reps}, "
          f"{levels} variances in [1e-3, 1], noise placement {args.preset}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    summary = []
    for ds in args.datasets:
        arch, params, how = trained_net(ds, args.epochs, Path(args.cache))
        te = load_dataset(ds, "test")
        X, y = te.X.reshape(len(te.X), -1)[:n].astype(np.float64), te.y[:n]
        print(f"\n== {ds}: {args.epochs} epochs ({how})")
        noise = noise_config(args.preset.removesuffix("-pre"), None, arch.n_layers)
        if args.preset.endswith("-pre"):
            noise = NoiseConfig(noise.spec, noise.layers, "pre")
        # compile and warm up both sides once, outside the timings
        accuracy_sweep(arch, params, X[:50], y[:50], noise, noise_types=("add_unc",),
                       variances=variances[:1], repetitions=1, rng=args.seed)
        for method in args.methods:  # imports (scipy.stats for the Sobol points), caches
            predicted_accuracy_curve(arch, params, X[:50], y[:50], noise, "add_unc",
                                     variances, method=method)
        for t in args.types:
            preds, split = {}, None
            for method in args.methods:
                best, best_cpu = np.inf, np.inf
                for _ in range(max(1, args.rounds)):
                    t0, c0 = time.perf_counter(), time.process_time()
                    with ConditionedTimer() as timer:
                        pred = predicted_accuracy_curve(arch, params, X, y, noise, t, variances,
                                                        quadrature_nodes=args.quadrature_nodes,
                                                        method=method, **directions)
                    wall = time.perf_counter() - t0
                    if wall < best and timer.levels:
                        split = (method, wall, timer)
                    best = min(best, wall)
                    best_cpu = min(best_cpu, time.process_time() - c0)
                preds[method] = (pred, best, best_cpu)
            t_mc, cpu_mc = np.inf, np.inf
            for _ in range(max(1, args.rounds)):
                t0, c0 = time.perf_counter(), time.process_time()
                mc = accuracy_sweep(arch, params, X, y, noise, noise_types=(t,),
                                    variances=variances, repetitions=reps, rng=args.seed)
                t_mc = min(t_mc, time.perf_counter() - t0)
                cpu_mc = min(cpu_mc, time.process_time() - c0)
            m, se = mc.mean[0], mc.std[0] / np.sqrt(reps)
            first = first_order_curve(arch, params, X, y, noise, t, variances)
            pred = preds[args.methods[0]][0]
            diff = (pred.accuracy - m) * 100
            print(f"-- {t}: clean {mc.clean_accuracy * 100:.2f} % (method {args.methods[0]}: "
                  f"{pred.settings['curve']})")
            print("   variance  predicted %  Monte-Carlo % (SE)   diff pp   first-order diff pp")
            for v, p, a, e, d, f in zip(variances, pred.accuracy, m, se, diff, first):
                print(f"   {v:8.4f}  {p * 100:11.2f}  {a * 100:8.2f} ({e * 100:4.2f})  {d:+8.2f}"
                      f"  {(f - a) * 100:+12.2f}")
            k = int(np.argmax(np.abs(diff)))
            print(f"   max |diff| {abs(diff[k]):.2f} pp at variance {variances[k]:.4g} "
                  f"(first order: {np.abs(first - m).max() * 100:.2f} pp); "
                  f"Monte-Carlo {t_mc:.2f} s")
            for method, (p, tp, cp) in preds.items():
                extra = {k: np.round(p.settings[k], 4).tolist() for k in
                         ("interpolation_error", "settled_fraction", "classes_kept",
                          "conditioned_directions")
                         if k in p.settings}
                gap = np.abs(p.accuracy - preds[args.methods[-1]][0].accuracy).max() * 100
                print(f"   {method:5s} {tp:6.2f} s, ratio to Monte-Carlo {tp / t_mc:.2f} "
                      f"(= {reps * tp / t_mc:.1f} repetitions); max |diff| to MC "
                      f"{np.abs(p.accuracy - m).max() * 100:.2f} pp, to {args.methods[-1]} "
                      f"{gap:.4f} pp; CPU time (all threads) {cp:.2f} s vs {cpu_mc:.2f} s, "
                      f"ratio {cp / cpu_mc:.2f} {extra}")
                if split is not None and split[0] == method:
                    _, wall, tm = split
                    cond = tm.seconds + tm.setup_seconds
                    print(f"   {method:5s} where the time goes (fastest round, {wall:.2f} s): "
                          f"{tm.levels} conditioned levels, their shared covariances "
                          f"{tm.setup_seconds:.2f} s, {tm.points} cubature points "
                          f"{tm.seconds:.2f} s ({1e3 * tm.seconds / tm.points:.1f} ms per point: "
                          f"logit means, settling, argmax integral over the open inputs); the "
                          f"rest of the {len(variances)} levels and the shared work "
                          f"{wall - cond:.2f} s; a quarter of Monte-Carlo's time would leave "
                          f"{1e3 * (0.25 * t_mc - (wall - cond)) / tm.points:.1f} ms per point "
                          f"and covariance")
                summary.append((ds, t, method, np.abs(p.accuracy - m).max() * 100,
                                variances[int(np.argmax(np.abs(p.accuracy - m)))], tp, t_mc,
                                cp / cpu_mc))
    print("\nsummary: dataset  type     method max|diff| pp  at variance  t_pred s  t_MC s  ratio"
          "  CPU ratio")
    for ds, t, meth, d, v, tp, tm, cr in summary:
        print(f"  {ds:13s} {t:8s} {meth:6s} {d:10.2f}  {v:11.4g}  {tp:8.2f}  {tm:6.2f}  "
              f"{tp / tm:5.2f}  {cr:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
