"""Time one training epoch of 784-300-300-10 (batch 128, Adagrad lr 0.01): refnet vs PyTorch.

Variants (issue #15, item 1), each in float32 and float64:

* ``standard``: plain cross-entropy training (also against a textbook NumPy loop);
* ``noise-aware``: uncorrelated additive noise of variance 1 after both hidden sigmoids
  (Duque 2024, Sec. 2), fresh per batch, in refnet and in PyTorch (``a + randn_like(a)``);
* ``eq4``: the row-sum penalty (Duque 2024, Eq. 4, p. 3), lambda 6e-3 on layers 2 and 3;
* ``eq7``: the authors' code version of Eq. 7 (``addunc_sigm_mnist``: derivative of the second
  hidden sigmoid summed over the batch, plus weight norms of layers 2 and 3).

PyTorch computes the same losses with autograd (nn.Linear, torch.optim.Adagrad). All train
on the same synthetic data (MNIST-shaped: timing does not depend on pixel values) from the
same initial weights. In each round refnet's and PyTorch's epochs run back to back, the
order alternating between rounds; the ratio is the median of the rounds' ratios, so that a
change of machine speed between rounds (measured on the 2-core machine: two speeds about 2x
apart, switching mid-run) cancels; each time shown is the median over ``--repeats`` rounds
after a warm-up. ``GEMM floor``: the same epoch's eight matrix products alone (three forward, three
weight gradients, two input gradients), timed in the same run as refnet computes them
(fixed row blocks, one BLAS thread each: :mod:`refnet._gemm`): refnet cannot go below it.
The same products are timed with PyTorch (its BLAS): the two floors' GFLOP/s compare the
libraries. Each row ends with the bound (floor / PyTorch's epoch: the ratio refnet would reach
if nothing but its products took time), ``pinned`` (the element-wise work the results' bits
are pinned to, alone: :func:`pinned_epoch`) and ``same-bits`` = (floor + pinned) / PyTorch's
epoch, the best ratio that still gives refnet's numbers, then a verdict: met, missed because
the GEMM floor alone is above the target, missed because the same-bits work is, or missed by
refnet's own overhead (with how far over the same-bits bound, and how far is allowed).
Every timing starts after a quarter-second pause (:data:`PAUSE`): OpenBLAS's threads spin for
about 0.1 s after a call, and the GEMM floor, timed right after the NumPy epoch, lost 0.05-0.12
s of 0.8 s to them. ``--blas mkl`` times refnet's products on MKL (:mod:`refnet._gemm`,
opt-in). Thread counts are printed; ``--draw-ahead`` times refnet drawing its noise on a helper
thread.

    python benchmarks/bench_train.py [--repeats 3] [--samples 48000] [--threads N]
"""
from __future__ import annotations

import argparse
import operator
import os
import platform
import statistics
import time

import numpy as np

import refnet as rn
from refnet import _gemm, _numba
from refnet._blas import blas_thread_counts, fixed_blas_threads, set_blas_threads
from refnet._gemm import matmul
from refnet.noise import NoiseSpec, noise_config
from refnet.regularizers import SaturationPenalty, regularizer_preset
from refnet.train import TrainConfig, train

VARIANTS = ("standard", "noise-aware", "eq4", "eq7")
EQ4_LAMBDA = 6e-3   # the authors' final general lambda (reference-code-facts.md)


def refnet_config(variant: str) -> TrainConfig:
    noise = regs = None
    if variant == "noise-aware":
        noise = noise_config("duque", NoiseSpec(add_unc=1.0), 3)
    elif variant == "eq4":
        regs = (regularizer_preset("eq4", EQ4_LAMBDA),)
    elif variant == "eq7":
        regs = (regularizer_preset("addunc_sigm_mnist"),)
    return TrainConfig(epochs=1, batch_size=128, optimizer="adagrad", lr=0.01, shuffle=False,
                       noise=noise, regularizers=regs or ())


def refnet_epoch(arch, params, X, y, config, draw_ahead=False):
    t0 = time.perf_counter()
    train(arch, params, X, y, config, draw_ahead=draw_ahead)
    return time.perf_counter() - t0


