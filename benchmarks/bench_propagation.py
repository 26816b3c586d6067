"""Benchmark: analytic output variance and SNR vs Monte-Carlo, trained MNIST networks.

Issue #15, item 3. For a trained 784-300-300-10 and 784-200-200-10 (``benchmarks/_nets.py``:
a few epochs of MNIST, cached in ``--cache``), over the first 1000 MNIST test images, each
noise type alone (variance ``--variance``), against the straightforward NumPy Monte-Carlo
(:func:`refnet.montecarlo.monte_carlo_outputs`, K = 300 repeated forward passes, its sigmoids
as NumPy passes: :func:`refnet._activation_kernels.numpy_passes_only`) on the same inputs and
the same noise placement:

* ``first order``: the Jacobian method (:func:`refnet.propagation.sensitivity.
  output_variance_contributions`, variances only), Duque's placement (after both hidden
  layers). Target >= 300x at <= 10 % median relative error of the variance.
* ``weight stats``: Semenova's Eqs. 14-15 (:mod:`refnet.propagation.trained`), her placement
  (every layer's output, input included). The network's statistics
  (:func:`~refnet.propagation.trained.network_statistics`: a clean pass and one density fit
  per layer) are taken once and timed apart; the timed per-input part is the clean forward pass
  (the outputs at which Eq. 5's curve is read) plus :func:`~refnet.propagation.trained.
  variances_from_statistics`. Target >= 1000x.

Each row prints: the method's time (best of ``--repeats`` after a warm-up), the Monte-Carlo
time, their ratio, the ratio's FLOP bound, from ``--mc-rounds`` rounds (default 2), each timing
the floor, the method and one Monte-Carlo run back to back; the ratio and the bound are the
medians of the rounds' own ratios (the machine switches between two speeds about 2x apart,
so times from different moments do not make a ratio), the times shown the fastest; every
timing starts after a quarter-second pause (:data:`PAUSE`); the median relative error of the variance (and of the SNR)
vs Monte-Carlo, and a verdict. The FLOP bound is the Monte-Carlo time over the method's
*floor*: the bare matrix products it cannot avoid (the clean forward pass, plus
for the first-order rows the products with the Jacobian: the ``n_out x n_2 x n_1`` product
that forms ``G_1`` for multiplicative uncorrelated noise, its triangular half for additive
uncorrelated noise; correlated noise needs only matrix-vector products, left out), timed as
plain NumPy/BLAS calls just before the row. No implementation doing those products with this
BLAS can beat that ratio; the arithmetic is printed under each table. ``same``: the
same-bits bound, the Monte-Carlo time over the *same-bits floor*: the clean pass as refnet's
bits pin it (:func:`same_bits_pass`: its fixed-block products, the bias additions and refnet's
own activation passes, nothing else), plus the same Jacobian products. refnet's methods need
that pass's outputs and its numbers; a row below its target whose same-bits bound is below
it too is stopped by that pass, not by the method's own work.

For correlated noise the Monte-Carlo draws one number per layer and trial, so its arithmetic
is that of K clean forward passes, while every analytic method needs at least one clean pass:
the bound for correlated rows is K = 300x times the Monte-Carlo's cost per pass over a clean
pass's (its memory traffic: K copies of each input, noisy activations), so the
weight-statistics target (1000x) needs that overhead to exceed 3.3x there.

With K = 300 the Monte-Carlo variance itself has a relative standard error of
sqrt(2/299) = 8.2 %, so the median |relative error| has a floor of about 5.5 % from Monte-Carlo
noise alone.

Usage:  python benchmarks/bench_propagation.py [--cache DIR] [--quick] [--model M --inputs F]
(``--model`` a refnet model file and ``--inputs`` an ``.npz`` with ``X``: that network instead
of the two trained ones.) Timings on a shared machine are noisy: compare ratios from one run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.linalg.blas import get_blas_funcs

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_nets.py

from refnet._blas import on_fixed_blas_threads  # noqa: E402
from refnet._gemm import matmul  # noqa: E402
from refnet.activations import get_activation  # noqa: E402
from refnet.model import forward  # noqa: E402
from refnet._activation_kernels import numpy_passes_only  # noqa: E402
from refnet.montecarlo import monte_carlo_outputs  # noqa: E402
from refnet.noise import NOISE_TYPES, NoiseSpec, noise_config  # noqa: E402
from refnet.propagation.sensitivity import output_variance_contributions  # noqa: E402
from refnet.propagation.trained import (network_statistics,  # noqa: E402
                                        variances_from_statistics)

FIRST_ORDER_TARGET, WEIGHT_STATS_TARGET, ERROR_TARGET = 300.0, 1000.0, 0.10
#: Seconds idle before each timing: OpenBLAS's threads spin for about 0.1 s after a product,
#: and refnet's blocks on numba's threads, timed right after one, ran up to 2x slower
#: (forward() of 1,000 inputs: 13-16 ms against 8.1-8.4 ms after the pause, measured).
PAUSE = 0.25
INTENSITY = {"add_unc": "D_A_U_intensity", "add_cor": "D_A_C_intensity",
             "mul_unc": "D_M_U_intensity", "mul_cor": "D_M_C_intensity"}


def best_time(fn, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls after one warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def floors(arch, P, X, repeats: int) -> dict[str, float]:
    """Bare BLAS times of the unavoidable products, for all inputs at once (seconds), taken
    just before each row's own timings so that both see the same machine load.

    ``forward``: the clean pass's L products. ``jacobian``: forming ``G_l`` down to the first
    hidden layer (``G_{l-1} = G_l D W_l``, one (n_batch n_out, n_l) x (n_l, n_{l-1}) product
    per layer, the top one skipped: ``G_L = I``). ``gram``: the triangular product
    ``M R^T`` with R (n_2, n_2) for the first hidden layer's additive uncorrelated noise.
    """
    rng = np.random.default_rng(0)
    n, n_out = len(X), arch.sizes[-1]
    acts = [X] + [rng.uniform(size=(n, m)) for m in arch.sizes[1:-1]]
    t_fwd, _ = best_time(lambda: [a @ w.T for a, w in zip(acts, P.W)], repeats)
    Gs = {l: rng.standard_normal((n * n_out, arch.sizes[l])) for l in range(2, arch.n_layers)}
    t_jac, _ = best_time(lambda: [Gs[l] @ P.W[l - 1] for l in Gs], repeats)
    R = np.asfortranarray(np.triu(rng.standard_normal((arch.sizes[2],) * 2)))
    trmm = get_blas_funcs("trmm", (R,))
    M = rng.standard_normal((n * n_out, arch.sizes[2]))
    t_gram, _ = best_time(lambda: trmm(1.0, R, M.T, side=0, lower=0, trans_a=0), repeats)
    time.sleep(PAUSE)
    t_clean, _ = best_time(lambda: same_bits_pass(arch, P, X), repeats)
    return {"forward": t_fwd, "jacobian": t_jac, "gram": t_gram, "clean": t_clean}


@on_fixed_blas_threads
def same_bits_pass(arch, P, X):
    """The clean pass as refnet's bits pin it, and nothing else: per layer the product in
    refnet's fixed blocks (:func:`refnet._gemm.matmul`), the bias added, refnet's activation
    (on AVX-512 machines NumPy's passes, elsewhere numba's, whichever gives refnet's bits).
    Every method here needs the clean outputs of every layer (first order: its Jacobian's
    ``f'``; Eqs. 14-15: where Eq. 5's curve is read); :func:`refnet.model.forward` is this
    plus its checks, its cache and its noise handling."""
    a = X
    for l in range(1, arch.n_layers + 1):
        z = matmul(a, P.W[l - 1].T)
        z += P.b[l - 1]
        a = get_activation(arch.activations[l - 1]).f(z)
    return a


def paired_rounds(method, monte_carlo, floor, args) -> dict:
    """``--mc-rounds`` rounds, each timing the floor's products and the method (best of
    ``--repeats`` each) and then one Monte-Carlo run (a fresh draw), back to back: each
    round's ratio compares timings made at the same machine speed (the machine switches
    between two speeds about 2x apart, sometimes mid-run). Returns the fastest times, the
    median of the rounds' ratios and bounds, the method's last result and the first
    Monte-Carlo outputs (K, n, n_out)."""
    rounds, out, Y0 = [], None, None
    for _ in range(max(1, args.mc_rounds)):
        time.sleep(PAUSE)
        t_floor, how, t_same, how_same = floor()
        time.sleep(PAUSE)
        t, out = best_time(method, args.repeats)
        time.sleep(PAUSE)
        t0 = time.perf_counter()
        Y = monte_carlo()
        rounds.append((t, time.perf_counter() - t0, t_floor, how, t_same, how_same))
        Y0 = Y if Y0 is None else Y0
    t, t_mc, t_floor = (min(r[i] for r in rounds) for i in range(3))
    t_same = min(r[4] for r in rounds)
    how = min(rounds, key=lambda r: r[2])[3]   # the parts of the fastest floor shown
    how_same = min(rounds, key=lambda r: r[4])[5]
    return {"t": t, "t_mc": t_mc, "floor": t_floor, "how": how, "result": out, "Y": Y0,
            "same": t_same, "how_same": how_same,
            "ratio": float(np.median([r[1] / r[0] for r in rounds])),
            "bound": float(np.median([r[1] / r[2] for r in rounds])),
            "bound_same": float(np.median([r[1] / r[4] for r in rounds])),
            "ratios": [r[1] / r[0] for r in rounds]}


def numpy_monte_carlo(arch, P, X, cfg, trials, rng):
    """The straightforward NumPy Monte-Carlo: refnet's reference loop of forward passes with
    NumPy's sigmoid passes (where refnet's forward would take its numba pass, which gives the
    same bits faster on machines without AVX-512, :mod:`refnet._activation_kernels`)."""
    with numpy_passes_only():
        return monte_carlo_outputs(arch, P, X, cfg, trials, rng)


def median_rel(a, b) -> float:
    ok = b > 0
    return float(np.median(np.abs(a[ok] / b[ok] - 1)))


def first_order_row(arch, P, X, noise_type, args, rng) -> dict:
    """Time the first-order variances and compare them with Monte-Carlo, one noise type."""
    cfg = noise_config("duque", NoiseSpec.single(noise_type, args.variance), arch.n_layers)
    extra = {"add_unc": ("gram", "triangular n_out x n_2^2/2 per input"),
             "mul_unc": ("jacobian", "forming G_1, n_out x n_2 x n_1 per input")}.get(noise_type)

    def floor():
        fl = floors(arch, P, X, args.repeats)
        more = f" + {extra[1]} {fl[extra[0]] * 1e3:.1f} ms" if extra else " (vector products only)"
        t_extra = fl[extra[0]] if extra else 0.0
        return (fl["forward"] + t_extra, f"forward {fl['forward'] * 1e3:.1f} ms" + more,
                fl["clean"] + t_extra, f"clean pass {fl['clean'] * 1e3:.1f} ms" + more)

    r = paired_rounds(lambda: output_variance_contributions(arch, P, X, cfg, covariance=False),
                      lambda: numpy_monte_carlo(arch, P, X, cfg, args.trials, rng), floor, args)
    mean, contrib, _, _ = r.pop("result")
    Y = r.pop("Y")
    var = contrib.sum((0, 1))
    var_mc, mean_mc = Y.var(0, ddof=1), Y.mean(0)
    return {"method": "first order", "type": noise_type, **r, "err": median_rel(var, var_mc),
            "err_snr": median_rel(np.abs(mean) / np.sqrt(var), np.abs(mean_mc) / np.sqrt(var_mc)),
            "target": FIRST_ORDER_TARGET}


def weight_stats_row(arch, P, X, noise_type, args, rng) -> dict:
    """Time Eqs. 14-15 (statistics apart) and compare them with Monte-Carlo, one noise type."""
    density = "exp_quartic"
    try:
        t_stats, stats = best_time(lambda: network_statistics(arch, P, X, density), 1)
    except ValueError:  # Eq. 29 fails on heavy-tailed states: Semenova's normal p* instead
        density = "normal"
        t_stats, stats = best_time(lambda: network_statistics(arch, P, X, density), 1)
    D = {INTENSITY[noise_type]: args.variance / 2}  # Semenova's D is half the variance

    def per_input():
        y, _ = forward(arch, P, X)  # the clean outputs, where Eq. 5's curve is read
        return y, variances_from_statistics(stats, **D)["output_variance"](y)

    def floor():
        fl = floors(arch, P, X, args.repeats)
        return (fl["forward"], f"forward {fl['forward'] * 1e3:.1f} ms",
                fl["clean"], f"clean pass {fl['clean'] * 1e3:.1f} ms")

    cfg = noise_config("semenova", NoiseSpec.single(noise_type, args.variance), arch.n_layers)
    r = paired_rounds(per_input, lambda: numpy_monte_carlo(arch, P, X, cfg, args.trials, rng),
                      floor, args)
    y, var = r.pop("result")
    Y = r.pop("Y")
    var_mc, mean_mc = Y.var(0, ddof=1), Y.mean(0)
    return {"method": "weight stats", "type": noise_type, **r, "err": median_rel(var, var_mc),
            "err_snr": median_rel(np.abs(y) / np.sqrt(var), np.abs(mean_mc) / np.sqrt(var_mc)),
            "target": WEIGHT_STATS_TARGET, "t_stats": t_stats, "density": density}


def verdict(r) -> str:
    ratio, bound, same = r["ratio"], r["bound"], r["bound_same"]
    parts = []
    if ratio >= r["target"]:
        parts.append("speed met")
    elif bound < r["target"]:
        parts.append(f"speed NOT met: floor bounds it at {bound:.0f}x < {r['target']:.0f}x")
    elif same < r["target"]:
        parts.append(f"speed NOT met: the same-bits floor bounds it at {same:.0f}x < "
                     f"{r['target']:.0f}x (refnet at {100 * ratio / same:.0f} % of it)")
    else:
        parts.append(f"speed NOT met ({ratio:.0f}x; floor allows {bound:.0f}x, the same-bits "
                     f"floor {same:.0f}x)")
    if r["err"] <= ERROR_TARGET:
        parts.append("error met")
    elif r["method"] == "weight stats":
        parts.append("error NOT met: Eq. 14 is mean-field (one S_n per layer)")
    else:
        parts.append("error NOT met: first order does not apply at this variance")
    return "; ".join(parts)


def warm_up(arch, P, X, args) -> None:
    """One small untimed Monte-Carlo run per noise type and placement (8 inputs, 2 trials,
    its own generator, so the timed runs' draws do not change): the process's first run loads
    compiled kernels (measured: 1.65 s against 0.39 s for the next, 1,000 inputs x 20 trials),
    which went into the first row's first round."""
    for t in args.noise_types:
        for placement in ("duque", "semenova"):
            cfg = noise_config(placement, NoiseSpec.single(t, args.variance), arch.n_layers)
            monte_carlo_outputs(arch, P, X[:8], cfg, 2, np.random.default_rng(0))


def run_network(name, arch, P, X, args, rng) -> list[dict]:
    warm_up(arch, P, X, args)
    rows = []
    for t in args.noise_types:
        rows.append(first_order_row(arch, P, X, t, args, rng))
        if not args.no_weight_stats:
            rows.append(weight_stats_row(arch, P, X, t, args, rng))
    print(f"\n== {name}: {len(X)} inputs, variance {args.variance:g}, K = {args.trials}")
    print(f"{'method':<13}{'noise':<9}{'time':>9}{'MC':>9}{'ratio':>8}{'bound':>8}"
          f"{'same':>8}{'var err':>9}{'SNR err':>9}  verdict")
    for r in rows:
        print(f"{r['method']:<13}{r['type']:<9}{r['t'] * 1e3:>7.1f}ms{r['t_mc']:>8.2f}s"
              f"{r['ratio']:>7.0f}x{r['bound']:>7.0f}x{r['bound_same']:>7.0f}x"
              f"{100 * r['err']:>8.1f}%{100 * r['err_snr']:>8.1f}%  {verdict(r)}")
    print("ratio and bound: the median over rounds of each round's Monte-Carlo time over its "
          "own method and floor times (times shown: the fastest); per round:")
    for r in rows:
        print(f"  {r['method']}, {r['type']}: "
              + ", ".join(f"{x:.0f}x" for x in r["ratios"]))
    print("bounds (MC time / floor; the floor is the bare BLAS time of the products the method "
          "cannot avoid; fastest times):")
    for r in rows:
        print(f"  {r['method']}, {r['type']}: {r['t_mc']:.2f} s / ({r['how']}) = "
              f"{r['t_mc']:.2f} s / {r['floor'] * 1e3:.1f} ms = {r['t_mc'] / r['floor']:.0f}x")
    print("same-bits bounds (MC time / the same-bits floor: the clean pass as refnet's bits pin "
          "it, fixed-block products, bias additions and refnet's activations, plus the products "
          "above; fastest times):")
    for r in rows:
        print(f"  {r['method']}, {r['type']}: {r['t_mc']:.2f} s / ({r['how_same']}) = "
              f"{r['t_mc']:.2f} s / {r['same'] * 1e3:.1f} ms = {r['t_mc'] / r['same']:.0f}x; "
              f"the method {r['t'] * 1e3:.1f} ms = {r['t'] / r['same']:.2f}x the floor")
    for r in rows:
        if "t_stats" in r:
            print(f"  weight stats, {r['type']}: statistics once ({r['density']} p*) "
                  f"{r['t_stats'] * 1e3:.0f} ms; with them the ratio is "
                  f"{r['t_mc'] / (r['t'] + r['t_stats']):.0f}x")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="runs/bench-nets",
                    help="folder of the trained networks (trained there on first use)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--model", help="a refnet model file instead of the two trained nets")
    ap.add_argument("--inputs", help="with --model: an .npz whose X holds the inputs")
    ap.add_argument("--n-inputs", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--variance", type=float, default=1e-3)
    ap.add_argument("--noise-types", nargs="+", default=list(NOISE_TYPES), choices=NOISE_TYPES)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each analytic method")
    ap.add_argument("--mc-rounds", type=int, default=2,
                    help="rounds per row, each one Monte-Carlo run timed right after the method")
    ap.add_argument("--no-weight-stats", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="100 inputs")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n = 100 if args.quick else args.n_inputs
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; "
          f"seed {args.seed}; first order: Duque placement; weight stats: Semenova placement")
    if args.model:
        from refnet.io import load_model

        arch, P, _ = load_model(args.model)
        with np.load(args.inputs, allow_pickle=False) as d:
            X = d["X"][:n].reshape(n, -1).astype(P.dtype)
        run_network(args.model, arch, P, X, args, rng)
        return 0
    import _nets

    X, _ = _nets.test_inputs(n)
    for sizes in _nets.SIZES:
        arch, P, meta = _nets.trained_net(sizes, args.cache, epochs=args.epochs, seed=args.seed)
        acc = meta.get("benchmark_net", {}).get("test_accuracy")
        name = (f"{'-'.join(map(str, sizes))} trained {args.epochs} epochs on MNIST"
                + ("" if acc is None else f" (clean test accuracy {acc:.4f})")
                + ", first MNIST test images")
        run_network(name, arch, P, X, args, rng)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
