"""Trained MNIST networks for the benchmarks: trained once, then loaded from a cache folder.

``trained_net(sizes, cache_dir)`` trains ``sizes`` (sigmoid hidden layers, linear output,
cross-entropy; the authors' Adagrad, lr 0.01, batch 128, PyTorch-default initialisation) for a
few epochs on MNIST's training split (read from ``REFNET_DATA_DIR`` as refnet's loaders do), or
loads the model saved by an earlier run from ``cache_dir`` (refnet's own ``.npz`` model format,
:func:`refnet.io.save_model` / :func:`refnet.io.load_model`: no pickle, content hash checked).
The file name carries the sizes, epochs and seed, so a changed setting trains anew.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from refnet.datasets import load_mnist
from refnet.io import load_model, save_model
from refnet.model import init_params, mlp
from refnet.train import TrainConfig, evaluate_accuracy, train

#: The two networks of issue #15 item 3.
SIZES = ((784, 300, 300, 10), (784, 200, 200, 10))


def _name(sizes, epochs: int, seed: int) -> str:
    return f"mnist-{'-'.join(map(str, sizes))}-e{epochs}-s{seed}.npz"


def trained_net(sizes, cache_dir, *, epochs: int = 3, seed: int = 0, log=print):
    """``(arch, params, metadata)`` of a trained MNIST network; trains and saves it if absent.

    metadata holds the clean test accuracy and the training time (``train_seconds``) of the
    run that made the file.
    """
    path = Path(cache_dir) / _name(sizes, epochs, seed)
    if path.exists():
        return load_model(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = mlp(tuple(sizes), "sigmoid", "identity")
    train_set = load_mnist("train")
    config = TrainConfig(epochs=epochs, seed=seed)
    log(f"training {'-'.join(map(str, sizes))} on MNIST for {epochs} epochs (cached in {path})")
    t0 = time.perf_counter()
    result = train(arch, init_params(arch, "torch", rng=seed), train_set.X, train_set.y, config)
    seconds = time.perf_counter() - t0
    test = load_mnist("test")
    acc = float(evaluate_accuracy(arch, result.params, test.X, test.y))
    meta = {"benchmark_net": {"dataset": "mnist", "epochs": epochs, "seed": seed,
                              "test_accuracy": acc, "train_seconds": seconds,
                              "config": config.as_dict()}}
    save_model(path, arch, result.params, meta)
    return load_model(path)  # the saved copy: the same bits whether trained now or before


def test_inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` MNIST test images (n, 784), normalised as refnet's loader does, and
    their labels (n,)."""
    test = load_mnist("test")
    return test.X[:n], test.y[:n]
