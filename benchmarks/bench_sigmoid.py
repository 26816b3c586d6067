"""The float64 sigmoid's numba pass against NumPy's passes, the same bits, in one run.

    python benchmarks/bench_sigmoid.py [--rounds 5] [--samples 12000]

refnet's float64 sigmoid and its derivatives take one numba pass where a probe shows it gives
the NumPy passes' bits (:mod:`refnet._activation_kernels`: machines whose NumPy float64
``exp`` is the C library's, that is without AVX-512); elsewhere the script says so and stops.
It times, in interleaved rounds after a quarter-second pause each:

* the sigmoid, ``sigma'`` and ``(sigma', sigma'')`` on a training batch (128 x 300) and a
  ``forward()`` layer of 1,000 inputs (1000 x 300): NumPy's passes, the serial pass, the
  parallel pass (best of 30 calls each);
* ``forward()`` of 1,000 inputs through 784-300-300-10 and one float64 training epoch
  (``--samples`` rows, batch 128, Adagrad, standard and with the authors' Eq. 7), with the
  passes and with NumPy's (best of 10 forwards; one epoch each);

and prints medians of the rounds' times and of each round's ratio (pass / NumPy), with a check
that every result has the same bits both ways (trained parameters by hash).
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import time

import numpy as np

import refnet as rn
from refnet import _activation_kernels as K
from refnet import activations as A
from refnet._blas import fixed_blas_threads
from refnet.model import forward
from refnet.train import TrainConfig, train

PAUSE = 0.25


def best(fn, n: int) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def digest(arrays) -> str:
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


def kernel_rows(rounds: int) -> None:
    rng = np.random.default_rng(0)
    print(f"{'function':26} {'shape':>10} {'NumPy us':>9} {'serial us':>10} {'parallel us':>12}"
          f" {'ser/NumPy':>10} {'par/NumPy':>10}")
    for name in ("sigmoid", "sigmoid_prime", "sigmoid_prime_and_second"):
        twin = getattr(A, name + "_numpy")
        par, ser, n_out = K._KERNELS[name]
        for shape in ((128, 300), (1000, 300)):
            z = rng.standard_normal(shape) * 4.0
            outs = [np.empty(z.size) for _ in range(n_out)]
            flat = z.reshape(-1)
            t = {"numpy": [], "ser": [], "par": []}
            for _ in range(rounds):
                time.sleep(PAUSE)
                t["numpy"].append(best(lambda: twin(z), 30))
                t["ser"].append(best(lambda: ser(flat, *outs), 30))
                with fixed_blas_threads():
                    t["par"].append(best(lambda: par(flat, *outs), 30))
            med = {k: statistics.median(v) * 1e6 for k, v in t.items()}
            r_ser = statistics.median(a / b for a, b in zip(t["ser"], t["numpy"]))
            r_par = statistics.median(a / b for a, b in zip(t["par"], t["numpy"]))
            print(f"{name:26} {str(shape):>10} {med['numpy']:9.0f} {med['ser']:10.0f} "
                  f"{med['par']:12.0f} {r_ser:10.2f} {r_par:10.2f}")


def whole_rows(rounds: int, samples: int) -> bool:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(samples, 784))
    y = rng.integers(0, 10, samples)
    arch = rn.mlp((784, 300, 300, 10))
    p = rn.init_params(arch, rng=0)
    Xf = X[:1000]
    same = True
    jobs = {"forward, 1000 inputs": (lambda: forward(arch, p, Xf), 10)}
    for name, regs in (("epoch, standard", ()),
                       ("epoch, eq7", (rn.regularizer_preset("addunc_sigm_mnist"),))):
        cfg = TrainConfig(epochs=1, batch_size=128, optimizer="adagrad", lr=0.01,
                          shuffle=False, regularizers=regs)
        train(arch, p, X[:1024], y[:1024], cfg)  # compile and warm up
        jobs[name] = (lambda cfg=cfg: train(arch, p, X, y, cfg), 1)
    print(f"{'work':22} {'NumPy s':>9} {'pass s':>9} {'pass/NumPy':>11}  bits")
    for name, (fn, n) in jobs.items():
        t = {True: [], False: []}
        hashes = {True: set(), False: set()}
        for r in range(rounds):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                time.sleep(PAUSE)
                if on:
                    t[on].append(best(fn, n))
                    out = fn()
                else:
                    with K.numpy_passes_only():
                        t[on].append(best(fn, n))
                        out = fn()
                arrays = out.params.arrays() if hasattr(out, "params") else (out[0],)
                hashes[on].add(digest(arrays))
        ok = len(hashes[True] | hashes[False]) == 1
        same &= ok
        ratio = statistics.median(a / b for a, b in zip(t[True], t[False]))
        print(f"{name:22} {statistics.median(t[False]):9.4f} {statistics.median(t[True]):9.4f} "
              f"{ratio:11.2f}  {'same' if ok else 'DIFFER'}")
    return same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=12000)
    args = ap.parse_args(argv)
    from refnet import _numba
    agree = {n: (K.same_bits_as_numpy(n, False), K.same_bits_as_numpy(n, True))
             for n in K._KERNELS}
    print(f"numpy {np.__version__}, numba threads {_numba.threads()}; the passes give NumPy's "
          f"bits here (serial, parallel): {agree}")
    if not all(all(v) for v in agree.values()):
        print("NumPy's float64 exp is not the C library's on this machine: the NumPy passes run "
              "and there is nothing to compare")
        return 0
    kernel_rows(args.rounds)
    return 0 if whole_rows(args.rounds, args.samples) else 1


if __name__ == "__main__":
    raise SystemExit(main())
