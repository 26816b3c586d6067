"""Check refnet's normal-draw kernels against NumPy's own calls over billions of values, and
time them on training's batch shape (128 x 300).

refnet draws noise through numba kernels (:mod:`refnet._random_kernels`) that must give
``Generator.standard_normal``'s numbers, float64 and float32, and leave the generator where
NumPy would. The suite compares five million values per dtype; the ziggurat's rare branches
(strip 0's tail, the rejection tests) are a few in a thousand, so this script compares many
more: ``--seeds`` generators, each ``--blocks`` blocks of 2**24 values, then the next draw.
It counts the tail values (beyond the last strip, |x| > 3.66) it saw, stops at the first
difference with its place, and then prints the time per 128 x 300 batch of each path
(interleaved rounds, medians) and their ratio.

    python benchmarks/check_normal_streams.py [--seeds 16] [--blocks 10] [--dtype float32]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import numpy as np

from refnet._random_kernels import standard_normal

BLOCK = 1 << 24
TAIL = 3.66   # the float ziggurat's last strip ends at 3.6541...; beyond it only the tail


def compare(dtype, seeds: int, blocks: int) -> bool:
    tail = 0
    t0 = time.perf_counter()
    for seed in range(seeds):
        mine, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        for k in range(blocks):
            got = standard_normal(mine, BLOCK, dtype)
            want = ref.standard_normal(BLOCK, dtype=dtype)
            if not np.array_equal(got, want):
                i = int(np.flatnonzero(got != want)[0])
                print(f"{np.dtype(dtype).name}: DIFFERENT at seed {seed}, value "
                      f"{k * BLOCK + i:,}: {got[i]!r} against NumPy's {want[i]!r}")
                return False
            tail += int(np.count_nonzero(np.abs(got) > TAIL))
        if mine.standard_normal(dtype=dtype) != ref.standard_normal(dtype=dtype):
            print(f"{np.dtype(dtype).name}: seed {seed}: the generators' states differ after "
                  "the same numbers")
            return False
    n = seeds * blocks * BLOCK
    print(f"{np.dtype(dtype).name}: {n:,} values ({seeds} seeds) equal to NumPy's, "
          f"{tail:,} of them from the tail; generator states equal "
          f"({time.perf_counter() - t0:.0f} s)")
    return True


def timing(dtype, rounds: int = 9, reps: int = 200) -> None:
    shape = (128, 300)
    rng = np.random.default_rng(1)
    standard_normal(rng, shape, dtype)                       # compile / load the kernel
    paths = {"NumPy": lambda: rng.standard_normal(shape, dtype=dtype),
             "refnet": lambda: standard_normal(rng, shape, dtype)}
    times = {k: [] for k in paths}
    for r in range(rounds):
        for name in (list(paths) if r % 2 else list(paths)[::-1]):
            t = time.perf_counter()
            for _ in range(reps):
                paths[name]()
            times[name].append((time.perf_counter() - t) / reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{np.dtype(dtype).name} 128 x 300: NumPy {med['NumPy'] * 1e3:.3f} ms, refnet "
          f"{med['refnet'] * 1e3:.3f} ms, NumPy / refnet {med['NumPy'] / med['refnet']:.2f}x "
          f"(medians of {rounds} interleaved rounds)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=10, help="blocks of 2**24 values per seed")
    ap.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    a = ap.parse_args(argv)
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()} {platform.processor() or ''}".rstrip())
    dtypes = ("float32", "float64") if a.dtype == "both" else (a.dtype,)
    ok = all([compare(np.dtype(d), a.seeds, a.blocks) for d in dtypes])
    for d in dtypes:
        timing(np.dtype(d))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
