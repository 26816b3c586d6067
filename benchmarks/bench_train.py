"""Time one training epoch of 784-300-300-10 (batch 128, Adagrad lr 0.01): refnet vs NumPy vs PyTorch.

"NumPy" is a straightforward textbook implementation (scipy's expit, Adagrad with array
temporaries); "PyTorch" is nn.Sequential + torch.optim.Adagrad on the CPU. All three train on
the same synthetic data (48 000 MNIST-shaped samples: timing does not depend on
pixel values) from the same initial weights, in float32 and float64. Each figure is the median
of ``--repeats`` epochs after one warm-up epoch; the ratio is computed in this same run.

    python benchmarks/bench_train.py [--repeats 3] [--samples 48000]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import refnet as rn
from refnet.train import TrainConfig, train


def refnet_epoch(arch, params, X, y, config):
    t0 = time.perf_counter()
    train(arch, params, X, y, config)
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


def torch_epoch(torch, net, X, y, batch):
    opt = torch.optim.Adagrad(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for i in range(0, len(X), batch):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(X[i:i + batch]), y[i:i + batch])
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", type=int, default=48000)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    X64 = rng.normal(size=(args.samples, 784))
    y = rng.integers(0, 10, args.samples)
    arch = rn.mlp((784, 300, 300, 10))
    p64 = rn.init_params(arch, rng=0)
    config = TrainConfig(epochs=1, batch_size=128, optimizer="adagrad", lr=0.01, shuffle=False)
    print(f"one epoch, {args.samples} samples, 784-300-300-10, batch 128, Adagrad; "
          f"median of {args.repeats} after a warm-up")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'absent'}, cores {os.cpu_count()}")
    print(f"{'dtype':8} {'refnet s':>9} {'numpy s':>9} {'torch s':>9} {'refnet/numpy':>13} "
          f"{'refnet/torch':>13}")
    for dtype in (np.float32, np.float64):
        p = p64.astype(dtype)
        X = X64.astype(dtype)
        refnet_epoch(arch, p, X[:2048], y[:2048], config)  # warm-up
        t_ref = statistics.median(refnet_epoch(arch, p, X, y, config) for _ in range(args.repeats))
        t_np = statistics.median(numpy_epoch(p, X, y, 128) for _ in range(args.repeats))
        t_torch = float("nan")
        if torch is not None:
            tdt = torch.float32 if dtype == np.float32 else torch.float64
            net = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.Sigmoid(),
                                      torch.nn.Linear(300, 300), torch.nn.Sigmoid(),
                                      torch.nn.Linear(300, 10)).to(tdt)
            Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
            torch_epoch(torch, net, Xt[:2048], yt[:2048], 128)
            t_torch = statistics.median(torch_epoch(torch, net, Xt, yt, 128)
                                        for _ in range(args.repeats))
        print(f"{np.dtype(dtype).name:8} {t_ref:9.3f} {t_np:9.3f} {t_torch:9.3f} "
              f"{t_ref / t_np:13.2f} {t_ref / t_torch:13.2f}")


if __name__ == "__main__":
    main()
