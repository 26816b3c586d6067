"""The training loop: learning, determinism, resume after interruption, divergence, fine-tuning."""
import numpy as np
import pytest

import refnet as rn
from refnet.errors import CheckpointError
from refnet.io import load_npz, save_model, save_npz_atomic
from refnet.losses import get_loss
from refnet.regularizers import regularizer_preset
from refnet.train import (MAX_BATCH_SIZE, MAX_EPOCHS, MAX_SEED, TrainConfig, TrainingDiverged,
                          evaluate_accuracy, train)


def _blobs(rng, n=600, d=6, k=3):
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, n)
    return centers[y] + rng.normal(size=(n, d)), y


@pytest.fixture
def problem(rng):
    X, y = _blobs(rng)
    arch = rn.mlp((6, 16, 16, 3))
    return arch, rn.init_params(arch, rng=1), X, y


def test_training_learns_a_separable_problem(problem):
    arch, p, X, y = problem
    before = evaluate_accuracy(arch, p, X, y)
    res = train(arch, p, X[:500], y[:500], TrainConfig(epochs=8, batch_size=32, lr=0.1),
                X[500:], y[500:])
    assert res.history[-1]["val_accuracy"] > 0.95 > before
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert [h["epoch"] for h in res.history] == list(range(1, 9))


def test_validation_scores_are_those_of_separate_loss_and_accuracy_passes(rng):
    # one forward per block gives both numbers; they must be the bits of a loss pass over the
    # same 4096-row blocks and of evaluate_accuracy (9000 rows: three blocks, the last short)
    X, y = _blobs(rng, n=9400)
    arch = rn.mlp((6, 16, 16, 3))
    p = rn.init_params(arch, rng=2)
    res = train(arch, p, X[:400], y[:400], TrainConfig(epochs=2, batch_size=50, lr=0.05),
                X[400:], y[400:])
    entry, ce = res.history[-1], get_loss("cross_entropy")
    total = 0.0
    for i in range(400, 9400, 4096):
        out, _ = rn.forward(arch, res.params, X[i:i + 4096])
        total += ce(out, y[i:i + 4096])[0] * len(out)
    assert entry["val_loss"] == total / 9000
    assert entry["val_accuracy"] == evaluate_accuracy(arch, res.params, X[400:], y[400:])
    reg = train(rn.mlp((6, 8, 2)), rn.init_params(rn.mlp((6, 8, 2)), rng=3), X[:400],
                X[:400, :2], TrainConfig(epochs=1, batch_size=50, loss="mse"), X[400:], X[400:, :2])
    assert "val_accuracy" not in reg.history[-1] and np.isfinite(reg.history[-1]["val_loss"])


def test_same_seed_same_numbers_and_input_not_modified(problem):
    arch, p, X, y = problem
    W0 = p.W[0].copy()
    cfg = TrainConfig(epochs=2, batch_size=50, noise=rn.noise_config("duque", rn.NoiseSpec(0.1), 3))
    a = train(arch, p, X, y, cfg).params
    b = train(arch, p, X, y, cfg).params
    for x1, x2 in zip(a.arrays(), b.arrays()):
        np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(p.W[0], W0)
    c = train(arch, p, X, y, TrainConfig(epochs=2, batch_size=50, seed=1, noise=cfg.noise)).params
    assert not np.array_equal(a.W[0], c.W[0])


def test_resume_after_interruption_gives_the_uninterrupted_result(problem, tmp_path):
    arch, p, X, y = problem
    regs = (regularizer_preset("eq4", 1e-3),)
    noise = rn.noise_config("duque", rn.NoiseSpec(add_unc=0.05, mul_cor=0.02), 3)
    full = train(arch, p, X, y, TrainConfig(epochs=4, batch_size=64, optimizer="adam", lr=1e-2,
                                              noise=noise, regularizers=regs))
    ckpt = tmp_path / "run.ckpt.npz"
    first = train(arch, p, X, y, TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=1e-2,
                                               noise=noise, regularizers=regs), checkpoint=ckpt)
    assert first.epochs_done == 2 and ckpt.exists()
    resumed = train(arch, p, X, y, TrainConfig(epochs=4, batch_size=64, optimizer="adam", lr=1e-2,
                                                 noise=noise, regularizers=regs), checkpoint=ckpt)
    assert resumed.resumed_from == 2
    for x1, x2 in zip(full.params.arrays(), resumed.params.arrays()):
        np.testing.assert_array_equal(x1, x2)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]


def test_checkpoint_with_other_settings_is_refused(problem, tmp_path):
    arch, p, X, y = problem
    ckpt = tmp_path / "c.npz"
    train(arch, p, X, y, TrainConfig(epochs=1, lr=0.01), checkpoint=ckpt)
    with pytest.raises(ValueError, match="checkpoint: .* other settings"):
        train(arch, p, X, y, TrainConfig(epochs=2, lr=0.02), checkpoint=ckpt)


def test_checkpoint_with_more_epochs_than_asked_is_refused(problem, tmp_path):
    """It was returned as it was: 3 epochs of training reported as 1 (epochs_done 1, and the
    model file's train_config said epochs 1)."""
    arch, p, X, y = problem
    ckpt = tmp_path / "c.npz"
    train(arch, p, X, y, TrainConfig(epochs=3, lr=0.01), checkpoint=ckpt)
    saved = ckpt.read_bytes()
    with pytest.raises(CheckpointError, match=r"c\.npz: checkpoint: 3 epochs done, more than "
                                              r"the 1 this run trains; ask for at least 3 "
                                              r"epochs to resume it; delete or move"):
        train(arch, p, X, y, TrainConfig(epochs=1, lr=0.01), checkpoint=ckpt)
    assert ckpt.read_bytes() == saved
    again = train(arch, p, X, y, TrainConfig(epochs=3, lr=0.01), checkpoint=ckpt)
    assert again.epochs_done == 3 and again.resumed_from == 3  # as many: nothing left to do


