"""Benchmark: analytic (first-order) output SNR vs Monte-Carlo for a 784-200-200-10 network.

Issue 5's target: over 1000 inputs, the analytic output SNR is >= 1000x faster than
Monte-Carlo with K = 300 repeats (NumPy reference forward; the time of refnet's numba engine for
the same statistics is printed too), at <= 10 % median relative error
in the small-noise regime. Prints both timings, the speed ratio and the median relative error
of the output variance and SNR (note: with K = 300 the Monte-Carlo variance itself has a
relative standard error of sqrt(2/299) ~ 8 %, so the measured median error is bounded below by
~5 % from Monte-Carlo noise alone).

Usage:  python benchmarks/bench_propagation.py [--model FILE --inputs FILE.npz] [--quick]
Without --model, a network with PyTorch-default initialisation (weights x3, so that the sigmoid
layers are used beyond their linear range) and uniform random inputs stands in; say which in
any reported figure.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from refnet.model import Params, init_params, mlp
from refnet.montecarlo import monte_carlo_outputs
from refnet.noise import NoiseSpec, noise_config
from refnet.propagation.sensitivity import output_variance_contributions


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--inputs")
    ap.add_argument("--n-inputs", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--variance", type=float, default=1e-3)
    ap.add_argument("--noise-type", default="add_unc")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="100 inputs")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n = 100 if args.quick else args.n_inputs
    if args.model:
        from refnet.io import load_model
        arch, P, _ = load_model(args.model)
        with np.load(args.inputs, allow_pickle=False) as d:
            X = d["X"][:n].reshape(n, -1).astype(P.dtype)
        source = args.model
    else:
        arch = mlp((784, 200, 200, 10), "sigmoid", "identity")
        P0 = init_params(arch, "torch", rng=args.seed)
        P = Params(tuple(3 * w for w in P0.W), P0.b)
        X = rng.uniform(0, 1, (n, 784))
        source = "random torch-init 784-200-200-10 (weights x3), uniform inputs"
    cfg = noise_config("duque", NoiseSpec.single(args.noise_type, args.variance), arch.n_layers)
    times = []
    for _ in range(4):  # first call includes one-off warm-up; report the best of the rest
        t0 = time.perf_counter()
        mean, contrib, _, _ = output_variance_contributions(arch, P, X, cfg, covariance=False)
        var_a = contrib.sum((0, 1))
        times.append(time.perf_counter() - t0)
    t_first, t_analytic = times[0], min(times[1:])
    from refnet.montecarlo import neuron_statistics

    t0 = time.perf_counter()
    neuron_statistics(arch, P, X, cfg, K=args.trials, rng=args.seed, layers=(arch.n_layers,),
                      workers=2)
    t_engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    Y = monte_carlo_outputs(arch, P, X, cfg, args.trials, rng)
    var_mc, mean_mc = Y.var(0, ddof=1), Y.mean(0)
    t_mc = time.perf_counter() - t0
    rel_var = np.median(np.abs(var_a / var_mc - 1))
    snr_a, snr_mc = np.abs(mean) / np.sqrt(var_a), np.abs(mean_mc) / np.sqrt(var_mc)
    rel_snr = np.median(np.abs(snr_a / snr_mc - 1))
    print(f"network: {source}; {n} inputs; {args.noise_type} variance {args.variance:g} "
          f"(duque preset); seed {args.seed}")
    print(f"analytic: {t_analytic:.3f} s (first call {t_first:.3f} s)   Monte-Carlo K={args.trials}: {t_mc:.2f} s   "
          f"speed-up: {t_mc / t_analytic:.0f}x")
    print(f"Monte-Carlo K={args.trials} with refnet's numba engine (2 workers): {t_engine:.2f} s   "
          f"speed-up: {t_engine / t_analytic:.0f}x")
    print(f"median relative error: output variance {rel_var:.4f}, output SNR {rel_snr:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
