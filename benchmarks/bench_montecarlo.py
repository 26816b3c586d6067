"""Noisy samples per second: refnet's Monte-Carlo engine vs straightforward NumPy and PyTorch.

    python benchmarks/bench_montecarlo.py [--quick] [--seed 0]

Network 784-300-300-10 (sigmoid hidden layers, linear output), noise after the activation of
both hidden layers (the "duque" placement), one noise type at variance 0.1: uncorrelated
additive (add_unc) and correlated additive (add_cor), in float64 and float32.

* refnet: :func:`refnet.montecarlo.accuracy_sweep` over the same inputs repeated (its use case:
  many noisy passes, first layer computed once per input and reused); the timing includes the
  once-per-input work and the clean-accuracy pass.
* NumPy and PyTorch: the straightforward full forward per pass, noise from
  ``Generator.standard_normal`` / ``torch.randn``.
* limit: this run's measured GEMM rate and normal-draw rate applied to the minimum work per
  noisy sample (first layer amortised): add_unc needs the layer-1 noise mixed by W2
  (2 n1 n2 flops, dense), the output layer on the noisy layer-2 output (2 n2 n3), and
  n1 + n3 normals (the layer-2 noise enters a 10-wide layer, so 10 draws suffice); add_cor
  needs 2 n2 n3 flops and 2 normals. A second limit adds the measured sigmoid rate for the
  n2 activations each sample must evaluate.

Every ratio printed comes from numbers measured in the same run. The machine may be shared,
so absolute numbers are noisy; re-run on a quiet machine for the README table.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np
from scipy.special import expit

from refnet.montecarlo.kernels import fill_normal
from refnet.model import init_params, mlp
from refnet.montecarlo import accuracy_sweep, neuron_statistics, single_threaded_blas
from refnet.noise import NoiseConfig, NoiseSpec

SIZES = (784, 300, 300, 10)
VARIANCE = 0.1


def _best_times(fns: dict, repeats: int) -> dict:
    """Smallest wall time and smallest process CPU time of each function over ``repeats``
    rounds (after one warm-up round); the functions take turns, so a busy spell on a shared
    machine hits all of them alike. CPU time (all threads of this process) is the
    contention-robust measure: other processes' load inflates wall time, not CPU time."""
    best = {k: [float("inf"), float("inf")] for k in fns}
    for r in range(repeats + 1):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if r:
                best[k][0] = min(best[k][0], time.perf_counter() - t0)
                best[k][1] = min(best[k][1], time.process_time() - c0)
    return best


def _best_time(fn, repeats: int) -> float:
    return _best_times({"f": fn}, repeats)["f"][0]


