"""Regularizers and optimizers against PyTorch (autograd and torch.optim), float64, rtol 1e-10.

The torch side is written independently of refnet's code: the network is rebuilt with
``F.linear`` from refnet's arrays, ``f'`` comes from torch's own autograd (``create_graph``),
every regularizer is spelled out with explicit layers and constants as in the paper or the
authors' code, and the gradients come from ``backward()``.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from refnet.model import Params, init_params, mlp  # noqa: E402
from refnet.noise import NoiseConfig, NoiseSpec, draw_layer_noise  # noqa: E402
from refnet.optim import SGD, Adagrad, Adam  # noqa: E402
from refnet.regularizers import (RowSumPenalty, SaturationPenalty, regularizer_preset,  # noqa: E402
                                 row_sum_penalty, value_and_grad)

pytestmark = pytest.mark.torch
RTOL, ATOL = 1e-10, 1e-14
ARCH = mlp((3, 4, 4, 2))
NOISE = NoiseConfig(NoiseSpec(add_unc=0.1, add_cor=0.05, mul_unc=0.02, mul_cor=0.03), (1, 2),
                    "post")
T = torch.float64


def _t(a):
    return torch.tensor(np.asarray(a), dtype=T)


def _torch_noise(x, spec, d):
    """y = x (1 + xi_MU)(1 + xi_MC) + xi_AU + xi_AC with the same standard-normal draws."""
    y = x * (1 + spec.mul_unc ** 0.5 * _t(d.mul_unc)) * (1 + spec.mul_cor ** 0.5 * _t(d.mul_cor))
    return y + spec.add_unc ** 0.5 * _t(d.add_unc) + spec.add_cor ** 0.5 * _t(d.add_cor)


def _torch_net(params, X, act, draws=None):
    """Leaf tensors W, b (refnet layout = nn.Linear layout) and the pre-activations z^(l)."""
    W = [_t(w).requires_grad_() for w in params.W]
    b = [_t(v).requires_grad_() for v in params.b]
    a, Z = _t(X), []
    for l in range(3):
        z = F.linear(a, W[l], b[l])
        Z.append(z)
        a = act(z) if l < 2 else z
        if draws is not None and draws[l + 1] is not None:
            a = _torch_noise(a, NOISE.spec, draws[l + 1])
    return W, b, Z


def _fprime(act, z):
    """f'(z) from torch autograd, kept differentiable (so the gradient goes through f'')."""
    (g,) = torch.autograd.grad(act(z).sum(), z, create_graph=True)
    return g


def _rowsum(W):
    return W.sum(dim=1).abs().sum()


def _sq(W):
    return (W ** 2).sum()


def cubic(z):
    return 3 * z ** 2 - 2 * z ** 3


