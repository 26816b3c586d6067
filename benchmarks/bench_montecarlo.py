"""Noisy samples per second: refnet's Monte-Carlo engine vs straightforward NumPy and PyTorch.

    python benchmarks/bench_montecarlo.py [--quick] [--seed 0]

Network 784-300-300-10 (sigmoid hidden layers, linear output), noise after the activation of
both hidden layers (the "duque" placement), one noise type at a time at variance 0.1: all four
(add_unc, add_cor, mul_unc, mul_cor), in float64 and float32.

* refnet: :func:`refnet.montecarlo.accuracy_sweep` over the same inputs repeated (its use case:
  many noisy passes, first layer computed once per input and reused); the timing includes the
  once-per-input work and the clean-accuracy pass.
* NumPy and PyTorch: the straightforward full forward per pass, noise from
  ``Generator.standard_normal`` / ``torch.randn``.
* smart PyTorch: the clean first layer computed once per input (timed) and reused by every
  pass, as refnet does; the rest as the straightforward PyTorch.
* aihwkit (IBM's analog toolkit, when importable): its CPU inference on the same network with
  the same additive uncorrelated noise (``forward.inp_noise`` of the analog layers 2 and 3,
  no other non-ideality, no noise management or bounds); add_unc only (its input noise is
  additive and per neuron), float32 only.
* limit: this run's measured GEMM rate and normal-draw rate applied to the minimum work per
  noisy sample (issue #15), each rate measured with every core busy at once
  (:func:`machine_rates`; ``%lim x1``: against the limit from one thread's rates times the
  cores, as the runs before 8 December 2026 took it, which assumes two cores do twice one
  core's work): the clean first layer once per input (1/passes of its flops and
  sigmoids per sample), and for all but mul_unc the clean layer-2 product once per input;
  add_unc: the layer-1 noise enters layer 2 as ``W2 xi ~ N(0, s^2 W2 W2^T)``, drawn as
  ``s L eps`` with the triangular ``L`` (n2 normals, n2^2 flops; the default path's dense
  ``xi @ W2.T`` is 2 n1 n2), the output layer 2 n2 n3, the layer-2 noise in the output's 10
  dimensions (n3 normals, n3^2 flops); add_cor / mul_cor: a rank-one update of the
  pre-activation (3 n2 flops), the output layer (2 n2 n3) and 2 normals; mul_unc: the dense
  layer-2 product of the noisy layer-1 output (2 n1 n2; each neuron scaled by its own noise,
  no low-rank form), the output layer and n1 + n2 normals.
  ``%lim+act`` adds the n2 sigmoids of layer 2 at the fastest measured sigmoid rate (SciPy's
  ``expit`` or PyTorch's ``sigmoid``, one thread per core), ``%own`` at the rate of refnet's
  own numba sigmoid kernel (scalar ``exp`` per element, the bits of every default result).
  ``%lim cpu``: refnet's samples per CPU-second against one core's share of the limit (the
  rates are per core times the cores): the same ratio, robust to other processes' load.
  Not in any limit: refnet's clean-accuracy pass (part of a sweep's result).
* same-bits bound (:func:`same_bits_bound`): what refnet could reach if it did nothing but
  the pieces its default results are pinned to (its BLAS products at their shapes, its own
  sigmoid, its normal draws), each timed alone in the run on one thread, times the cores,
  and (``all``) a chunk's pieces in a row on every core at once: how far refnet is from the
  speed its own numbers allow, where the limit asks for other numbers. Where the all-cores
  bound is below the rate the target asks for (``all %target`` < 100), the pinned pieces
  alone stop the target on this machine.
* verdict: on wall time, then (``cpu:``) on samples per CPU-second x cores; a row whose limit is set by flops and draws (their time exceeds that of refnet's
  own sigmoids) must reach 70 % of ``limit``; a sigmoid-bound row (correlated noise) must
  reach 1/1.5 of its own-sigmoid bound (``%own`` >= 66.7). A row that misses prints the bound
  that stops it, with its arithmetic. ``+tri``: add_unc with the opt-in ``triangular_draws``
  shortcut (the issue's triangular form; a different random stream, equal in distribution).

Every ratio printed comes from numbers measured in the same run, and every percentage from
one round: in each round refnet's sweep runs, then the machine rates and the same-bits pieces
are timed (:func:`_timed_rounds`); a row's percentages are those of its median round
(:func:`_median_round`), so that refnet and its bounds are measured at one machine speed (the
2-core machines switch between speeds about 2x apart; bounds timed once per dtype, minutes
before refnet, once put refnet at 122 % of its own-sigmoid bound). ``refnet/s`` and the peer
columns are best-of-rounds rates, ``round/s`` refnet's rate in the median round. The machine
may be shared, so absolute numbers are noisy; re-run on a quiet machine for the README table.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import expit

from refnet._gemm import lower_triangular_mix
from refnet.model import init_params, mlp
from refnet.montecarlo import (DEFAULT_SHORTCUTS, accuracy_sweep, neuron_statistics,
                               single_threaded_blas)
from refnet.montecarlo import kernels as K
from refnet.noise import NoiseConfig, NoiseSpec

SIZES = (784, 300, 300, 10)
VARIANCE = 0.1
TYPES = ("add_unc", "add_cor", "mul_unc", "mul_cor")
TARGET_FLOP, AIM_FLOP, TARGET_SIG = 0.70, 0.85, 1 / 1.5


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


#: Repeats of each piece of the bounds, timed once per round (each piece takes milliseconds).
PIECE_REPEATS = 3


def _timed_rounds(fns: dict, repeats: int, pieces) -> tuple[dict, list]:
    """:func:`_best_times` of ``fns``, and per round (after the warm-up) refnet's wall and CPU
    time with ``pieces()`` (the bounds' machine rates and pinned pieces) measured right after
    it, before the next function runs: a list of ``(wall, cpu, pieces())``. The machine switches between speeds about 2x
    apart (seen on the 2-core machines), so a bound measured minutes away from refnet's run
    can put refnet above its own bound; measured in the same round, both see one speed."""
    best = {k: [float("inf"), float("inf")] for k in fns}
    rounds = []
    for r in range(repeats + 1):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if r:
                best[k] = [min(best[k][0], wall), min(best[k][1], cpu)]
            if r and k == "refnet":  # its bounds right after it, before the peers run
                rounds.append((wall, cpu, pieces()))
    return best, rounds


def _median_round(rounds: list, samples: int, noise_type: str, reps: int):
    """``(rate, rate per CPU-second, (rates, pinned))`` of the round whose refnet rate, as a
    fraction of the limit its verdict uses (the own-sigmoid bound where sigmoids bound the
    row, else the flop-and-draw limit), is the median over the rounds (the lower middle one
    for an even count)."""
    def key(rnd):
        lim = limits(noise_type, rnd[2][0], reps)
        target = lim["limit_own"] if lim["t_own"] > lim["t_fd"] else lim["limit"]
        return samples / rnd[0] / target
    wall, cpu, pieces = sorted(rounds, key=key)[(len(rounds) - 1) // 2]
    return samples / wall, samples / cpu, pieces


def _best_time(fn, repeats: int) -> float:
    return _best_times({"f": fn}, repeats)["f"][0]


def _best_one_thread_time(fn, repeats: int) -> float:
    """Time of a one-thread function: the smaller of its wall time and its CPU time (equal on
    a quiet machine; on a loaded one, CPU time is not inflated by waiting for a core)."""
    return min(_best_times({"f": fn}, repeats)["f"])


_pools: dict = {}


def _all_cores_time(make, cores: int, repeats: int, calls: int = 10) -> float:
    """Wall time of one call of ``make(i)()`` while each of ``cores`` threads runs its own
    (``make(i)``: thread ``i``'s function, on arrays of its own), all started together: the
    best of ``repeats`` rounds of ``calls`` calls per thread, divided by ``calls``; each
    thread clocks its own calls and the span runs from the first start to the last end (the
    calling thread, woken with them, may run only after they have ended: timed there, spans
    came out too short). The threads live as long as the process, as refnet's worker threads
    do (threads made anew for each timing measured longer spans). The kernels timed release
    the GIL (NumPy's products, refnet's numba kernels). Two cores do not do twice one core's
    work: on the 2-core AVX-512 machine (8 December 2026) a chunk's pinned pieces took
    1.02-1.15x as long per thread with both cores busy as on one thread alone, and single
    pieces timed apart ran 1.1-1.97x faster on two threads than on one."""
    pool = _pools.get(cores)
    if pool is None:
        pool = _pools[cores] = ThreadPoolExecutor(cores, thread_name_prefix="bench-core")
    fns = [make(i) for i in range(cores)]
    best = float("inf")
    with single_threaded_blas():
        for r in range(repeats + 1):                     # round 0 warms up (and compiles)
            start = threading.Barrier(cores)

            def work(fn, start=start):
                start.wait()                             # one task per thread: all wait here
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                return t0, time.perf_counter()
            # each thread clocks itself: the caller, woken with them, may run after they end
            spans = [f.result() for f in [pool.submit(work, fn) for fn in fns]]
            if r:
                best = min(best, max(e for _, e in spans) - min(b for b, _ in spans))
    return best / calls


_OWN_SIGMOID = (K.ACT_CODES["sigmoid"], 0.0, K.POS_CLEAN)


def _own_sigmoid(A, out):
    """refnet's own sigmoid kernel (the engine's clean activation, one thread) on A into out."""
    e = np.empty((0, 0), dtype=A.dtype)
    K.noisy_activation_serial(A, _OWN_SIGMOID, np.zeros(4, A.dtype), e, e, e, e, out)


def _own_sigmoid_time(A, repeats: int) -> float:
    """One-thread time of :func:`_own_sigmoid` on A."""
    out = np.empty_like(A)
    return _best_one_thread_time(lambda: _own_sigmoid(A, out), repeats)


def machine_rates(dtype, rows: int, repeats: int, cores: int, torch=None) -> dict:
    """Machine rates measured now, for all ``cores``, on a (rows, 300) x (300, 300) product,
    (rows, 300) sigmoids and rows x 300 normal draws: GEMM flops per second (the better of
    multithreaded BLAS and one BLAS thread per core), normal draws (the faster of NumPy's and
    numba's Generator, same algorithm and stream), sigmoids (the faster of
    ``scipy.special.expit`` and one-thread ``torch.sigmoid``) and refnet's own sigmoid kernel.
    The per-core pieces run on every core at once (:func:`_all_cores_time`), as refnet's
    workers run theirs; ``"x_cores"`` holds the same rates as one thread's times ``cores``
    (the earlier runs' limit, which assumed two cores do twice one core's work; see
    :func:`_all_cores_time`). One-thread times take the smaller of wall and CPU time."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((rows, SIZES[1])).astype(dtype)
    B = rng.standard_normal((SIZES[1], SIZES[2])).astype(dtype)
    t_multi = _best_time(lambda: A @ B, repeats)
    with single_threaded_blas():
        t_one = _best_one_thread_time(lambda: A @ B, repeats)
    buf = np.empty(rows * SIZES[1], dtype=dtype)
    t_draw = min(_best_one_thread_time(lambda: rng.standard_normal(dtype=dtype, out=buf), repeats),
                 _best_one_thread_time(lambda: K.fill_normal(rng, buf), repeats))
    t_sig = _best_one_thread_time(lambda: expit(A), repeats)
    n_threads = torch.get_num_threads() if torch is not None else 0
    if torch is not None:
        At = torch.from_numpy(A)
        torch.set_num_threads(1)
        t_sig = min(t_sig, _best_one_thread_time(lambda: torch.sigmoid(At), repeats))
    t_own = _own_sigmoid_time(A, repeats)
    # the same per-core pieces, each thread its own arrays and generator, all cores at once
    mine = [(A.copy(), np.empty_like(A), np.empty_like(buf), np.random.default_rng(20 + i))
            for i in range(cores)]
    a_gemm = _all_cores_time(lambda i: lambda: mine[i][0] @ B, cores, repeats)
    a_draw = min(_all_cores_time(lambda i: lambda: mine[i][3].standard_normal(
                     dtype=dtype, out=mine[i][2]), cores, repeats),
                 _all_cores_time(lambda i: lambda: K.fill_normal(mine[i][3], mine[i][2]),
                                 cores, repeats))
    a_sig = _all_cores_time(lambda i: lambda: expit(mine[i][0], out=mine[i][1]), cores, repeats)
    if torch is not None:
        a_sig = min(a_sig, _all_cores_time(lambda i: (lambda At=torch.from_numpy(mine[i][0]):
                                                      torch.sigmoid(At)), cores, repeats))
        torch.set_num_threads(n_threads)
    a_own = _all_cores_time(lambda i: lambda: _own_sigmoid(mine[i][0], mine[i][1]), cores,
                            repeats)
    flops = 2 * rows * SIZES[1] * SIZES[2]
    x_cores = {"gemm_flops": max(flops / t_multi, cores * flops / t_one),
               "draws": cores * buf.size / t_draw, "sigmoids": cores * A.size / t_sig,
               "own_sigmoids": cores * A.size / t_own}
    return {"gemm_flops": max(flops / t_multi, cores * flops / a_gemm),
            "draws": cores * buf.size / a_draw, "sigmoids": cores * A.size / a_sig,
            "own_sigmoids": cores * A.size / a_own, "x_cores": x_cores}


def same_bits_bound(noise_type: str, dtype, rows: int, reps: int, repeats: int,
                    cores: int, tri: bool = False) -> dict:
    """Samples per second if refnet did nothing but the pieces its default results' bits are
    pinned to, each timed alone now on one thread, the per-core rate times ``cores``: the BLAS
    products at refnet's shapes (per chunk of ``rows``: the dense layer-2 product of the noisy
    layer-1 output where the default path has one (add_unc, mul_unc), the output layer; per
    input, so 1/reps per sample: the clean first layer and, but for mul_unc, the clean layer-2
    product), refnet's own sigmoid kernel (numba's libm ``exp``) on the layer-2 and, 1/reps,
    the layer-1 pre-activations, and the default path's normal draws from the engine's
    generator kernel (add_unc: n1 + n3, the layer-2 noise drawn in the output's dimensions;
    mul_unc: n1 + n2; correlated: 2). Another product, another exp or another stream would
    change the numbers; everything else refnet does (noise passes, rank-one updates, argmax,
    chunk bookkeeping) is its own overhead. ``tri`` (add_unc with ``triangular_draws``): the
    triangular product and n2 + n3 normals instead of the dense product and n1 + n3. Returns
    the rate and the per-sample arithmetic."""
    n0, n1, n2, n3 = SIZES
    rng = np.random.default_rng(0)
    X, A1, A2 = (rng.random((rows, n)).astype(dtype) for n in (n0, n1, n2))
    W1, W2, W3 = (rng.standard_normal((o, i)).astype(dtype) for o, i in ((n1, n0), (n2, n1),
                                                                          (n3, n2)))
    with single_threaded_blas():
        t1 = _best_one_thread_time(lambda: X @ W1.T, repeats)
        t2 = _best_one_thread_time(lambda: A1 @ W2.T, repeats)
        t3 = _best_one_thread_time(lambda: A2 @ W3.T, repeats)
    t_sig = _own_sigmoid_time(A2, repeats)
    n_draw = {"add_unc": n1 + n3, "mul_unc": n1 + n2}.get(noise_type, 2)
    t_noise = t2 if noise_type in ("add_unc", "mul_unc") else 0.0    # the dense product
    if tri:                          # the identity as L: the same work, the values unchanged
        L, eps = np.asfortranarray(np.eye(n2, dtype=dtype)), rng.random((rows, n2)).astype(dtype)
        with single_threaded_blas():
            t_noise = _best_one_thread_time(lambda: lower_triangular_mix(L, 1.0, eps), repeats)
        n_draw = n2 + n3
    buf, gen = np.empty(rows * n_draw, dtype=dtype), np.random.default_rng(1)
    t_draw = _best_one_thread_time(lambda: K.fill_normal(gen, buf), repeats)
    per_input = t1 + t_sig * n1 / n2 + (t2 if noise_type != "mul_unc" else 0.0)
    per_chunk = t_noise + t3 + t_sig + t_draw
    t = (per_chunk + per_input / reps) / rows / cores
    parts = [(t_noise, "triangular product" if tri else "layer-2 product"),
             (t3, "output product"), (t_sig, "sigmoids"), (t_draw, f"{n_draw} normals"),
             (per_input / reps, "per-input work")]
    text = " + ".join(f"{x / rows / cores * 1e6:.3f} us {what}" for x, what in parts if x)
    # the same pieces, a chunk's in a row, on every core at once (each thread its own arrays,
    # generator and outputs; the weights shared, as refnet's workers share them)

    def thread_pieces(i):
        g = np.random.default_rng(10 + i)
        Xi, A1i, A2i = (g.random((rows, n)).astype(dtype) for n in (n0, n1, n2))
        out1, out2 = np.empty_like(A1i), np.empty_like(A2i)
        bufi, eps = np.empty(rows * n_draw, dtype=dtype), g.random((rows, n2)).astype(dtype)
        L = np.asfortranarray(np.eye(n2, dtype=dtype))

        def chunk():
            if tri:
                lower_triangular_mix(L, 1.0, eps)
            elif t_noise:
                A1i @ W2.T
            A2i @ W3.T
            _own_sigmoid(A2i, out2)
            K.fill_normal(g, bufi)

        def per_input_work():
            Xi @ W1.T
            _own_sigmoid(A1i, out1)
            if noise_type != "mul_unc":
                A1i @ W2.T
        return chunk, per_input_work
    pieces = [thread_pieces(i) for i in range(cores)]
    c_chunk = _all_cores_time(lambda i: pieces[i][0], cores, repeats)
    c_input = _all_cores_time(lambda i: pieces[i][1], cores, repeats)
    t_all = (c_chunk + c_input / reps) / rows / cores
    return {"rate": 1.0 / t, "t": t, "text": text, "rate_all": 1.0 / t_all, "t_all": t_all,
            "text_all": (f"a chunk's pieces {c_chunk * 1e3:.2f} ms and the per-input pieces "
                         f"{c_input * 1e3:.2f} ms / {reps} passes, each of {cores} threads "
                         f"on {rows} rows at once"),
            "scaling": (per_chunk + per_input / reps) / (c_chunk + c_input / reps)}


def minimum_work(noise_type: str, path: str = "minimum") -> tuple[int, int, str]:
    """(flops, normal draws, the arithmetic) per noisy sample, first layer amortised.

    ``path="minimum"``: issue #15's minimum work (module docstring); ``"default"``: what the
    default shortcuts must do at least (add_unc: the dense ``xi @ W2.T`` and n1 normals)."""
    n0, n1, n2, n3 = SIZES
    if noise_type == "add_unc" and path == "default":
        return (2 * n1 * n2 + 2 * n2 * n3 + 2 * n3 * n3, n1 + n3,
                f"2*{n1}*{n2} + 2*{n2}*{n3} + 2*{n3}^2 flops, {n1}+{n3} normals")
    if noise_type == "add_unc":
        return (n2 * n2 + 2 * n2 * n3 + n3 * n3, n2 + n3,
                f"{n2}^2 + 2*{n2}*{n3} + {n3}^2 flops, {n2}+{n3} normals")
    if noise_type == "mul_unc":
        return (2 * n1 * n2 + 2 * n2 * n3, n1 + n2,
                f"2*{n1}*{n2} + 2*{n2}*{n3} flops, {n1}+{n2} normals")
    return 3 * n2 + 2 * n2 * n3, 2, f"3*{n2} + 2*{n2}*{n3} flops, 2 normals"


def limits(noise_type: str, rates: dict, reps: int, path: str = "minimum") -> dict:
    """Seconds per sample of flops+draws, of the sigmoids at the fastest and at refnet's own
    rate, and the three limits (samples per second). The clean first layer is computed once
    per input, so each of the ``reps`` samples of an input carries 1/reps of its 2 n0 n1
    flops and n1 sigmoids (and, where the noise enters layer 2 additively or as a rank-one
    term, of the clean layer-2 product, 2 n1 n2); each sample has n2 sigmoids of its own."""
    n0, n1, n2, _ = SIZES
    flops, draws, text = minimum_work(noise_type, path)
    flops += 2 * n0 * n1 / reps
    text += f" + 2*{n0}*{n1}/{reps} first-layer flops"
    if noise_type != "mul_unc":     # the clean layer-2 product once per input, noise added
        flops += 2 * n1 * n2 / reps
        text += f" + 2*{n1}*{n2}/{reps} clean layer-2 flops"
    n_sig = n2 + n1 / reps
    t_fd = flops / rates["gemm_flops"] + draws / rates["draws"]
    t_act, t_own = n_sig / rates["sigmoids"], n_sig / rates["own_sigmoids"]
    return {"t_fd": t_fd, "t_act": t_act, "t_own": t_own, "limit": 1 / t_fd,
            "limit_act": 1 / (t_fd + t_act), "limit_own": 1 / (t_fd + t_own), "text": text,
            "flops": flops, "draws": draws}


def verdict(r: float, lim: dict, lim_path: dict | None) -> tuple[str, str]:
    """(short verdict, the arithmetic of the bound that stops a row that misses).

    A row is sigmoid-bound when refnet's own sigmoids take longer than the flops and draws of
    the limit; its target is 1/1.5 of the own-sigmoid bound. Otherwise 70 % of the limit."""
    own_pct, act_pct = 100 * lim["limit_own"] / lim["limit"], 100 * lim["limit_act"] / lim["limit"]
    exp_note = (f"the fastest sigmoid measured is {lim['t_own'] / lim['t_act']:.1f}x faster than "
                "refnet's (numba's scalar libm exp per element; a vectorised exp changes the "
                "bits of default results, so it is not used)")
    if lim["t_own"] > lim["t_fd"]:
        ok = r >= TARGET_SIG * lim["limit_own"]
        why = (f"sigmoid-bound: refnet's own sigmoids {lim['t_own'] * 1e6:.2f} us > flops+draws "
               f"{lim['t_fd'] * 1e6:.2f} us per sample: own-sigmoid bound 1 / "
               f"{(lim['t_fd'] + lim['t_own']) * 1e6:.2f} us = {lim['limit_own']:,.0f}/s, refnet at "
               f"{100 * r / lim['limit_own']:.0f} % of it (target {100 * TARGET_SIG:.1f} %); "
               + exp_note)
        return ("met (sig)" if ok else "MISS (sig)"), why
    ok = r >= TARGET_FLOP * lim["limit"]
    tag = ("met+aim" if r >= AIM_FLOP * lim["limit"] else "met") if ok else "MISS"
    why = []
    if lim_path is not None:
        why.append(f"the default path's own minimum ({lim_path['text']}) allows at most "
                   f"{lim_path['limit']:,.0f}/s = {100 * lim_path['limit'] / lim['limit']:.0f} % "
                   "of the limit; the opt-in triangular_draws (+tri) row does the limit's work")
    why.append(f"refnet's own sigmoids add {lim['t_own'] * 1e6:.2f} us to "
               f"{lim['t_fd'] * 1e6:.2f} us of flops+draws per sample: at best "
               f"{lim['limit_own']:,.0f}/s = {own_pct:.0f} % of the limit"
               + (f" (< {100 * TARGET_FLOP:.0f} %: the sigmoid alone stops the target; with the "
                  f"fastest sigmoid {act_pct:.0f} %; " + exp_note + ")"
                  if own_pct < 100 * TARGET_FLOP else "")
               + f"; refnet at {100 * r / lim['limit_own']:.0f} % of that bound")
    return tag + " (flop)", "; ".join(why)


def target_rate(lim: dict) -> float:
    """The rate a row must reach (:func:`verdict`): 1/1.5 of the own-sigmoid bound where
    refnet's own sigmoids outweigh the limit's flops and draws, else 70 % of the limit."""
    if lim["t_own"] > lim["t_fd"]:
        return TARGET_SIG * lim["limit_own"]
    return TARGET_FLOP * lim["limit"]


def _noise_fn(noise_type, s, draw):
    """``a`` with one noise type of std ``s`` (Eq. 3); ``draw(shape)`` gives standard normals."""
    per_neuron = noise_type.endswith("_unc")
    additive = noise_type.startswith("add")

    def noise(a):
        xi = draw(a.shape if per_neuron else (a.shape[0], 1))
        return a + s * xi if additive else a * (1 + s * xi)
    return noise


def numpy_straightforward(params, X, noise_type, reps, batch, dtype, seed):
    W, b = [w.astype(dtype) for w in params.W], [v.astype(dtype) for v in params.b]
    X = X.astype(dtype)
    rng, s = np.random.default_rng(seed), np.sqrt(VARIANCE)
    noise = _noise_fn(noise_type, s, lambda shape: rng.standard_normal(shape, dtype=dtype))

    def run():
        for _ in range(reps):
            for i in range(0, len(X), batch):
                a = noise(expit(X[i:i + batch] @ W[0].T + b[0]))
                a = noise(expit(a @ W[1].T + b[1]))
                np.argmax(a @ W[2].T + b[2], axis=1)
    return run


def torch_straightforward(torch, params, X, noise_type, reps, batch, dtype, seed, smart=False):
    """One full forward per pass; ``smart``: the clean first layer once per input, reused."""
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    W = [torch.from_numpy(w.astype(dtype)) for w in params.W]
    b = [torch.from_numpy(v.astype(dtype)) for v in params.b]
    Xt = torch.from_numpy(X.astype(dtype))
    gen, s = torch.Generator().manual_seed(seed), float(np.sqrt(VARIANCE))
    noise = _noise_fn(noise_type, s, lambda shape: torch.randn(shape, generator=gen, dtype=tdt))

    def run():
        with torch.no_grad():
            A1 = torch.sigmoid(Xt @ W[0].T + b[0]) if smart else None
            for _ in range(reps):
                for i in range(0, len(Xt), batch):
                    a1 = A1[i:i + batch] if smart else torch.sigmoid(Xt[i:i + batch] @ W[0].T
                                                                      + b[0])
                    a = noise(a1)
                    a = noise(torch.sigmoid(a @ W[1].T + b[1]))
                    torch.argmax(a @ W[2].T + b[2], dim=1)
    return run


def aihwkit_inference(torch, params, X, reps, batch, seed):
    """aihwkit's CPU inference, float32, with additive uncorrelated noise of std sqrt(VARIANCE)
    on the inputs of layers 2 and 3 (the outputs of both hidden layers); None if aihwkit is
    not importable or its tiles do not build here."""
    try:
        from aihwkit.nn import AnalogLinear
        from aihwkit.simulator.configs import TorchInferenceRPUConfig
        from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
    except Exception:       # an optional comparison: any import failure means "not available"
        return None

    def layer(l):
        cfg = TorchInferenceRPUConfig()
        f = cfg.forward
        f.is_perfect = False
        f.inp_noise, f.out_noise, f.w_noise = float(np.sqrt(VARIANCE)), 0.0, 0.0
        f.inp_res = f.out_res = -1
        f.inp_bound = f.out_bound = 1e9
        f.noise_management, f.bound_management = NoiseManagementType.NONE, BoundManagementType.NONE
        lin = AnalogLinear(SIZES[l], SIZES[l + 1], bias=True, rpu_config=cfg)
        lin.set_weights(torch.from_numpy(params.W[l].astype(np.float32)),
                        torch.from_numpy(params.b[l].astype(np.float32)))
        return lin.eval()

    try:
        l2, l3 = layer(1), layer(2)
    except Exception:
        return None
    W0, b0 = (torch.from_numpy(params.W[0].astype(np.float32)),
              torch.from_numpy(params.b[0].astype(np.float32)))
    Xt = torch.from_numpy(X.astype(np.float32))
    torch.manual_seed(seed)

    def run():
        with torch.no_grad():
            for _ in range(reps):
                for i in range(0, len(Xt), batch):
                    a = torch.sigmoid(Xt[i:i + batch] @ W0.T + b0)
                    torch.argmax(l3(torch.sigmoid(l2(a))), dim=1)
    return run


def peak_memory_vs_K(arch, params, Ks=(100, 1000), T=10) -> list[tuple[int, int]]:
    X = np.random.default_rng(3).standard_normal((T, SIZES[0]))
    cfg = NoiseConfig(NoiseSpec(add_unc=VARIANCE), (1, 2), "post")
    neuron_statistics(arch, params, X, cfg, K=Ks[0], rng=0)      # compile outside the trace
    out = []
    for K_ in Ks:
        tracemalloc.start()
        neuron_statistics(arch, params, X, cfg, K=K_, rng=0)
        out.append((K_, tracemalloc.get_traced_memory()[1]))
        tracemalloc.stop()
    return out


def sweep_memory_vs_K(arch, params, X, y, Ks=(2, 20)) -> list[tuple[int, int]]:
    """Peak traced memory of an accuracy sweep with K repetitions (K noisy passes per input)."""
    out = []
    for K_ in Ks:
        tracemalloc.start()
        accuracy_sweep(arch, params, X, y, "duque", noise_types=("add_unc",),
                       variances=[VARIANCE], repetitions=K_, batch_size=250, rng=0)
        out.append((K_, tracemalloc.get_traced_memory()[1]))
        tracemalloc.stop()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, under about two minutes")
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
        print("torch not importable: the PyTorch columns are skipped", file=sys.stderr)
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
    cols = ("refnet", "numpy", "torch", "smart", "aihwkit")
    header = (f"{'dtype':8}{'noise':9}" + "".join(f"{c + '/s':>11}" for c in cols)
              + f"{'round/s':>11}{'limit/s':>11}{'%limit':>8}{'%lim+act':>9}{'%own':>7}"
              f"{'%lim cpu':>9}{'%lim x1':>8}{'x numpy':>8}"
              f"{'x torch':>8}{'x smart':>8}  verdict")
    lines, cpu_lines, notes, fixed = [], [], [], []
    for dtype in (np.float64, np.float32):
        dname = np.dtype(dtype).name
        for t in TYPES + ("add_unc+tri",):
            base, tri = t.split("+")[0], t.endswith("+tri")
            shortcuts = DEFAULT_SHORTCUTS + (("triangular_draws",) if tri else ())
            fns = {"refnet": lambda: accuracy_sweep(
                       arch, params, X, y, "duque", noise_types=(base,), variances=[VARIANCE],
                       repetitions=reps, batch_size=batch, rng=args.seed, backend=args.backend,
                       dtype=dtype, workers=args.workers, shortcuts=shortcuts)}
            if not tri:
                fns["numpy"] = numpy_straightforward(params, X, base, reps, batch, dtype,
                                                     args.seed)
                if torch:
                    fns["torch"] = torch_straightforward(torch, params, X, base, reps, batch,
                                                         dtype, args.seed)
                    fns["smart"] = torch_straightforward(torch, params, X, base, reps, batch,
                                                         dtype, args.seed, smart=True)
                    if base == "add_unc" and dtype == np.float32:
                        aih = aihwkit_inference(torch, params, X, reps, batch, args.seed)
                        if aih is not None:
                            fns["aihwkit"] = aih
            best, rnd = _timed_rounds(fns, repeats, lambda: (
                machine_rates(dtype, batch, PIECE_REPEATS, cores, torch),
                same_bits_bound(base, dtype, batch, reps, PIECE_REPEATS, cores, tri)))
            # every percentage from one round, the median one: refnet and the bounds it is
            # held to timed back to back, at one machine speed
            r, r_cpu, (rates, pinned) = _median_round(rnd, samples, base, reps)
            lim = limits(base, rates, reps)
            lim_x = limits(base, rates["x_cores"], reps)   # one thread's rates x cores
            path = limits(base, rates, reps, "default") if base == "add_unc" and not tri else None
            for w, rows in ((0, lines), (1, cpu_lines)):
                rate = {k: samples / best[k][w] if k in best else float("nan") for k in cols}
                cells = "".join(f"{rate[c]:11,.0f}" if c in best else f"{'-':>11}" for c in cols)
                ratios = "".join(f"{rate['refnet'] / rate[c]:8.2f}" if c in best else f"{'-':>8}"
                                 for c in ("numpy", "torch", "smart"))
                if w == 0:
                    # per CPU-second, against one core's share of the limit: robust to load
                    tag, why = verdict(r, lim, path)
                    tag_cpu, _ = verdict(r_cpu * cores, lim, path)
                    tag = f"{tag}; cpu: {tag_cpu.split()[0]}"
                    rows.append(f"{dname:8}{t:12}"[:17] + cells + f"{r:11,.0f}{lim['limit']:11,.0f}"
                                f"{100 * r / lim['limit']:8.1f}{100 * r / lim['limit_act']:9.1f}"
                                f"{100 * r / lim['limit_own']:7.1f}"
                                f"{100 * r_cpu * cores / lim['limit']:9.1f}"
                                f"{100 * r / lim_x['limit']:8.1f}" + ratios + f"  {tag}")
                    notes.append(f"{dname} {t} (median round: refnet {r:,.0f}/s; GEMM "
                                 f"{rates['gemm_flops'] / 1e9:.1f} GFLOP/s, "
                                 f"{rates['draws'] / 1e6:.0f} M normals/s, sigmoids "
                                 f"{rates['sigmoids'] / 1e6:.0f} M/s fastest, "
                                 f"{rates['own_sigmoids'] / 1e6:.0f} M/s refnet's): limit = 1 / "
                                 f"({lim['text']} at that round's rates = "
                                 f"{lim['t_fd'] * 1e6:.2f} us; with one thread's rates x "
                                 f"{cores} cores {lim_x['t_fd'] * 1e6:.2f} us, limit "
                                 f"{lim_x['limit']:,.0f}/s); " + why
                                 + f"; same-bits bound 1 / ({pinned['text']} = "
                                 f"{pinned['t'] * 1e6:.2f} us) = {pinned['rate']:,.0f}/s "
                                 f"= {100 * pinned['rate'] / lim['limit']:.0f} % of the limit, "
                                 f"refnet at {100 * r / pinned['rate']:.0f} % of it; on all "
                                 f"cores at once ({pinned['text_all']}) "
                                 f"{pinned['rate_all']:,.0f}/s = "
                                 f"{100 * pinned['rate_all'] / lim['limit']:.0f} % of the "
                                 f"limit, {100 * pinned['rate_all'] / target_rate(lim):.0f} % "
                                 f"of the target rate, refnet at "
                                 f"{100 * r / pinned['rate_all']:.0f} % of it")
                    fixed.append((f"{dname:8}{t:12}"[:17], r, pinned, lim))
                else:
                    rows.append(f"{dname:8}{t:12}"[:17] + cells + ratios)
    print("noisy samples per second of wall time; limits from this run's measured rates")
    print(header)
    print("\n".join(lines))
    print("noisy samples per CPU-second (process time, all threads; robust to other load)")
    print(f"{'dtype':8}{'noise':9}" + "".join(f"{c:>11}" for c in cols)
          + f"{'x numpy':>8}{'x torch':>8}{'x smart':>8}")
    print("\n".join(cpu_lines))
    print("the same-bits bound: the pinned pieces alone (products, own sigmoids, draws), "
          "timed on one thread x cores, and on all cores at once (each thread a chunk's "
          "pieces in a row); 'x1 / all' is how much faster the first assumes the machine is; "
          "'all %target': the all-cores bound as a percentage of the rate the row's target "
          "asks for (below 100: the bits alone stop the target)")
    print(f"{'dtype':8}{'noise':9}{'refnet/s':>11}{'bound/s':>11}{'%bound':>8}"
          f"{'bound %limit':>13}{'all/s':>11}{'%all':>7}{'all %limit':>11}{'x1 / all':>9}"
          f"{'all %target':>12}")
    for name, r, pinned, lim in fixed:
        print(f"{name}{r:11,.0f}{pinned['rate']:11,.0f}{100 * r / pinned['rate']:8.1f}"
              f"{100 * pinned['rate'] / lim['limit']:13.1f}{pinned['rate_all']:11,.0f}"
              f"{100 * r / pinned['rate_all']:7.1f}"
              f"{100 * pinned['rate_all'] / lim['limit']:11.1f}{pinned['scaling']:9.2f}"
              f"{100 * pinned['rate_all'] / target_rate(lim):12.1f}")
    print("what bounds each row (targets: >= 70 % of limit, aim 85 %, where flops and draws "
          "bound it; >= 1/1.5 of the own-sigmoid bound where sigmoids do):")
    print("\n".join("  " + n for n in notes))
    peaks = peak_memory_vs_K(arch, params)
    print("neuron_statistics peak traced memory (T=10 inputs, all layers): "
          + ", ".join(f"K={K_}: {m / 1e6:.2f} MB" for K_, m in peaks)
          + f"; ratio {peaks[-1][1] / peaks[0][1]:.2f}")
    peaks = sweep_memory_vs_K(arch, params, X, y)
    print(f"accuracy_sweep peak traced memory ({n_inputs} inputs): "
          + ", ".join(f"K={K_} passes: {m / 1e6:.2f} MB" for K_, m in peaks)
          + f"; ratio {peaks[-1][1] / peaks[0][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
