"""MNIST-style loaders on synthetic cached files: normalisation, dtype, splits, provenance."""
import hashlib
import urllib.request

import numpy as np
import pytest

from refnet.errors import ConfigError, DataError
from refnet.datasets import _registry as reg
from refnet.datasets import load_dataset, mnist
from refnet.datasets._sources import Source, fetch_idx
from refnet.datasets.idx import IdxError, read_images, write_idx
from refnet.datasets.split import per_class_split, train_val_split


@pytest.fixture
def cached_mnist(tmp_path, rng):
    """Synthetic files installed in a cache under the name "mnist"; returns (spec, cache, raw)."""
    src = tmp_path / "src"
    src.mkdir()
    raw = {"train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
           "train-labels-idx1-ubyte": np.arange(20, dtype=np.uint8) % 10,
           "t10k-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
           "t10k-labels-idx1-ubyte": np.array([0, 1, 2, 3, 4, 9], dtype=np.uint8)}
    files = []
    for name, a in raw.items():
        write_idx(src / name, a)
        files.append(reg.RemoteFile(name, hashlib.sha256((src / name).read_bytes()).hexdigest()))
    spec = reg.IdxDatasetSpec("mnist", "MNIST", tuple(files), (), ())
    deliver = Source("test-source", lambda needed, tmp: {f: src / f for f in needed})
    fetch_idx(spec, cache_dir=tmp_path / "cache", sources=[deliver])
    return spec, tmp_path / "cache", raw


def test_mnist_normalisation_is_the_authors(cached_mnist, monkeypatch):
    spec, cache, raw = cached_mnist
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    d = mnist._load_idx(spec, "train", cache, True, True, np.float64, None, tuple("0123456789"))
    x = raw["train-images-idx3-ubyte"].reshape(20, 784).astype(np.float64)
    np.testing.assert_allclose(d.X, (x / 255 - 0.1305) / 0.3081, rtol=1e-15)
    assert d.X.dtype == np.float64 and d.y.dtype == np.int64 and d.X.shape == (20, 784)
    assert d.info["source"] == "test-source" and d.info["cached"] is True
    assert d.info["class_counts"] == [2] * 10
    assert d.info["normalization"] == {"formula": "(x/255 - mean)/std", "mean": 0.1305, "std": 0.3081}


def test_fashion_constants_and_float32_test_split(cached_mnist):
    spec, cache, raw = cached_mnist
    fashion = reg.IdxDatasetSpec("fashion-mnist", "F", spec.files, (), ())
    (cache / "fashion-mnist").symlink_to(cache / "mnist")
    d = mnist._load_idx(fashion, "test", cache, True, False, np.float32, None, mnist.FASHION_CLASSES)
    x = raw["t10k-images-idx3-ubyte"].reshape(6, 784) / 255.0
    assert d.X.dtype == np.float32 and d.X.shape == (6, 784)
    np.testing.assert_allclose(d.X, (x - 0.2860) / 0.3530, rtol=1e-6, atol=1e-6)  # float32
    np.testing.assert_array_equal(d.y, [0, 1, 2, 3, 4, 9])
    assert d.classes[9] == "Ankle boot"


def test_unnormalised_is_x_over_255(cached_mnist):
    spec, cache, raw = cached_mnist
    d = mnist._load_idx(spec, "test", cache, False, False, np.float64, None, ())
    np.testing.assert_array_equal(d.X, raw["t10k-images-idx3-ubyte"].reshape(6, 784) / 255.0)


def test_fetch_false_without_cache_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="python data/fetch.py mnist"):
        mnist.load_mnist(cache_dir=tmp_path, fetch=False)


@pytest.mark.parametrize("kw, match", [({"split": "val"}, "split"), ({"dtype": np.int32}, "dtype"),
                                       ({"dtype": "garbage"}, "dtype: expected float64 or float32, got 'garbage'")])
def test_bad_arguments_are_named(tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        mnist.load_mnist(cache_dir=tmp_path, fetch=False, **kw)


def test_fetch_false_without_cache_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte is missing"):
        mnist.load_mnist(cache_dir=tmp_path, fetch=False)


def test_load_dataset_names_unknown_datasets_and_options():
    with pytest.raises(ConfigError, match="unknown dataset 'mnits'"):
        load_dataset("mnits")
    with pytest.raises(ConfigError, match="mnist: unknown option\\(s\\) bogus; the loader takes cache_dir"):
        load_dataset("mnist", "test", bogus=1)


@pytest.mark.parametrize("text", ["[1, 2]", "5", '"abc"', '{"files": [1]}', "{",
                                  '{"files": {"train-images-idx3-ubyte": "x"}}',
                                  "[" * 100_000 + "]" * 100_000, "\xff\xfe"])
@pytest.mark.parametrize("fetch", [True, False])
def test_damaged_provenance_record_counts_as_none(cached_mnist, monkeypatch, text, fetch):
    spec, cache, raw = cached_mnist
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    (cache / "mnist" / "provenance.json").write_bytes(text.encode("latin-1"))
    d = mnist._load_idx(spec, "test", cache, False, fetch, np.float64, None, ())
    np.testing.assert_array_equal(d.X, raw["t10k-images-idx3-ubyte"].reshape(6, 784) / 255.0)
    assert d.info["source"] == "cache (no record)"


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()], ids=["missing", "folder"])
def test_idx_reader_names_a_missing_file_or_a_folder(tmp_path, make):
    make(tmp_path / "images.idx")
    with pytest.raises(IdxError, match="images.idx: cannot be read .* run `python data/fetch.py`"):
        read_images(tmp_path / "images.idx")


def test_cache_folder_under_a_file_is_refused_before_any_source(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    (tmp_path / "m.npz").write_bytes(b"x")
    for where in (tmp_path / "m.npz", tmp_path / "m.npz" / "sub"):
        with pytest.raises(ConfigError, match=f"--cache-dir \\(cache_dir\\): the cache folder {where}"):
            mnist.load_mnist(cache_dir=where)


def test_train_val_split_is_seeded_and_a_partition():
    X = np.arange(100, dtype=float).reshape(50, 2)
    y = np.arange(50)
    a = train_val_split(X, y, n_val=10, rng=3)
    b = train_val_split(X, y, n_val=10, rng=np.random.default_rng(3))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    Xt, yt, Xv, yv = a
    assert yt.size == 40 and yv.size == 10
    assert sorted(np.concatenate([yt, yv]).tolist()) == list(range(50))
    np.testing.assert_array_equal(Xv[:, 0], 2 * yv)  # rows stay with their labels
    assert not np.array_equal(yv, train_val_split(X, y, 10, rng=4)[3])


def test_train_val_split_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_val"):
        train_val_split(np.zeros((5, 2)), np.zeros(5), n_val=5)
    with pytest.raises(ValueError, match="y: 4 rows"):
        train_val_split(np.zeros((5, 2)), np.zeros(4), n_val=1)


def test_per_class_split_is_stratified():
    y = np.repeat(np.arange(3), [10, 20, 30])
    train, test = per_class_split(y, 0.2, rng=0)
    assert np.bincount(y[test]).tolist() == [2, 4, 6]
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == 60