# name -> (refnet spec, torch hidden activation, torch regularizer(W, Z, act, n_batch))
CASES = {
    "eq4": (regularizer_preset("eq4", 0.3), torch.sigmoid,
            lambda W, Z, act, n: 0.3 * _rowsum(W[1]) + 0.3 * _rowsum(W[2])),
    "custom_sum": (regularizer_preset("custom_sum", 0.3), torch.sigmoid,
                   lambda W, Z, act, n: 0.3 * (_rowsum(W[1]) + 30 * _rowsum(W[2]))),
    "eq4_all_layers": (RowSumPenalty({1: 0.2, 2: 0.5, 3: 0.7}), torch.sigmoid,
                       lambda W, Z, act, n: 0.2 * _rowsum(W[0]) + 0.5 * _rowsum(W[1])
                       + 0.7 * _rowsum(W[2])),
    "eq7": (regularizer_preset("eq7", 0.3), torch.sigmoid,
            lambda W, Z, act, n: 0.3 * _fprime(act, Z[1]).sum(dim=1).mean()
            + 0.3 * _sq(W[1]) + 0.3 * _sq(W[2])),
    "addunc_sigm_mnist": (regularizer_preset("addunc_sigm_mnist"), torch.sigmoid,
                          lambda W, Z, act, n: 6e-3 * (0.01 * _fprime(act, Z[1]).sum()
                                                       + 0.015 * _sq(W[1]) + 3.0 * _sq(W[2]))),
    "addunc_sigm_fashion": (regularizer_preset("addunc_sigm_fashion"), torch.sigmoid,
                            lambda W, Z, act, n: 1.2e-2 * (0.1 * _fprime(act, Z[1]).sum()
                                                           + 0.015 * _sq(W[1])
                                                           + 2.0 * _sq(W[2]))),
    "addunc_sigm_sq": (regularizer_preset("addunc_sigm_sq"), torch.sigmoid,
                       lambda W, Z, act, n: 6e-3 * (0.01 * (_fprime(act, Z[1]) ** 2).sum()
                                                    + 0.015 * _sq(W[1]) + 3.0 * _sq(W[2]))),
    "general_sum_sq": (SaturationPenalty({1: 0.4, 2: 0.1}, {1: 0.05}, "sum", 2), torch.sigmoid,
                       lambda W, Z, act, n: 0.4 * (_fprime(act, Z[0]) ** 2).sum()
                       + 0.1 * (_fprime(act, Z[1]) ** 2).sum() + 0.05 * _sq(W[0])),
    "cubic_mean": (SaturationPenalty({1: 0.4, 2: 0.1}, 0.2, "mean", 1), cubic,
                   lambda W, Z, act, n: (0.4 * _fprime(act, Z[0]).sum()
                                         + 0.1 * _fprime(act, Z[1]).sum()) / n
                   + 0.2 * _sq(W[1]) + 0.2 * _sq(W[2])),
    "both": ((RowSumPenalty(0.1), SaturationPenalty({2: 0.2}, {3: 0.3})), torch.sigmoid,
             lambda W, Z, act, n: 0.1 * (_rowsum(W[1]) + _rowsum(W[2]))
             + 0.2 * _fprime(act, Z[1]).sum() / n + 0.3 * _sq(W[2])),
}


def _compare(arch, params, X, reg, act, torch_reg, draws=None):
    noise = NOISE if draws is not None else None
    v, g = value_and_grad(arch, params, X, reg, noise, draws=draws)
    W, b, Z = _torch_net(params, X, act, draws)
    R = torch_reg(W, Z, act, X.shape[0])
    R.backward()
    np.testing.assert_allclose(v, R.item(), rtol=RTOL, atol=ATOL, err_msg="value")
    for l in range(3):
        gw = W[l].grad.numpy() if W[l].grad is not None else np.zeros_like(params.W[l])
        gb = b[l].grad.numpy() if b[l].grad is not None else np.zeros_like(params.b[l])
        np.testing.assert_allclose(g.W[l], gw, rtol=RTOL, atol=ATOL, err_msg=f"dR/dW{l + 1}")
        np.testing.assert_allclose(g.b[l], gb, rtol=RTOL, atol=ATOL, err_msg=f"dR/db{l + 1}")


@pytest.mark.parametrize("noisy", [False, True], ids=["clean", "noisy"])
@pytest.mark.parametrize("n_batch", [1, 5])
@pytest.mark.parametrize("name", list(CASES))
def test_regularizer_matches_torch_autograd(name, n_batch, noisy):
    reg, act, torch_reg = CASES[name]
    arch = mlp((3, 4, 4, 2), hidden="cubic" if act is cubic else "sigmoid")
    rng = np.random.default_rng(20)
    params = init_params(arch, "torch", rng)
    X = rng.normal(size=(n_batch, 3))
    draws = None
    if noisy:
        draws = [None] + [draw_layer_noise(NOISE.spec, n_batch, 4, rng) for _ in range(2)] + [None]
    _compare(arch, params, X, reg, act, torch_reg, draws)


