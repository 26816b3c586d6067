"""Training on a busy machine: libgomp's spin count, and one thread, against the default.

    python benchmarks/bench_contention.py [--samples 12000] [--rounds 5] [--dtype float64]

refnet's parallel kernels (training's fixed-block products, its fused element-wise passes)
run on numba's "omp" threading layer, whose threads are libgomp's. At the end of each parallel
region a libgomp thread that waits for the others spins ``GOMP_SPINCOUNT`` times before it
sleeps: 300,000 by default, the right choice when every thread has a core of its own. When
another process holds a core, a thread that spins keeps the thread it waits for from running,
and each of the thousands of regions in an epoch waits for the scheduler. refnet leaves
libgomp's default alone (it is the faster one on a quiet machine, measured here); this script
measures what a user on a busy machine gains by setting ``GOMP_SPINCOUNT`` (or by one thread).

Each timing is one training epoch (784-300-300-10, batch 128, Adagrad lr 0.01, the training
benchmark's setting, on ``--samples`` synthetic rows) in a child process started for it
(libgomp reads its settings once, when it is loaded), under each setting:

* ``default``: nothing set (libgomp's 300,000 spins, every core);
* ``spin 1000``: ``GOMP_SPINCOUNT=1000``;
* ``1 thread``: the default on one numba thread;

on the quiet machine, with one busy Python loop per core but one, and beside another program's
parallel work (short numba-parallel regions on every core on libgomp's default). Rounds
interleave the settings; each row shows the median over ``--rounds`` of the epoch time and of
each round's ratio to ``default`` on the same machine state. The trained parameters are the
same bits under every setting (the thread count and the waiting never change a product's
blocks): the children print a hash of them, and the script checks that they agree.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = r"""
import hashlib, sys, time
import numpy as np
import refnet as rn
from refnet import _numba
from refnet.train import TrainConfig, train
samples, threads, dtype = int(sys.argv[1]), int(sys.argv[2]), np.dtype(sys.argv[3])
_numba.set_threads(threads)
rng = np.random.default_rng(0)
X = rng.normal(size=(samples, 784)).astype(dtype)
y = rng.integers(0, 10, samples)
arch = rn.mlp((784, 300, 300, 10))
p = rn.init_params(arch, rng=0).astype(dtype)
cfg = TrainConfig(epochs=1, batch_size=128, optimizer="adagrad", lr=0.01, shuffle=False)
train(arch, p, X[:1024], y[:1024], cfg)      # compile and warm up
t0 = time.perf_counter()
out = train(arch, p, X, y, cfg)
seconds = time.perf_counter() - t0
h = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in out.params.arrays()))
print(seconds, h.hexdigest()[:16])
"""

#: setting -> (extra environment, numba threads or None for all); "default" first: the ratios'
#: denominator
SETTINGS = {"default": ({}, None), "spin 1000": ({"GOMP_SPINCOUNT": "1000"}, None),
            "1 thread": ({}, 1)}


def epoch(samples: int, threads: int, dtype: str, env: dict) -> tuple[float, str]:
    full = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    full.update(env)
    run = subprocess.run([sys.executable, "-c", CHILD, str(samples), str(threads), dtype],
                         env=full, capture_output=True, text=True, check=True)
    seconds, digest = run.stdout.split()
    return float(seconds), digest


#: Another program's parallel work: short numba-parallel regions on every core, one after the
#: other, on libgomp's default spin (what a second training, or any OpenMP program, does).
PARALLEL = r"""
import numpy as np
from numba import njit, prange
@njit(parallel=True)
def step(a):
    for i in prange(a.size):
        a[i] = np.sqrt(a[i] + 1.0)
a = np.ones(200_000)
while True:
    step(a)
"""


def busy_processes(kind: str, cores: int) -> list:
    """``loop``: one pure-Python loop per core but one; ``parallel``: one process running
    :data:`PARALLEL` (libgomp's default spin count); ``quiet``: none."""
    if kind == "loop":
        return [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(cores - 1)]
    if kind == "parallel":
        env = {**os.environ, "GOMP_SPINCOUNT": "300000"}
        return [subprocess.Popen([sys.executable, "-c", PARALLEL], env=env)]
    return []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=12000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    args = ap.parse_args(argv)
    from refnet import _numba
    cores = len(os.sched_getaffinity(0))
    n = _numba.max_threads()
    print(f"one training epoch, {args.samples} samples, 784-300-300-10, batch 128, Adagrad, "
          f"{args.dtype}; {cores} cores, numba threads {n}, threading layer omp (libgomp); "
          f"median of {args.rounds} "
          "interleaved rounds, each epoch in a child process")
    digests = set()
    print(f"{'machine':24} {'setting':9} {'epoch s':>8} {'/ default':>10}")
    states = {"quiet": "quiet", "loop": f"{cores - 1} busy Python loop(s)",
              "parallel": "another OpenMP program"}
    for kind, state in states.items():
        busy = busy_processes(kind, cores)
        try:
            times = {k: [] for k in SETTINGS}
            for r in range(args.rounds):
                order = list(SETTINGS) if r % 2 == 0 else list(reversed(SETTINGS))
                for k in order:
                    env, threads = SETTINGS[k]
                    t, digest = epoch(args.samples, threads or n, args.dtype, env)
                    times[k].append(t)
                    digests.add(digest)
        finally:
            for p in busy:
                p.kill()
                p.wait()
        for k in SETTINGS:
            ratio = statistics.median(a / b for a, b in zip(times[k], times["default"]))
            print(f"{state:24} {k:9} {statistics.median(times[k]):8.3f} {ratio:10.2f}")
    print("trained parameters: " + ("the same bits under every setting and machine state"
                                    if len(digests) == 1 else f"DIFFER: {sorted(digests)}"))
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
