"""The data path: seeded splits in permutation order (as torch's random_split), stratified
where classes are stored apart, truncations that keep every class, labels that stay with their
rows, and training batches that mix the classes even without per-epoch shuffling."""

import numpy as np
import pytest

from refnet.datasets.split import (class_shares, per_class_split, split_indices,
                                   stratified_subset, train_val_split)


def sorted_problem(counts=(40, 70, 25, 65), d=3, seed=0):
    """A class-sorted dataset whose row i carries (i, label) in its first two columns."""
    y = np.repeat(np.arange(len(counts)), counts)
    X = np.random.default_rng(seed).normal(size=(y.size, d))
    X[:, 0], X[:, 1] = np.arange(y.size), y
    return X, y


@pytest.mark.parametrize("stratify", [False, True])
def test_split_partitions_keeps_labels_with_rows_and_is_seeded(stratify):
    X, y = sorted_problem()
    Xt, yt, Xv, yv = train_val_split(X, y, 40, rng=7, stratify=stratify)
    rows = np.concatenate([Xt[:, 0], Xv[:, 0]]).astype(int)
    assert sorted(rows) == list(range(len(y)))                    # a partition
    np.testing.assert_array_equal(Xt[:, 1], yt)                   # labels match their rows
    np.testing.assert_array_equal(Xv[:, 1], yv)
    again = train_val_split(X, y, 40, rng=7, stratify=stratify)
    for a, b in zip((Xt, yt, Xv, yv), again):
        np.testing.assert_array_equal(a, b)                       # reproducible from the seed
    assert not np.array_equal(train_val_split(X, y, 40, rng=8, stratify=stratify)[0], Xt)


def test_parts_keep_the_permutation_order_like_random_split():
    X, y = sorted_problem()
    tr, va = split_indices(y, 40, rng=3)
    perm = np.random.default_rng(3).permutation(len(y))
    np.testing.assert_array_equal(va, perm[:40])
    np.testing.assert_array_equal(tr, perm[40:])
    assert np.any(np.diff(tr) < 0)  # not sorted back into file (= class) order


def test_stratified_split_gives_every_class_its_share():
    _, y = sorted_problem()
    tr, va = split_indices(y, 40, rng=0, stratify=True)
    want = class_shares(np.bincount(y), 40)
    np.testing.assert_array_equal(np.bincount(y[va], minlength=4), want)
    np.testing.assert_array_equal(np.bincount(y[tr], minlength=4), np.bincount(y) - want)
    np.testing.assert_array_equal(want, [8, 14, 5, 13])  # 40 * (40, 70, 25, 65) / 200
    assert np.any(np.diff(tr) < 0) and np.any(np.diff(va) < 0)


def test_class_shares_never_drop_a_class_and_sum_to_n():
    counts = np.array([1000, 3000, 4960, 1000, 5])
    for n in (5, 6, 17, 100, 9965):
        s = class_shares(counts, n)
        assert s.sum() == n and np.all(s >= 1) and np.all(s <= counts)
    assert class_shares(counts, 3).sum() == 3  # fewer rows than classes: some must miss out
    with pytest.raises(ValueError, match="n: expected 0 <= n <= 9965"):
        class_shares(counts, 9966)


def test_truncation_keeps_every_class_where_the_first_rows_would_not():
    X, y = sorted_problem()
    assert np.unique(y[:60]).size == 2  # the old truncation: the first rows, two classes
    keep = stratified_subset(y, 60, rng=1)
    assert keep.size == 60 and np.unique(keep).size == 60
    np.testing.assert_array_equal(np.bincount(y[keep], minlength=4), class_shares(np.bincount(y), 60))
    np.testing.assert_array_equal(X[keep, 1], y[keep])
    np.testing.assert_array_equal(keep, stratified_subset(y, 60, rng=1))


def test_per_class_split_is_stratified():
    _, y = sorted_problem()
    tr, te = per_class_split(y, 0.2, rng=0)
    np.testing.assert_array_equal(np.bincount(y[te]), [8, 14, 5, 13])
    assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == y.size


def batch_labels(monkeypatch):
    """Record the labels of every training batch the training loop sees."""
    import refnet.train as tr

    # every training batch goes through loss_and_grad once (refnet.train's loop)
    seen, real = [], tr.loss_and_grad

    def recording(arch, params, Xb, yb, **kw):
        seen.append(np.array(yb))
        return real(arch, params, Xb, yb, **kw)

    monkeypatch.setattr(tr, "loss_and_grad", recording)
    return seen


def test_every_training_batch_of_a_class_sorted_dataset_mixes_classes(monkeypatch):
    from refnet.model import init_params, mlp
    from refnet.train import TrainConfig, train

    X, y = sorted_problem(counts=(100, 100, 100, 100))
    Xt, yt, Xv, yv = train_val_split(X, y, 80, rng=0, stratify=True)
    arch = mlp((3, 4, 4), "sigmoid")
    seen = batch_labels(monkeypatch)
    # the authors' loop: no per-epoch shuffling; the split's order alone must mix the batches
    train(arch, init_params(arch, rng=0), Xt, yt, TrainConfig(epochs=2, batch_size=32,
                                                              shuffle=False))
    assert len(seen) == 2 * 10
    assert all(np.unique(b).size >= 3 for b in seen)
    seen.clear()  # the old path (rows sorted back into file order) fails this
    train(arch, init_params(arch, rng=0), X[np.sort(np.arange(320))], y[:320],
          TrainConfig(epochs=1, batch_size=32, shuffle=False))
    assert any(np.unique(b).size == 1 for b in seen)