def test_eq4_subgradient_at_zero_matches_torch_abs():
    """A row with sum exactly 0 gets gradient 0 in both (torch: d|x|/dx at 0 is 0)."""
    rng = np.random.default_rng(21)
    params = init_params(ARCH, "torch", rng)
    W2 = params.W[1].copy()
    W2[1] = [0.25, -0.25, 0.5, -0.5]
    p = Params((params.W[0], W2, params.W[2]), params.b)
    v, g = row_sum_penalty(p, {2: 0.7})
    Wt = _t(W2).requires_grad_()
    R = 0.7 * _rowsum(Wt)
    R.backward()
    assert Wt.grad[1].abs().max().item() == 0.0
    np.testing.assert_array_equal(g.W[1][1], np.zeros(4))
    np.testing.assert_allclose(g.W[1], Wt.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(v, R.item(), rtol=RTOL)


# --- optimizers ------------------------------------------------------------------------------
OPTS = [
    (SGD(lr=0.1), torch.optim.SGD, dict(lr=0.1)),
    (SGD(lr=0.1, momentum=0.9), torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (SGD(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01), torch.optim.SGD,
     dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    (SGD(lr=0.05, momentum=0.9, weight_decay=0.02, nesterov=True), torch.optim.SGD,
     dict(lr=0.05, momentum=0.9, weight_decay=0.02, nesterov=True)),
    (Adagrad(), torch.optim.Adagrad, dict()),
    (Adagrad(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.3, eps=1e-6),
     torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.01,
                               initial_accumulator_value=0.3, eps=1e-6)),
    (Adam(), torch.optim.Adam, dict()),
    (Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05), torch.optim.Adam,
     dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    (Adam(lr=0.01, weight_decay=0.05, amsgrad=True), torch.optim.Adam,
     dict(lr=0.01, weight_decay=0.05, amsgrad=True)),
    (Adam(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True), torch.optim.Adam,
     dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True)),
    (Adam(lr=0.01, betas=(0.3, 0.9)), torch.optim.Adam, dict(lr=0.01, betas=(0.3, 0.9))),
]
TORCH_STATE = {"momentum_buffer", "sum", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}


def _run_both(opt, torch_cls, kw, n_steps, dtype, trainable=None):
    rng = np.random.default_rng(22)
    shapes = [(4, 3), (4,), (2, 4)]
    arrays = [rng.normal(size=s).astype(dtype) for s in shapes]
    tparams = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
    topt = torch_cls(tparams, foreach=False, **kw)
    state = opt.init(arrays)
    trainable = trainable or [True] * len(arrays)
    for _ in range(n_steps):
        grads = [rng.normal(size=s).astype(dtype) for s in shapes]
        for tp, g, t in zip(tparams, grads, trainable):
            tp.grad = torch.tensor(g) if t else None
        topt.step()
        arrays, state = opt.step(arrays, grads, state, trainable)
    return arrays, state, tparams, topt


@pytest.mark.parametrize("n_steps", [1, 7])
@pytest.mark.parametrize("opt, torch_cls, kw", OPTS, ids=[repr(o[0]) for o in OPTS])
def test_optimizer_matches_torch(opt, torch_cls, kw, n_steps):
    arrays, state, tparams, topt = _run_both(opt, torch_cls, kw, n_steps, np.float64)
    for k, (a, tp) in enumerate(zip(arrays, tparams)):
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"array {k}")
        ts = topt.state[tp]
        assert state["step"][k] == (int(ts["step"]) if "step" in ts else n_steps)
        for key in TORCH_STATE & set(ts):
            if ts[key] is None:
                continue
            np.testing.assert_allclose(state[f"{key}.{k}"], ts[key].numpy(), rtol=RTOL,
                                       atol=ATOL, err_msg=f"state {key}.{k}")


@pytest.mark.parametrize("opt, torch_cls, kw", [OPTS[2], OPTS[5], OPTS[8]],
                         ids=["sgd", "adagrad", "adam"])
def test_optimizer_frozen_array_matches_torch_none_grad(opt, torch_cls, kw):
    arrays, state, tparams, _ = _run_both(opt, torch_cls, kw, 4, np.float64, [True, False, True])
    for a, tp in zip(arrays, tparams):
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert state["step"].tolist() == [4, 0, 4]


@pytest.mark.parametrize("opt, torch_cls, kw", [OPTS[3], OPTS[5], OPTS[8]],
                         ids=["sgd", "adagrad", "adam"])
def test_optimizer_float32_close_to_torch(opt, torch_cls, kw):
    arrays, _, tparams, _ = _run_both(opt, torch_cls, kw, 5, np.float32)
    for a, tp in zip(arrays, tparams):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
