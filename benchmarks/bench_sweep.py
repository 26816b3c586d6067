"""Cells per hour: ``refnet sweep`` on the local process pool vs a plain sequential shell loop.

    REFNET_DATA_DIR=... python benchmarks/bench_sweep.py [--dataset mnist] [--workers N]

The same small grid both ways: Eq. 4 lambda in {0, 1e-3, 1e-2} x seeds {0, 1} = 6 cells,
fine-tuned from a baseline per seed (784-100-100-10 on the first --n-train MNIST images), each
cell measured under the four noise types at 4 variances x 2 repetitions on --n-test test rows.

* sweep: one ``run_sweep`` call (baselines included) on :class:`LocalPool` (all cores).
* loop: what a user writes without it, one subprocess after the other: per seed
  ``refnet train`` (baseline), then per cell ``refnet train --init-from`` (fine-tune) and
  ``refnet evaluate`` (same variances, repetitions and test rows).

Both wall times are measured in this run and printed with their ratio. The machine may be
shared: absolute numbers vary, the ratio less so.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAMBDAS = (0.0, 1e-3, 1e-2)
SEEDS = (0, 1)
VARIANCES = (1e-3, 1e-2, 1e-1, 1.0)


def _spec(args):
    from refnet.sweep import parse_spec

    return parse_spec({
        "data": {"dataset": args.dataset, "hidden": [100, 100], "baseline_epochs": args.epochs,
                 "n_train": args.n_train, "n_val": args.n_val},
        "grid": {"eq4_lambda": list(LAMBDAS), "seed": list(SEEDS), "epochs": [args.epochs]},
        "evaluate": {"variances": list(VARIANCES), "repetitions": 2, "n_test": args.n_test,
                     "analytic_inputs": 200}})


def _run(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")


def loop(args, folder: Path) -> float:
    """The plain loop of `refnet train` + `refnet evaluate` calls; returns wall seconds."""
    from refnet.datasets import load_dataset

    test = load_dataset(args.dataset, "test")
    data = folder / "test.npz"
    np.savez(data, X=test.X[:args.n_test], y=test.y[:args.n_test])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cli = [sys.executable, "-m", "refnet.cli"]
    common = ["--dataset", args.dataset, "--n-train", str(args.n_train), "--n-val",
              str(args.n_val), "--hidden", "100,100", "--epochs", str(args.epochs), "--no-shuffle",
              "--quiet"]
    t0 = time.perf_counter()
    for seed in SEEDS:
        base = folder / f"base{seed}.npz"
        _run(cli + ["train", *common, "--seed", str(seed), "--out", str(base)], env)
        for lam in LAMBDAS:
            model = folder / f"cell{seed}_{lam:g}.npz"
            reg = ["--regularizer", "eq4", "--lam", str(lam)] if lam > 0 else []
            _run(cli + ["train", *common, *reg, "--seed", str(seed), "--init-from", str(base),
                        "--out", str(model)], env)
            _run(cli + ["evaluate", str(model), "--data", str(data), "--levels",
                        ",".join(map(str, VARIANCES)), "--repetitions", "2", "--seed",
                        str(seed + 1), "--out", str(folder / f"eval{seed}_{lam:g}"),
                        "--no-progress"], env)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, help="local pool size (default: all cores)")
    args = ap.parse_args(argv)
    from refnet.sweep import run_sweep

    n_cells = len(LAMBDAS) * len(SEEDS)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = run_sweep(_spec(args), Path(tmp) / "sweep", workers=args.workers, progress=None)
        t_sweep = time.perf_counter() - t0
        assert len(s.computed) == n_cells
        t_loop = loop(args, Path(tmp))
    per_hour = {k: n_cells / t * 3600 for k, t in (("sweep", t_sweep), ("loop", t_loop))}
    print(f"grid: {n_cells} cells ({args.dataset}, 784-100-100-10, n_train {args.n_train}, "
          f"{args.epochs}+{args.epochs} epochs, 4 noise types x {len(VARIANCES)} variances x 2 "
          f"repetitions on {args.n_test} test rows), {os.cpu_count()} cores")
    print(f"refnet sweep, {s.executor}: {t_sweep:7.1f} s  {per_hour['sweep']:8.0f} cells/hour")
    print(f"loop of refnet train + evaluate: {t_loop:7.1f} s  {per_hour['loop']:8.0f} cells/hour")
    print(f"ratio (sweep / loop cells per hour): {per_hour['sweep'] / per_hour['loop']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