@pytest.fixture
def sorted_mirror(tmp_path, monkeypatch, write_quickdraw_mirror):
    """A QuickDraw mirror of three classes of different sizes; REFNET_* point at it."""
    gen = np.random.default_rng(5)
    # per_class=None fetches at least 1000 rows of each class, then uses every row present
    arrays = {"apple": gen.integers(0, 256, (1000, 784), dtype=np.uint8),
              "cat": gen.integers(0, 256, (1500, 784), dtype=np.uint8),
              "dog": gen.integers(0, 256, (1200, 784), dtype=np.uint8)}
    write_quickdraw_mirror(tmp_path / "mirror" / "quickdraw", arrays)
    monkeypatch.setenv("REFNET_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("REFNET_DATA_DIR", str(tmp_path / "cache"))
    return arrays


def _source_labels(X, info, arrays):
    """The class each (normalised) row came from, looked up by its bytes in the mirror."""
    n = info["normalization"]
    raw = np.rint((X * n["std"] + n["mean"]) * 255).astype(np.uint8)
    where = {a[i].tobytes(): k for k, name in enumerate(("apple", "cat", "dog"))
             for a in [arrays[name]] for i in range(len(a))}
    return np.array([where[r.tobytes()] for r in raw])


def test_duque_quickdraw_path_every_row_stratified_and_labels_with_rows(sorted_mirror, monkeypatch):
    from refnet.reproduction.duque import protocol as dq

    setup = dq.DuqueSetup("quickdraw", hidden=(4,), quickdraw_classes="apple,cat,dog",
                          quickdraw_per_class=None, n_val=30, batch_size=16, baseline_epochs=1)
    data = dq.load_data(setup)
    counts = np.bincount(np.concatenate([data.y_train, data.y_val]), minlength=3)
    np.testing.assert_array_equal(counts, [800, 1200, 960])  # every mirror row, 20 % to test
    np.testing.assert_array_equal(np.bincount(data.y_val), class_shares(counts, 30))
    info = data.provenance["train"]
    for X, y in ((data.X_train, data.y_train), (data.X_val, data.y_val), (data.X_test, data.y_test)):
        np.testing.assert_array_equal(_source_labels(X, info, sorted_mirror), y)
    assert data.provenance["split"]["kind"] == "stratified"
    seen = batch_labels(monkeypatch)
    from refnet.model import init_params, mlp
    from refnet.train import train
    arch = mlp((784, 4, 3), "sigmoid")
    train(arch, init_params(arch, rng=0), data.X_train, data.y_train,
          dq.mode_config(setup, "standard", arch.n_layers))
    assert len(seen) == 184 and all(np.unique(b).size >= 2 for b in seen)


def test_duque_truncation_keeps_all_classes_and_labels(sorted_mirror):
    from refnet.reproduction.duque import protocol as dq

    setup = dq.DuqueSetup("quickdraw", quickdraw_classes="apple,cat,dog", quickdraw_per_class=None,
                          n_train=30, n_val=6)
    data = dq.load_data(setup)
    y = np.concatenate([data.y_train, data.y_val])
    np.testing.assert_array_equal(np.bincount(y, minlength=3), class_shares([800, 1200, 960], 30))
    assert np.unique(data.y_val).size == 3
    info = data.provenance["train"]
    np.testing.assert_array_equal(_source_labels(data.X_train, info, sorted_mirror), data.y_train)
    again = dq.load_data(setup)
    np.testing.assert_array_equal(again.X_train, data.X_train)


def test_early_stopping_keeps_the_best_epoch_and_resumes(tmp_path):
    from refnet.model import init_params, mlp
    from refnet.train import TrainConfig, train

    gen = np.random.default_rng(0)
    X = gen.normal(size=(200, 3))
    t = (X @ [1.0, -2.0, 0.5])[:, None] + gen.normal(scale=0.3, size=(200, 1))
    arch = mlp((3, 16, 1), "sigmoid", "identity")
    p0 = init_params(arch, rng=1)
    cfg = TrainConfig(epochs=400, batch_size=8, optimizer="adam", lr=0.05, loss="mse", patience=5)
    res = train(arch, p0, X[:20], t[:20], cfg, X[100:], t[100:])  # 20 rows: it overfits
    val = [h["val_loss"] for h in res.history]
    assert res.best_epoch == 1 + int(np.argmin(val)) and res.epochs_done == len(val)
    assert res.epochs_done == res.best_epoch + 5 < 400   # stopped 5 epochs after the best
    from refnet.model import forward
    best_loss = float(np.mean((forward(arch, res.params, X[100:])[0] - t[100:]) ** 2))
    assert best_loss == pytest.approx(min(val), rel=1e-9)
    ck = tmp_path / "c.npz"
    part = train(arch, p0, X[:20], t[:20], TrainConfig(**{**cfg.__dict__, "epochs": 3}),
                 X[100:], t[100:], checkpoint=ck)
    assert part.epochs_done == 3
    whole = train(arch, p0, X[:20], t[:20], cfg, X[100:], t[100:], checkpoint=ck)
    assert whole.best_epoch == res.best_epoch
    for a, b in zip(whole.params.arrays(), res.params.arrays()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="patience: early stopping needs validation data"):
        train(arch, p0, X, t, cfg)