def numpy_epoch(params, X, y, batch):
    """A straightforward NumPy epoch: forward, softmax cross-entropy, backward, Adagrad."""
    from scipy.special import expit

    W = [w.copy() for w in params.W]
    b = [v.copy() for v in params.b]
    G = [np.zeros_like(a) for a in W + b]
    t0 = time.perf_counter()
    for i in range(0, len(X), batch):
        x, t = X[i:i + batch], y[i:i + batch]
        a1 = expit(x @ W[0].T + b[0])
        a2 = expit(a1 @ W[1].T + b[1])
        z3 = a2 @ W[2].T + b[2]
        p = np.exp(z3 - z3.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(t)), t] -= 1
        d3 = p / len(t)
        d2 = (d3 @ W[2]) * a2 * (1 - a2)
        d1 = (d2 @ W[1]) * a1 * (1 - a1)
        grads = [d1.T @ x, d2.T @ a1, d3.T @ a2, d1.sum(0), d2.sum(0), d3.sum(0)]
        for k, (prm, g) in enumerate(zip(W + b, grads)):
            G[k] += g * g
            prm -= 0.01 * g / (np.sqrt(G[k]) + 1e-10)
    return time.perf_counter() - t0


def _epoch_products(W, X, batch, mm=operator.matmul):
    """Seconds for only the eight matrix products of each step, at the step's shapes and
    layouts (``W`` and ``X``: NumPy arrays or torch tensors; ``mm`` the product, by default
    their ``@``, which runs their BLAS)."""
    t0 = time.perf_counter()
    for i in range(0, len(X), batch):
        x = X[i:i + batch]
        a1 = mm(x, W[0].T)
        a2 = mm(a1, W[1].T)
        z3 = mm(a2, W[2].T)
        d2 = mm(z3, W[2])
        d1 = mm(d2, W[1])
        _ = (mm(d1.T, x), mm(d2.T, a1), mm(z3.T, a2))
    return time.perf_counter() - t0


def gemm_floor_epoch(params, X, batch):
    """The epoch's matrix products alone as refnet computes them (:func:`refnet._gemm.matmul`:
    fixed row blocks, each on one BLAS thread, on numba's threads)."""
    with fixed_blas_threads():
        return _epoch_products(params.W, X, batch, matmul)


def pinned_epoch(arch, params, X, config, batch):
    """Seconds for the element-wise work whose bits refnet's results are pinned to, alone, at
    one epoch's count of steps: per step the two hidden sigmoids (:func:`refnet.activations.sigmoid`,
    libm's ``exp`` per value on a machine without AVX-512, NumPy's bits), their backward factors
    (:func:`refnet._model_kernels.times_sigmoid_prime`), the Adagrad update of all six arrays
    (one square root and one division per parameter, PyTorch's order), and for the noise-aware
    variant the normal draws of both hidden layers (NumPy's stream), for Eq. 7 the sigmoid's
    first and second derivative at layer 2. Each on the step's shapes, inside
    ``fixed_blas_threads`` as in training; the inputs are one real batch's pre-activations.
    Added to the GEMM floor it is the fastest epoch that gives refnet's bits (``same-bits``)."""
    from refnet._model_kernels import times_sigmoid_prime
    from refnet._optim_kernels import adagrad_update_inplace
    from refnet.activations import sigmoid, sigmoid_prime_and_second
    from refnet.model import forward
    from refnet.noise import draw_network_noise

    opt = config.make_optimizer()    # Adagrad: its fused kernel, array by array
    arrays = [np.array(a, order="C") for a in params.arrays()]
    sums = [np.zeros_like(a) for a in arrays]
    grads = [np.full_like(a, 1e-3) for a in arrays]
    rng = np.random.default_rng(0)
    noisy = config.noise is not None and not config.noise.is_zero
    eq7 = any(isinstance(r, SaturationPenalty) for r in config.regularizers)
    with fixed_blas_threads():
        _, cache = forward(arch, params, X[:batch])
        Z1, Z2 = cache.Z[0], cache.Z[1]
        dA = np.full_like(Z1, 1e-3)
        t0 = time.perf_counter()
        for i in range(0, len(X), batch):
            n = min(batch, len(X) - i)
            z1, z2, d = Z1[:n], Z2[:n], dA[:n]
            f1, f2 = sigmoid(z1), sigmoid(z2)
            times_sigmoid_prime(d, f2)
            times_sigmoid_prime(d, f1)
            if noisy:
                draw_network_noise(config.noise, arch.sizes, n, rng, X.dtype)
            if eq7:
                sigmoid_prime_and_second(z2)
            for p, g, s in zip(arrays, grads, sums):
                adagrad_update_inplace(p, g, s, opt.lr, opt.eps)
        return time.perf_counter() - t0


def gemm_flops(n_samples, sizes=(784, 300, 300, 10)):
    """Floating-point operations of one epoch's matrix products (2 per multiply-add): per
    layer the forward product and the weight gradient (``2 n n_in n_out`` each), and the
    input gradient of every layer but the first."""
    fwd = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    back_in = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    return 2 * n_samples * (2 * fwd + back_in)


