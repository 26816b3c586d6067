"""loss_and_grad, train_step and train() with noise draws supplied from outside."""
import dataclasses

import numpy as np
import pytest

from refnet.model import Params, forward, init_params, mlp
from refnet.noise import NoiseConfig, NoiseSpec, draw_layer_noise
from refnet.optim import Adagrad
from refnet.regularizers import regularizer_preset, value_and_grad
from refnet.step import loss_and_grad, train_step
from refnet.testing import check_grad
from refnet.train import TrainConfig, epoch_rng, train

ARCH = mlp((5, 6, 4, 3))
NOISE = NoiseConfig(NoiseSpec(0.05, 0.02, 0.03, 0.01), (1, 2), "post", {2: NoiseSpec(add_unc=0.2)})
REGS = (regularizer_preset("eq4", 0.01), regularizer_preset("custom_sum", 0.01),
        regularizer_preset("eq7", 0.02), regularizer_preset("addunc_sigm_sq"))


def _draws(n, rng):
    return [None] + [draw_layer_noise(NOISE.spec_for(l, 3), n, ARCH.sizes[l], rng)
                     for l in (1, 2)] + [None]


@pytest.fixture
def batch():
    g = np.random.default_rng(0)
    return init_params(ARCH, rng=1), g.normal(size=(8, 5)), g.integers(0, 3, 8), _draws(8, g)


def test_every_term_is_its_own_gradient(batch):
    p, X, y, draws = batch
    res = loss_and_grad(ARCH, p, X, y, noise=NOISE, draws=draws, regularizers=REGS)

    def loss_only(arrays):
        return loss_and_grad(ARCH, Params.from_arrays(arrays), X, y, noise=NOISE, draws=draws).loss

    check_grad(loss_only, p.arrays(), 0, res.loss_grads.arrays(), name="loss")
    for r, reg in enumerate(REGS):
        v, g = value_and_grad(ARCH, p, X, reg, NOISE, draws=draws)  # the regularizers' own path
        assert res.penalties[r] == pytest.approx(v, rel=1e-14)

        def pen(arrays, reg=reg):
            return value_and_grad(ARCH, Params.from_arrays(arrays), X, reg, NOISE, draws=draws)[0]

        check_grad(pen, p.arrays(), r, res.penalty_grads[r].arrays(), name=f"regularizer {r}")
        for a, b in zip(res.penalty_grads[r].arrays(), g.arrays()):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    total = res.loss_grads.arrays()
    for g in res.penalty_grads:
        total = [a + b for a, b in zip(total, g.arrays())]
    one_pass = loss_and_grad(ARCH, p, X, y, noise=NOISE, draws=draws, regularizers=REGS,
                             per_term=False)
    assert one_pass.loss_grads is None and one_pass.total == pytest.approx(res.total, rel=1e-15)
    for a, b, c in zip(total, res.grads.arrays(), one_pass.grads.arrays()):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(res.cache.A[1], forward(ARCH, p, X, NOISE, draws=draws)[1].A[1])


