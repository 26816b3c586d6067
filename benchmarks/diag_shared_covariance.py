"""Diagnosis (issue 14): can the conditioned additive curve share one covariance per level?

:mod:`refnet.propagation.conditioned` integrates the layer-1 noise along ``W2``'s top singular
directions by a cubature rule; at each point the curve recomputes everything of a level: the
neurons' moments, the logit-difference covariance, the Genz integral (forming the covariance
is about a third of a point's cost: docs/benchmarks.md, "Predicted accuracy vs Monte-Carlo").
This script measures what sharing it across the points would cost in accuracy: at each
point the logit means are exact (Gauss-Hermite at the shifted mean), and the covariance is
either the point's own (``per point``) or the one at ``t = 0`` for every point
(``shared``). Both use the dense deflated ``W2`` (no low-rank form, no settling) and a fixed
512-point Sobol rule for the argmax integral, so that they differ only in the covariance.
Printed against Monte-Carlo (``accuracy_sweep``, ``--reps`` repetitions, with its standard
error) and the library's default curve.

Not part of the library: the shared covariance is not used (docs/benchmarks.md says why:
each point would still need its neurons' means and a Genz integral, which keep the curve
far above a small fraction of Monte-Carlo's time).

Usage:  python benchmarks/diag_shared_covariance.py [--datasets mnist fashion-mnist]
        [--n-inputs 2000] [--reps 40] [--cache DIR] [--model FILE ...]
(``--model``: refnet model files of 784-300-300-10 sigmoid nets instead of the benchmark's
trained ones, each on the first dataset of ``--datasets``; the MNIST sweep's baselines, for
example, under ``OUT/baselines/``.)
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from bench_moments import trained_net
from refnet.datasets import load_dataset
from refnet.io import load_model
from refnet.montecarlo import accuracy_sweep
from refnet.noise import noise_config
from refnet.propagation.conditioned import MAX_DIRECTIONS, cubature_rule, deflate
from refnet.propagation.gaussian_argmax import orthant_probability_and_variance
from refnet.propagation.moment_curve import _level_moments, hermite_nodes_for_variance
from refnet.propagation.moments import predicted_accuracy_curve

#: The benchmark's conditioned levels (10 log-spaced variances in [1e-3, 1], the top four).
LEVELS = np.logspace(-3, 0, 10)[6:]


def difference_covariance(A, d, v2, W_rest, s):
    """``A diag(v2) A^T + s (A D W')(A D W')^T`` per input: A (B, m, n2), d, v2 (B, n2)."""
    E = (A * d[:, None, :]) @ W_rest
    return s * E @ E.transpose(0, 2, 1) + (A * v2[:, None, :]) @ A.transpose(0, 2, 1)


def conditioned_curve(params, a1, y, variances, k, *, shared: bool):
    """Mean ``P(argmax = y)`` per variance, ``k`` directions conditioned on by
    :func:`cubature_rule`, the covariance per point or shared (module docstring)."""
    W2, W3, b2, b3 = params.W[1], params.W[2], params.b[1], params.b[2]
    z2 = a1 @ W2.T + b2
    q2 = (W2 * W2).sum(1)
    defl = deflate(np.linalg.svd(W2), k, gram_rank=None)
    pts, w = cubature_rule(k)
    n, K = len(y), W3.shape[0]
    others = np.array([[c for c in range(K) if c != label] for label in range(K)])[y]
    A = W3[y][:, None, :] - W3[others]                            # (B, K - 1, n2)
    out = []
    for s in variances:
        var_z = s * np.clip(q2 - defl.q_drop, 0.0, None)
        nodes = hermite_nodes_for_variance("sigmoid", float(var_z.max()))
        if shared:
            _, d, v2 = _level_moments("sigmoid", nodes, z2, var_z, s, mul=False)
            C = difference_covariance(A, d, v2, defl.W_rest, s)
        p = np.zeros(n)
        for t, wt in zip(pts, w):
            m1, d, v2 = _level_moments("sigmoid", nodes, z2 + np.sqrt(s) * (defl.US @ t), var_z,
                                       s, mul=False)
            if not shared:
                C = difference_covariance(A, d, v2, defl.W_rest, s)
            mu = m1 @ W3.T + b3
            md = mu[np.arange(n), y][:, None] - np.take_along_axis(mu, others, axis=1)
            p += wt * orthant_probability_and_variance(md, C, log2_points=9)[0]
        out.append(p.mean())
    return np.array(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    ap.add_argument("--n-inputs", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", default=os.environ.get("REFNET_BENCH_CACHE",
                                                      str(Path.home() / ".cache/refnet-bench")))
    ap.add_argument("--model", nargs="+", help="model files instead of the benchmark's nets")
    args = ap.parse_args(argv)
    n = args.n_inputs
    nets = ([(args.datasets[0], path) for path in args.model] if args.model else
            [(ds, None) for ds in args.datasets])
    for ds, path in nets:
        if path is None:
            arch, params, how = trained_net(ds, args.epochs, Path(args.cache))
        else:
            arch, params, _ = load_model(path)
            how = f"loaded {path}"
        te = load_dataset(ds, "test")
        X, y = te.X.reshape(len(te.X), -1)[:n].astype(np.float64), te.y[:n]
        noise = noise_config("duque", None, arch.n_layers)
        t0 = time.perf_counter()
        mc = accuracy_sweep(arch, params, X, y, noise, noise_types=("add_unc",),
                            variances=LEVELS, repetitions=args.reps, rng=args.seed)
        m, se = mc.mean[0], mc.std[0] / np.sqrt(args.reps)
        print(f"\n== {ds} ({how}), add_unc, {n} inputs; Monte-Carlo {args.reps} repetitions "
              f"({time.perf_counter() - t0:.1f} s)")
        print("variance          " + "".join(f"{v:>9.4f}" for v in LEVELS))
        print("Monte-Carlo %     " + "".join(f"{a * 100:9.2f}" for a in m))
        print("  its SE (pp)     " + "".join(f"{e * 100:9.2f}" for e in se))
        rows = [("library default", predicted_accuracy_curve(
            arch, params, X, y, noise, "add_unc", LEVELS).accuracy)]
        a1 = 1.0 / (1.0 + np.exp(-(X @ params.W[0].T + params.b[0])))
        for k in range(1, MAX_DIRECTIONS + 1):
            for shared in (False, True):
                rows.append((f"k={k} {'shared' if shared else 'per point'}",
                             conditioned_curve(params, a1, y, LEVELS, k, shared=shared)))
        for name, acc in rows:
            print(f"{name:18s}" + "".join(f"{(a - b) * 100:+9.2f}" for a, b in zip(acc, m))
                  + "   (pp from Monte-Carlo)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
