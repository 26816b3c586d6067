"""The trainer's fast path (in-place Adagrad, preallocated gradients, batch slices, noise drawn
ahead on a helper thread) gives the bits of the plain per-batch loop.

The reference is written out here from the public pieces: per epoch the epoch generator's
permutation, then per batch forward (noise drawn inside it), loss, every regularizer's full
gradient arrays, backward, fresh sums and the optimizer's functional ``step``. No recorded
numbers: both runs are made in the test, on the same machine and thread count.
"""
import numpy as np
import pytest

import refnet as rn
from refnet.checkpoint import load_checkpoint
from refnet.losses import get_loss
from refnet.model import Params, backward, forward
from refnet.noise import NoiseSpec, noise_config
from refnet.regularizers import ExpectedLoss, regularizer_preset, regularizer_value_and_grad
from refnet.train import TrainConfig, epoch_rng, train

ARCH = rn.mlp((20, 24, 16, 5))
MODES = {
    "standard": {},
    "noise-aware": {"noise": noise_config("duque", NoiseSpec(add_unc=1.0), 3)},
    "mixed-noise": {"noise": noise_config("semenova", NoiseSpec(0.05, 0.02, 0.03, 0.01), 3)},
    "eq4": {"regularizers": (regularizer_preset("eq4", 6e-3),)},
    "eq7": {"regularizers": (regularizer_preset("addunc_sigm_mnist"),)},
    "eq4+eq7": {"regularizers": (regularizer_preset("eq4", 6e-3), regularizer_preset("eq7", 0.02),
                                 regularizer_preset("addunc_sigm_sq"))},
    "expected-loss": {"regularizers": (
        ExpectedLoss(noise_config("duque", NoiseSpec(0.1, 0.0, 0.05))),
        regularizer_preset("eq4", 6e-3))},
}


def reference_train(arch, params, X, y, config):
    """The straightforward loop, written out from the public pieces and nothing reused: per
    batch the noisy forward pass drawing from the epoch generator, the loss, each
    regularizer's full gradient arrays, one backward pass, fresh sums, the optimizer's
    functional ``step``."""
    opt = config.make_optimizer()
    loss_fn = get_loss(config.loss)
    arrays = [a.copy() for a in params.arrays()]
    state = opt.init(arrays)
    n, bs = len(X), config.batch_size
    for epoch in range(config.epochs):
        rng = epoch_rng(config.seed, epoch)
        order = rng.permutation(n) if config.shuffle else np.arange(n)
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            p = Params.from_arrays(arrays)
            out, cache = forward(arch, p, X[idx], config.noise, rng)
            _, d_out = loss_fn(out, y[idx])
            terms = [regularizer_value_and_grad(arch, p, cache, r) for r in config.regularizers]
            dZ_extra = {}
            for _, _, extra in terms:
                for l, dz in extra.items():
                    dZ_extra[l] = dZ_extra[l] + dz if l in dZ_extra else dz
            grads = backward(arch, p, cache, d_out, dZ_extra or None).arrays()
            for _, direct, _ in terms:
                grads = [g + r for g, r in zip(grads, direct.arrays())]
            arrays, state = opt.step(arrays, grads, state,
                                     trainable=[True, arch.train_biases] * arch.n_layers)
    return arrays, state


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("draw_ahead", [True, False])
def test_fast_path_gives_the_reference_bits(dtype, mode, shuffle, draw_ahead, tmp_path):
    g = np.random.default_rng(3)
    X = g.normal(size=(150, 20)).astype(dtype)   # batches of 64, 64 and 22 rows
    y = g.integers(0, 5, 150)
    p = rn.init_params(ARCH, rng=4).astype(dtype)
    cfg = TrainConfig(epochs=2, batch_size=64, shuffle=shuffle, seed=5, **MODES[mode])
    want, want_state = reference_train(ARCH, p, X, y, cfg)
    ckpt = tmp_path / "run.npz"
    res = train(ARCH, p, X, y, cfg, checkpoint=ckpt, draw_ahead=draw_ahead)
    for k, (a, b) in enumerate(zip(res.params.arrays(), want)):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b, err_msg=f"array {k}")
    for a, b in zip(p.arrays(), want):
        assert not np.array_equal(a, b)   # training moved every array
    # the optimizer state the fast path updates in place is the reference's too
    _, state, *_ = load_checkpoint(ckpt, ARCH, cfg, p.arrays())
    assert set(state) == set(want_state)
    for key, v in want_state.items():
        np.testing.assert_array_equal(state[key], v, err_msg=key)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_other_optimizers_keep_the_reference_bits(optimizer):
    g = np.random.default_rng(6)
    X, y = g.normal(size=(100, 20)), g.integers(0, 5, 100)
    p = rn.init_params(ARCH, rng=7)
    cfg = TrainConfig(epochs=1, batch_size=32, optimizer=optimizer, lr=0.01, **MODES["eq7"])
    want, _ = reference_train(ARCH, p, X, y, cfg)
    for a, b in zip(train(ARCH, p, X, y, cfg).params.arrays(), want):
        np.testing.assert_array_equal(a, b)


def test_draw_ahead_gives_the_in_line_draws_in_order_and_stops():
    from refnet.draw_ahead import DrawAhead
    from refnet.noise import draw_network_noise

    cfg = MODES["mixed-noise"]["noise"]
    rows = [64, 64, 22]
    want_rng, rng = np.random.default_rng(9), np.random.default_rng(9)
    with DrawAhead(cfg, ARCH.sizes, rows, rng, np.float32) as ahead:
        for n in rows:
            got, want = ahead.next(), draw_network_noise(cfg, ARCH.sizes, n, want_rng,
                                                         np.float32)
            for g, w in zip(got, want):
                for name in ("add_unc", "add_cor", "mul_unc", "mul_cor"):
                    np.testing.assert_array_equal(getattr(g, name), getattr(w, name))
        with pytest.raises(IndexError):
            ahead.next()
    assert rng.standard_normal() == want_rng.standard_normal()   # nothing more was drawn