@pytest.mark.parametrize("regs", [
    (regularizer_preset("eq4", 0.01),),
    (regularizer_preset("eq4", 0.01), regularizer_preset("custom_sum", 0.03)),
    (regularizer_preset("custom_sum", 0.02), regularizer_preset("eq7", 0.02)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pass_adds_the_row_sum_gradient_with_the_bits_of_the_full_arrays(batch, regs, dtype):
    # the trainer's pass adds Eq. 4's gradient row by row from a broadcast view; the bits must
    # be those of backward() plus regularizer_value_and_grad's full arrays, added in turn
    from refnet.losses import cross_entropy
    from refnet.model import backward
    from refnet.regularizers import regularizer_value_and_grad

    p0, X, y, draws = batch
    p = Params.from_arrays([a.astype(dtype) for a in p0.arrays()])
    X = X.astype(dtype)
    draws = [None if d is None else dataclasses.replace(d, **{
        f.name: getattr(d, f.name).astype(dtype) for f in dataclasses.fields(d)
        if getattr(d, f.name) is not None}) for d in draws]
    one = loss_and_grad(ARCH, p, X, y, noise=NOISE, draws=draws, regularizers=regs,
                        per_term=False, check=False)
    out, cache = forward(ARCH, p, X, NOISE, draws=draws)
    _, d_out = cross_entropy(out, y)
    terms = [regularizer_value_and_grad(ARCH, p, cache, r) for r in regs]
    dZ = {}
    for _, _, extra in terms:
        for l, v in extra.items():
            dZ[l] = dZ[l] + v if l in dZ else v
    want = backward(ARCH, p, cache, d_out, dZ or None)
    W = list(want.W)
    for _, full, _ in terms:
        W = [w + g for w, g in zip(W, full.W)]
    for got, w in zip(one.grads.W, W):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, w)
    assert one.penalties == tuple(float(t[0]) for t in terms)
    # the public gradients stay fresh arrays, the trainer's are views
    full = terms[0][1]
    assert all(w.flags.writeable and w.flags.c_contiguous for w in full.W)


def test_train_step_is_the_optimizer_on_the_total_gradient(batch):
    p, X, y, draws = batch
    opt = Adagrad(lr=0.1)
    state = opt.init(p.arrays())
    new, new_state, res = train_step(ARCH, p, X, y, optimizer=opt, state=state, noise=NOISE,
                                     draws=draws, regularizers=REGS)
    want, _ = opt.step(p.arrays(), res.grads.arrays(), state)
    for a, b in zip(new.arrays(), want):
        np.testing.assert_array_equal(a, b)
    assert int(new_state["step"][0]) == 1 and int(state["step"][0]) == 0


def _problem():
    g = np.random.default_rng(5)
    X = g.normal(size=(40, 5))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 1)


def test_train_with_supplied_draws_replays_its_own_stream():
    """Draws handed in that equal what train() draws itself (epoch generator: shuffle, then
    each batch's layers in order) give bit-identical parameters; other draws do not."""
    X, y = _problem()
    cfg = TrainConfig(epochs=2, batch_size=16, noise=NOISE, regularizers=REGS[:3], seed=3)
    p0 = init_params(ARCH, rng=2)
    own = train(ARCH, p0, X, y, cfg).params
    gens, calls = {}, []

    def same_stream(epoch, batch, rows):
        if epoch not in gens:
            gens[epoch] = epoch_rng(cfg.seed, epoch)
            gens[epoch].permutation(len(X))
        calls.append((epoch, batch, len(rows)))
        return _draws(len(rows), gens[epoch])

    replay = train(ARCH, p0, X, y, cfg, draws=same_stream).params
    assert calls == [(e, b, n) for e in (0, 1) for b, n in enumerate((16, 16, 8))]
    for a, b in zip(own.arrays(), replay.arrays()):
        np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(9)
    listed = [_draws(n, g) for _ in range(2) for n in (16, 16, 8)]
    from_list = train(ARCH, p0, X, y, cfg, draws=listed).params
    assert not np.allclose(from_list.W[0], own.W[0])
    # the same list, replayed by hand with train_step on the same shuffled batches
    opt, p = cfg.make_optimizer(), p0
    state, k = opt.init(p.arrays()), 0
    for e in range(2):
        order = epoch_rng(cfg.seed, e).permutation(len(X))
        for b in range(3):
            rows = order[16 * b:16 * (b + 1)]
            p, state, _ = train_step(ARCH, p, X[rows], y[rows], optimizer=opt, state=state,
                                     noise=NOISE, draws=listed[k], regularizers=REGS[:3])
            k += 1
    for a, b in zip(p.arrays(), from_list.arrays()):
        np.testing.assert_array_equal(a, b)


def test_supplied_draws_errors():
    X, y = _problem()
    cfg = TrainConfig(epochs=1, batch_size=16, noise=NOISE)
    p0 = init_params(ARCH, rng=2)
    with pytest.raises(ValueError, match="iterator ran out at epoch 1, batch 3"):
        train(ARCH, p0, X, y, cfg, draws=[_draws(16, np.random.default_rng(0))] * 2)
    with pytest.raises(ValueError, match=r"noise draw mul_unc: expected shape \(16, 6\), got \(3, 6\)"):
        train(ARCH, p0, X, y, cfg, draws=lambda e, b, rows: _draws(3, np.random.default_rng(0)))


def test_a_non_finite_objective_gives_no_gradient_and_no_step(batch):
    p, X, y, draws = batch
    X = X.copy()
    huge = Params.from_arrays([np.full_like(a, np.inf) if i == 4 else a
                               for i, a in enumerate(p.arrays())])
    with np.errstate(all="ignore"):
        res = loss_and_grad(ARCH, huge, X, y, noise=NOISE, draws=draws)
    assert not np.isfinite(res.total) and res.grads is None and res.loss_grads is None
    opt = Adagrad()
    state = opt.init(huge.arrays())
    with np.errstate(all="ignore"):
        same, same_state, _ = train_step(ARCH, huge, X, y, optimizer=opt, state=state,
                                         noise=NOISE, draws=draws)
    assert same is huge and same_state is state
