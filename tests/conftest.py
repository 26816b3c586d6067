import hashlib
import io
import json
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


def _npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


@pytest.fixture
def npy_bytes():
    """A function: an array as the bytes of a ``.npy`` file (no pickle)."""
    return _npy_bytes


@pytest.fixture
def write_quickdraw_mirror():
    """A function writing a QuickDraw mirror folder: one ``.npy`` per class and the
    ``MANIFEST.json`` (rows and sha256 per file) the loader checks."""
    from refnet.datasets._quickdraw_sources import class_file

    def write(folder, arrays: dict) -> None:
        folder.mkdir(parents=True)
        classes = {}
        for name, a in arrays.items():
            data = _npy_bytes(a)
            (folder / class_file(name)).write_bytes(data)
            classes[name] = {"file": class_file(name), "rows": len(a),
                             "sha256": hashlib.sha256(data).hexdigest(),
                             "google_rows": f"0..{len(a) - 1}"}
        (folder / "MANIFEST.json").write_text(json.dumps({"classes": classes}))

    return write