def test_a_model_file_as_checkpoint_is_named_so_and_left_alone(problem, tmp_path):
    """The message said the model lacked 'config' and 'epochs_done': "delete or move" it."""
    arch, p, X, y = problem
    model = save_model(tmp_path / "m.npz", arch, p)
    saved = model.read_bytes()
    with pytest.raises(CheckpointError) as e:
        train(arch, p, X, y, TrainConfig(epochs=1), checkpoint=model)
    assert str(e.value).startswith(f"{model}: a refnet model, not a training checkpoint; pass "
                                   "another checkpoint path")
    assert "delete" not in str(e.value) and model.read_bytes() == saved


def test_divergence_names_epoch_and_batch_and_keeps_last_checkpoint(rng, tmp_path):
    X = rng.normal(size=(600, 6))
    t = X[:, :1] - X[:, 1:2]
    arch = rn.mlp((6, 8, 1), hidden="identity")
    p = rn.init_params(arch, rng=0)
    cfg = TrainConfig(epochs=1, batch_size=100, shuffle=False, loss="mse", optimizer="sgd", lr=1e-3)
    ckpt = tmp_path / "c.npz"
    train(arch, p, X, t, cfg, checkpoint=ckpt)
    # resumed below on other data: drop the data fingerprint (as in checkpoints written before
    # it existed, which are taken as they are)
    arrays, meta = load_npz(ckpt)
    del meta["data_sha256"], meta["sha256"]
    save_npz_atomic(ckpt, arrays, meta, sha256=True)
    saved = ckpt.read_bytes()
    Xbad = X.copy()
    Xbad[250:260] *= 1e200  # finite inputs whose squared error overflows to inf in batch 3
    cfg2 = TrainConfig(epochs=2, batch_size=100, shuffle=False, loss="mse", optimizer="sgd", lr=1e-3)
    with np.errstate(over="ignore"), \
            pytest.raises(TrainingDiverged, match=r"epoch 2, batch 3; the last good checkpoint"):
        train(arch, p, Xbad, t, cfg2, checkpoint=ckpt)
    assert ckpt.read_bytes() == saved
    _, meta = load_npz(ckpt)
    assert meta["epochs_done"] == 1


def test_frozen_biases_stay_fixed(rng):
    X, y = _blobs(rng, n=200)
    arch = rn.Architecture((6, 8, 3), ("sigmoid", "identity"), train_biases=False)
    p = rn.init_params(arch, rng=2)
    res = train(arch, p, X, y, TrainConfig(epochs=2, batch_size=20, lr=0.1))
    np.testing.assert_array_equal(res.params.b[0], p.b[0])
    assert not np.array_equal(res.params.W[0], p.W[0])


def test_fine_tuning_continues_from_given_params(problem):
    arch, p, X, y = problem
    base = train(arch, p, X, y, TrainConfig(epochs=3, batch_size=32, lr=0.1)).params
    acc = evaluate_accuracy(arch, base, X, y)
    tuned = train(arch, base, X, y, TrainConfig(epochs=1, batch_size=32, lr=1e-4,
                                                regularizers=(regularizer_preset("eq7", 1e-3),))).params
    assert abs(evaluate_accuracy(arch, tuned, X, y) - acc) < 0.05  # small lr: stays close


def test_mse_regression_and_float32(rng):
    X = rng.normal(size=(300, 4))
    t = np.sin(X[:, :1]) + 0.5 * X[:, 1:2]
    arch = rn.mlp((4, 16, 1))
    p = rn.init_params(arch, rng=0, dtype=np.float32)
    res = train(arch, p, X, t, TrainConfig(epochs=30, batch_size=30, loss="mse", optimizer="adam", lr=0.01))
    assert res.params.dtype == np.float32
    assert res.history[-1]["train_loss"] < 0.3 * res.history[0]["train_loss"]


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="loss: unknown loss 'hinge'"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="rmsprop"):
        TrainConfig(optimizer="rmsprop")


def test_progress_display_writes_to_the_stream(problem, capsys):
    import sys
    arch, p, X, y = problem
    train(arch, p, X, y, TrainConfig(epochs=1), progress=sys.stderr)
    err = capsys.readouterr().err
    assert "epoch 1/1 loss" in err  # the per-epoch summary line (no bar: not a TTY)


@pytest.mark.parametrize("field, low, high", [("epochs", 0, MAX_EPOCHS), ("patience", 0, MAX_EPOCHS),
                                              ("batch_size", 1, MAX_BATCH_SIZE),
                                              ("seed", 0, MAX_SEED)])
def test_a_config_accepted_is_a_config_read_back(field, low, high):
    """TrainConfig takes exactly what its reader (checkpoints, model files) takes: a run
    must not write a file refnet then refuses (a seed of 2**70 did)."""
    for ok in (low, high):
        config = TrainConfig(**{field: ok})
        assert TrainConfig.from_dict(config.as_dict()) == config
    for bad in (low - 1, high + 1):
        with pytest.raises(ValueError, match=f"{field}: must be in {low}\\.\\.{high}"):
            TrainConfig(**{field: bad})
