import os

import numpy as np
import pytest

try:
    from hypothesis import settings
    settings.register_profile("refnet", deadline=None, max_examples=40, derandomize=True)
    settings.load_profile("refnet")
except ImportError:  # hypothesis is a test extra; property tests importorskip it
    pass


@pytest.fixture(autouse=True)
def no_user_data_settings(monkeypatch):
    """The user's data mirror or cache settings must not leak into any test."""
    for var in ("REFNET_DATA_MIRROR", "REFNET_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("REFNET_REQUIRE_TORCH"):
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise pytest.UsageError("REFNET_REQUIRE_TORCH is set but torch is not importable: "
                                    f"{e}") from e
