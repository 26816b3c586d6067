"""Networks shared by the Monte-Carlo tests."""
import numpy as np
import pytest

from refnet.model import init_params, mlp, predict


@pytest.fixture
def net3():
    """A 6-5-4-3 sigmoid net (every layer narrower than the one before: narrow draws apply)."""
    arch = mlp((6, 5, 4, 3), "sigmoid", "identity")
    return arch, init_params(arch, rng=0)


@pytest.fixture
def classifier():
    """A 6-8-8-3 sigmoid net and 300 inputs it classifies well (labels = its clean argmax)."""
    arch = mlp((6, 8, 8, 3), "sigmoid", "identity")
    p = init_params(arch, "normal", rng=0, std=1.5)
    X = np.random.default_rng(1).normal(size=(300, 6))
    return arch, p, X, predict(arch, p, X)
