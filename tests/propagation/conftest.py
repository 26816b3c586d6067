"""Shared fixtures' maker for the propagation tests: small trained nets on Gaussian blobs."""
import numpy as np
import pytest

from refnet.model import init_params, mlp


def train_blobs_net(*, seed: int, d: int, k: int, n: int, n_train: int, hidden: tuple,
                    scale: float, epochs: int):
    """A 3-layer sigmoid net (linear output) trained on ``k`` Gaussian blobs in ``d``
    dimensions (centres of scale ``scale``, unit noise), so that noise matters near variance 1.

    Returns ``(arch, params, X_test (n - n_train, d), y_test (n - n_train,))``.
    """
    from refnet.train import TrainConfig, train
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=scale, size=(k, d))
    y = rng.integers(0, k, n)
    X = centers[y] + rng.normal(size=(n, d))
    arch = mlp((d, *hidden, k), "sigmoid", "identity")
    cfg = TrainConfig(epochs=epochs, lr=0.05, batch_size=64, optimizer="adagrad", seed=0)
    P = train(arch, init_params(arch, "torch", rng=0), X[:n_train], y[:n_train], cfg).params
    return arch, P, X[n_train:], y[n_train:]


@pytest.fixture(scope="session")
def make_blobs_net():
    """:func:`train_blobs_net`, for module fixtures (the tests folder is not a package)."""
    return train_blobs_net