def machine_rates(dtype, rows: int, repeats: int, cores: int) -> dict:
    """Machine rates measured now, for all ``cores``: GEMM flops per second (the better of
    multithreaded BLAS and ``cores`` x one BLAS thread, on a (rows, 300) x (300, 300) product),
    and ``cores`` x the one-thread rates of normal draws (the faster of NumPy's and numba's
    Generator, same algorithm and stream) and of sigmoids (``scipy.special.expit``). Draws and
    sigmoids of different chunks are independent, so they scale with cores."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((rows, SIZES[1])).astype(dtype)
    B = rng.standard_normal((SIZES[1], SIZES[2])).astype(dtype)
    t_multi = _best_time(lambda: A @ B, repeats)
    with single_threaded_blas():
        t_one = _best_time(lambda: A @ B, repeats)
    buf = np.empty(rows * SIZES[1], dtype=dtype)
    t_draw = min(_best_time(lambda: rng.standard_normal(dtype=dtype, out=buf), repeats),
                 _best_time(lambda: fill_normal(rng, buf), repeats))
    t_sig = _best_time(lambda: expit(A), repeats)
    flops = 2 * rows * SIZES[1] * SIZES[2]
    return {"gemm_flops": max(flops / t_multi, cores * flops / t_one),
            "draws": cores * buf.size / t_draw, "sigmoids": cores * A.size / t_sig}


def minimum_work(noise_type: str) -> tuple[float, float]:
    """(flops, normal draws) per noisy sample, first layer amortised (see module docstring)."""
    n0, n1, n2, n3 = SIZES
    if noise_type == "add_unc":
        return 2 * n1 * n2 + 2 * n2 * n3 + n3 * n3, n1 + n3
    return 2 * n2 * n3 + 2 * n2, 2


def numpy_straightforward(params, X, noise_type, reps, batch, dtype, seed):
    W, b = [w.astype(dtype) for w in params.W], [v.astype(dtype) for v in params.b]
    X = X.astype(dtype)
    rng, s = np.random.default_rng(seed), np.sqrt(VARIANCE)

    def noise(a):
        shape = a.shape if noise_type == "add_unc" else (a.shape[0], 1)
        return a + s * rng.standard_normal(shape, dtype=dtype)

    def run():
        for _ in range(reps):
            for i in range(0, len(X), batch):
                a = noise(expit(X[i:i + batch] @ W[0].T + b[0]))
                a = noise(expit(a @ W[1].T + b[1]))
                np.argmax(a @ W[2].T + b[2], axis=1)
    return run


def torch_straightforward(torch, params, X, noise_type, reps, batch, dtype, seed):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    W = [torch.from_numpy(w.astype(dtype)) for w in params.W]
    b = [torch.from_numpy(v.astype(dtype)) for v in params.b]
    Xt = torch.from_numpy(X.astype(dtype))
    gen, s = torch.Generator().manual_seed(seed), float(np.sqrt(VARIANCE))

    def noise(a):
        shape = a.shape if noise_type == "add_unc" else (a.shape[0], 1)
        return a + s * torch.randn(shape, generator=gen, dtype=tdt)

    def run():
        with torch.no_grad():
            for _ in range(reps):
                for i in range(0, len(Xt), batch):
                    a = noise(torch.sigmoid(Xt[i:i + batch] @ W[0].T + b[0]))
                    a = noise(torch.sigmoid(a @ W[1].T + b[1]))
                    torch.argmax(a @ W[2].T + b[2], dim=1)
    return run


def peak_memory_vs_K(arch, params, Ks=(100, 1000), T=10) -> list[tuple[int, int]]:
    X = np.random.default_rng(3).standard_normal((T, SIZES[0]))
    cfg = NoiseConfig(NoiseSpec(add_unc=VARIANCE), (1, 2), "post")
    neuron_statistics(arch, params, X, cfg, K=Ks[0], rng=0)      # compile outside the trace
    out = []
    for K in Ks:
        tracemalloc.start()
        neuron_statistics(arch, params, X, cfg, K=K, rng=0)
        out.append((K, tracemalloc.get_traced_memory()[1]))
        tracemalloc.stop()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, under about a minute")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                    help="refnet threads over whole batches (accuracy_sweep's workers; "
                         "default: the available cores, as torch uses them)")
    ap.add_argument("--backend", default="numba", help="refnet kernels: numba, numba-parallel")
    args = ap.parse_args(argv)
    # many passes over few inputs, as in a sweep (1200 passes): refnet's once-per-input work
    # (first layer, clean accuracy) is timed too, so fewer passes would understate it
    n_inputs, reps, repeats = (500, 20, 2) if args.quick else (2000, 50, 3)
    batch = 1000
    try:
        import torch
    except ImportError:
        torch = None
        print("torch not importable: the PyTorch column is skipped", file=sys.stderr)
    arch = mlp(SIZES, "sigmoid", "identity")
    params = init_params(arch, "torch", rng=args.seed)
    X = np.random.default_rng(args.seed + 1).standard_normal((n_inputs, SIZES[0]))
    y = np.zeros(n_inputs, dtype=np.int64)
    samples = n_inputs * reps
    cores = len(os.sched_getaffinity(0))
    import numba
    print(f"784-300-300-10, noise variance {VARIANCE} after both hidden activations; "
          f"{samples} noisy samples per timing ({n_inputs} inputs x {reps} passes), "
          f"best of {repeats}; refnet backend {args.backend}, workers {args.workers}, "
          f"numba threads {numba.get_num_threads()}"
          + (f", torch threads {torch.get_num_threads()}" if torch else ""))
    header = (f"{'dtype':8}{'noise':9}{'refnet/s':>11}{'numpy/s':>11}{'torch/s':>11}"
              f"{'limit/s':>11}{'limit+act/s':>12}{'x numpy':>9}{'x torch':>9}{'% limit':>9}"
              f"{'% lim+act':>10}")
    lines, cpu_lines = [], []
    for dtype in (np.float64, np.float32):
        rates = machine_rates(dtype, batch, repeats, cores)
        print(f"{np.dtype(dtype).name}, {cores} cores: "
              f"GEMM {rates['gemm_flops'] / 1e9:.1f} GFLOP/s, "
              f"{rates['draws'] / 1e6:.1f} M normal draws/s, {rates['sigmoids'] / 1e6:.1f} M "
              "sigmoids/s")
        for t in ("add_unc", "add_cor"):
            fns = {"refnet": lambda: accuracy_sweep(
                       arch, params, X, y, "duque", noise_types=(t,), variances=[VARIANCE],
                       repetitions=reps, batch_size=batch, rng=args.seed, backend=args.backend,
                       dtype=dtype, workers=args.workers),
                   "numpy": numpy_straightforward(params, X, t, reps, batch, dtype, args.seed)}
            if torch:
                fns["torch"] = torch_straightforward(torch, params, X, t, reps, batch, dtype,
                                                     args.seed)
            best = _best_times(fns, repeats)
            flops, draws = minimum_work(t)
            t_lim = flops / rates["gemm_flops"] + draws / rates["draws"]
            lim, lim_act = 1 / t_lim, 1 / (t_lim + SIZES[2] / rates["sigmoids"])
            for w, rows in ((0, lines), (1, cpu_lines)):
                r, n = samples / best["refnet"][w], samples / best["numpy"][w]
                tt = samples / best["torch"][w] if torch else float("nan")
                rows.append(f"{np.dtype(dtype).name:8}{t:9}{r:11,.0f}{n:11,.0f}{tt:11,.0f}"
                            + (f"{lim:11,.0f}{lim_act:12,.0f}" if w == 0 else "")
                            + f"{r / n:9.2f}{r / tt:9.2f}"
                            + (f"{100 * r / lim:9.1f}{100 * r / lim_act:10.1f}" if w == 0 else ""))
    print("noisy samples per second of wall time; limits from this run's measured rates")
    print(header)
    print("\n".join(lines))
    print("noisy samples per CPU-second (process time, all threads; robust to other load)")
    print(f"{'dtype':8}{'noise':9}{'refnet':>11}{'numpy':>11}{'torch':>11}{'x numpy':>9}"
          f"{'x torch':>9}")
    print("\n".join(cpu_lines))
    peaks = peak_memory_vs_K(arch, params)
    print("neuron_statistics peak traced memory (T=10 inputs, all layers): "
          + ", ".join(f"K={K}: {m / 1e6:.2f} MB" for K, m in peaks)
          + f"; ratio {peaks[-1][1] / peaks[0][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