def torch_gemm_floor_epoch(torch, lin, X, batch):
    """:func:`gemm_floor_epoch` with PyTorch's products (its BLAS, its threads)."""
    W = [m.weight.detach() for m in lin]
    with torch.no_grad():
        return _epoch_products(W, X, batch)


def torch_model(torch, params, dtype):
    lin = [torch.nn.Linear(W.shape[1], W.shape[0]).to(dtype) for W in params.W]
    with torch.no_grad():
        for m, W, b in zip(lin, params.W, params.b):
            m.weight.copy_(torch.from_numpy(np.asarray(W)))
            m.bias.copy_(torch.from_numpy(np.asarray(b)))
    return lin


def torch_epoch(torch, lin, X, y, batch, variant):
    """The same loss as refnet's variant, by autograd."""
    opt = torch.optim.Adagrad([p for m in lin for p in m.parameters()], lr=0.01)
    ce = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for i in range(0, len(X), batch):
        opt.zero_grad(set_to_none=True)
        a = X[i:i + batch]
        z2 = None
        for k, m in enumerate(lin):
            z = m(a)
            if k == len(lin) - 1:
                break
            if k == 1:
                z2 = z
            a = torch.sigmoid(z)
            if variant == "noise-aware":
                a = a + torch.randn(a.shape, generator=gen, dtype=a.dtype)
        loss = ce(z, y[i:i + batch])
        if variant == "eq4":
            loss = loss + EQ4_LAMBDA * sum(m.weight.sum(1).abs().sum() for m in lin[1:])
        elif variant == "eq7":
            lam, (c0, c1, c2) = 6e-3, (0.01, 0.015, 3.0)
            s = torch.sigmoid(z2)
            loss = loss + lam * (c0 * (s * (1 - s)).sum() + c1 * (lin[1].weight ** 2).sum()
                                 + c2 * (lin[2].weight ** 2).sum())
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", type=int, default=48000)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS, numba and PyTorch threads (default: each library's own "
                         "default); refnet's training products run on numba's threads, one "
                         "BLAS thread each; on a loaded machine 1 gives steadier ratios")
    ap.add_argument("--blas", default=None, choices=["openblas", "mkl"],
                    help="the BLAS of refnet's fixed-block products (default: REFNET_BLAS, "
                         "else openblas; mkl needs pip install --no-deps mkl)")
    ap.add_argument("--draw-ahead", action="store_true",
                    help="refnet draws each batch's noise on a helper thread (train's "
                         "draw_ahead=True) instead of in line (the default)")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    if args.blas is not None:   # after torch: MKL loaded first left torch's products on one thread
        _gemm._set_provider(args.blas, "--blas")
    if args.threads is not None:
        import scipy.special  # noqa: F401  load SciPy's OpenBLAS too, so both are set

        set_blas_threads(args.threads)
        _numba.set_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X64 = rng.normal(size=(args.samples, 784))
    y = rng.integers(0, 10, args.samples)
    arch = rn.mlp((784, 300, 300, 10))
    p64 = rn.init_params(arch, rng=0)
    flops = gemm_flops(args.samples)
    print(f"one epoch, {args.samples} samples, 784-300-300-10, batch 128, Adagrad; "
          f"median of {args.repeats} interleaved rounds after a warm-up; "
          f"{flops / 1e9:.2f} GFLOP of matrix products per epoch")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'absent'}, cores {os.cpu_count()}, "
          f"OpenBLAS threads {blas_thread_counts() or 'not controlled'}, "
          f"numba threads {_numba.threads()}, refnet BLAS {_gemm.blas_provider()}, "
          f"torch threads {torch.get_num_threads() if torch else '-'}, "
          f"refnet draw-ahead {'on' if args.draw_ahead else 'off'}")
    print(f"{'dtype':8} {'variant':12} {'refnet s':>9} {'torch s':>8} {'numpy s':>8} "
          f"{'floor s':>8} {'GF/s':>5} {'tfloor s':>8} {'GF/s':>5} {'refnet/torch':>12} "
          f"{'target':>6} {'bound':>6} {'pinned s':>8} {'same-bits':>9}  verdict")
    rows = []
    for dtype in (np.float32, np.float64):
        p, X = p64.astype(dtype), X64.astype(dtype)
        for variant in args.variants:
            config = refnet_config(variant)
            ahead = args.draw_ahead
            refnet_epoch(arch, p, X[:1024], y[:1024], config, ahead)  # warm-up (numba)
            t = {"refnet": [], "torch": [], "numpy": [], "floor": [], "tfloor": [],
                 "pinned": []}
            if torch is not None:
                tdt = torch.float32 if dtype == np.float32 else torch.float64
                Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
                torch_epoch(torch, torch_model(torch, p, tdt), Xt[:1024], yt[:1024], 128,
                            variant)
            for r in range(args.repeats):
                # refnet and PyTorch back to back, the order alternating between rounds, so
                # that each round's ratio is taken at one machine speed; every timing starts
                # after a pause, so that the previous one's idle BLAS threads have stopped
                # spinning (OpenBLAS's spin for about 0.1 s after a call: measured, refnet's
                # floor took 0.80-0.87 s right after the NumPy epoch, 0.73-0.79 s after a pause)
                first_refnet = r % 2 == 0
                if first_refnet:
                    t["refnet"].append(_paused(refnet_epoch, arch, p, X, y, config, ahead))
                if torch is not None:
                    lin = torch_model(torch, p, tdt)
                    t["torch"].append(_paused(torch_epoch, torch, lin, Xt, yt, 128, variant))
                if not first_refnet:
                    t["refnet"].append(_paused(refnet_epoch, arch, p, X, y, config, ahead))
                if torch is not None:
                    t["tfloor"].append(_paused(torch_gemm_floor_epoch, torch, lin, Xt, 128))
                if variant == "standard":
                    t["numpy"].append(_paused(numpy_epoch, p, X, y, 128))
                t["floor"].append(_paused(gemm_floor_epoch, p, X, 128))
                t["pinned"].append(_paused(pinned_epoch, arch, p, X, config, 128))
            m = {k: statistics.median(v) if v else float("nan") for k, v in t.items()}
            target = 1.0 if dtype == np.float32 else 0.8   # issue #15: x PyTorch
            # medians of the per-round ratios: a speed change between rounds cancels
            ratio = _median_ratio(t["refnet"], t["torch"])
            bound = _median_ratio(t["floor"], t["torch"])  # refnet/torch with only the GEMMs
            # ... and with the GEMMs and the element-wise work the bits are pinned to
            same = _median_ratio([f + q for f, q in zip(t["floor"], t["pinned"])], t["torch"])
            verdict = _verdict(ratio, target, bound, same)
            rows.append((np.dtype(dtype).name, variant, m, ratio, target, bound, same))
            print(f"{np.dtype(dtype).name:8} {variant:12} {m['refnet']:9.3f} {m['torch']:8.3f} "
                  f"{m['numpy']:8.3f} {m['floor']:8.3f} {flops / m['floor'] / 1e9:5.1f} "
                  f"{m['tfloor']:8.3f} {flops / m['tfloor'] / 1e9:5.1f} {ratio:12.2f} "
                  f"{target:6.2f} {bound:6.2f} {m['pinned']:8.3f} {same:9.2f}  {verdict}",
                  flush=True)
    print("refnet/torch: the median over rounds of each round's ratio of epoch times (the "
          "two epochs of a round run back to back; issue #15 targets: <= 1.00 float32, <= 0.80 "
          "float64). floor / tfloor: the epoch's matrix products alone as refnet computes them "
          "(fixed row blocks, one BLAS thread each, on numba's threads) / on PyTorch's BLAS, at "
          "the threads above, with GF/s = GFLOP / floor. bound = floor / torch, per round, the "
          "median: the refnet/torch that refnet would reach if everything but its matrix products took no "
          "time; a target below the bound cannot be met with these products. pinned: the "
          "element-wise work the results' bits are pinned to (hidden sigmoids and their "
          "backward factors, the Adagrad update, the noise draws, Eq. 7's derivatives) alone, "
          "at the epoch's steps; same-bits = (floor + pinned) / torch, per round, the median: "
          "the best refnet/torch that gives refnet's numbers.")
    return rows


#: Seconds of idle time before each timing (module docstring).
PAUSE = 0.25


def _paused(timed, *args):
    """``timed(*args)`` (which returns its own seconds) after :data:`PAUSE` seconds idle."""
    time.sleep(PAUSE)
    return timed(*args)


def _median_ratio(a, b) -> float:
    """Median over rounds of ``a[i] / b[i]`` (nan without ``b``)."""
    return statistics.median(x / y for x, y in zip(a, b)) if b else float("nan")


def _verdict(ratio, target, bound, same) -> str:
    """In ratios to PyTorch's epoch (the per-round medians), so that the verdict does not mix
    rounds taken at different machine speeds."""
    if ratio <= target:
        return "met"
    if bound > target:
        return f"not met, bound by the GEMMs: floor / torch {bound:.2f} > target {target:.2f}"
    if same > target:
        return (f"not met, bound by the same-bits work: (floor + pinned) / torch {same:.2f} > "
                f"target {target:.2f}")
    return (f"not met, by refnet's overhead: {ratio - same:.2f} x torch over the same-bits "
            f"bound, {target - same:.2f} x torch allowed")


if __name__ == "__main__":
    main()
