r"""The noise-level objective: the cross-entropy expected under the hardware's noise, 2nd order.

Derived (docs/expected_loss.md): with clean logits ``y``, ``p = softmax(y)`` and a zero-mean
logit perturbation ``delta`` of covariance ``Sigma``,

    E[CE(y + delta)] ~ CE(y) + 1/2 tr(H Sigma),    H = d^2 CE / dy^2 = diag(p) - p p^T,

and ``Sigma = sum_l J_l S_l J_l^T`` propagates each noisy layer's noise covariance ``S_l``
(:func:`refnet.propagation.sensitivity.jacobian_times_noise`, all four noise types of
Semenova 2022, Eq. 3, p. 3) to the logits through the clean Jacobian ``J_l = dy/da_l``
(:func:`refnet.propagation.sensitivity.output_jacobians`), to first order in the noise.
The layers' noises are independent, so their covariances add.

=========================================  ==================================  ====================
quantity                                   function                            test
=========================================  ==================================  ====================
``H = diag(p) - p p^T``                    :func:`cross_entropy_hessian`       test_expected_loss.py
``1/2 tr(H Sigma)`` and its gradient       :func:`expected_loss_penalty`       test_expected_loss.py
``J = CE + 1/2 tr(H Sigma)`` and gradient  :func:`expected_loss`               test_expected_loss.py
=========================================  ==================================  ====================

The penalty follows the regularizers' protocol (:mod:`.combine`): it returns the direct weight
gradients and ``dZ_extra = {l: dR/dz_l}`` for :func:`refnet.model.backward`, so training with
it is ``TrainConfig(regularizers=(ExpectedLoss(noise),))``. Everything is batched over samples:
the per-sample Jacobians are ``(n_out, n_l)`` stacks multiplied as one GEMM, no Python loop
over samples.
"""
from __future__ import annotations

import numpy as np

from ..activations import get_activation
from ..errors import ConfigError
from ..losses import cross_entropy
from ..model import Architecture, Cache, Params, backward, forward
from ..propagation.sensitivity import jacobian_times_noise, output_jacobians

__all__ = ["cross_entropy_hessian", "softmax", "expected_loss_penalty", "expected_loss"]

Array = np.ndarray


def softmax(y: Array) -> Array:
    """``p = softmax(y)`` row by row, shape (n_batch, n_out) (max subtracted for stability)."""
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy_hessian(p: Array) -> Array:
    """``H = d^2 CE / dy^2 = diag(p) - p p^T`` per sample, (n_batch, n_out, n_out).

    Derived: ``dCE/dy = p - onehot(label)``, and ``dp/dy = diag(p) - p p^T``; the label drops
    out, so ``H`` depends on the logits only. ``p`` (n_batch, n_out) are the softmax outputs.
    """
    eye = np.eye(p.shape[1], dtype=p.dtype)
    return np.einsum("bi,ij->bij", p, eye) - p[:, :, None] * p[:, None, :]


def _noisy_layers(arch: Architecture, spec) -> tuple[int, ...]:
    return () if spec.noise.is_zero else spec.noise.resolved_layers(arch.n_layers)


def expected_loss_penalty(arch: Architecture, params: Params, cache: Cache,
                          spec) -> tuple[float, Params, dict[int, Array]]:
    """``R = 1/2 mean_b tr(H_b Sigma_b)`` on a clean forward pass, with its gradient.

    ``spec`` is a :class:`refnet.regularizers.ExpectedLoss`; ``cache`` comes from a clean
    :func:`refnet.model.forward` (the penalty is the noise's effect predicted from the clean
    network; a noisy cache is a :class:`ConfigError`). Returns ``(value, grads, dZ_extra)`` as
    the other regularizers: ``grads.W[k-1] = dR/dW_k`` through the Jacobians (biases zero), and
    ``dZ_extra[l] = dR/dz_l`` (n_batch, sizes[l]) for :func:`refnet.model.backward`.

    Gradient (derived in docs/expected_loss.md; bars are ``dR/d.`` per sample, then / n):

    * ``Gbar_l = H J_l S_l`` at each noisy layer (``S_l`` symmetric);
    * ``xbar_l = s_MU x (.) colsum(J_l (.) H J_l) + s_MC (H J_l)^T (J_l x)`` (``S_l`` depends
      on the layer's clean output ``x = a_l`` for multiplicative noise), into ``z_l`` via
      ``f_l'(z_l)``;
    * ``ybar = p (.) (pbar - p . pbar)`` with ``pbar = 1/2 diag(Sigma) - Sigma p`` (``H``
      depends on the logits), into ``z_L`` via ``f_L'(z_L)``;
    * back through ``J_{k-1} = J_k D_k W_k`` (``D_k = diag(f_k'(z_k))``), for ``k`` from the
      lowest noisy layer + 1 up to ``L``, with ``T = Gbar_{k-1} W_k^T``:
      ``dR/dW_k += sum_b D_k J_k^T Gbar_{k-1}``, ``dR/dz_k += f_k''(z_k) (.) rowsum(J_k (.) T)``,
      ``Gbar_k += T D_k``.
    """
    if cache.config is not None:
        raise ConfigError("cache: the expected-loss objective needs the clean forward pass; "
                          "do not combine it with noise-aware training (TrainConfig.noise)")
    L = arch.n_layers
    y = cache.A[-1]
    n_b = y.shape[0]
    layers = _noisy_layers(arch, spec)
    dW = [np.zeros_like(W) for W in params.W]
    zero_b = tuple(np.zeros_like(b) for b in params.b)
    if not layers or n_b == 0:
        return 0.0, Params(tuple(dW), zero_b), {}
    noise = spec.noise.spec
    p = softmax(y)
    H = cross_entropy_hessian(p)
    J = output_jacobians(arch, params, cache, layers[0])  # {l: (n_b, n_out, n_l)}
    Sigma = np.zeros_like(H)
    Gbar = {}
    xbar = {}
    for l in layers:
        x = cache.A[l]  # clean output of layer l (n_b, n_l): the noise point, "post"
        JS = jacobian_times_noise(J[l], x, noise)
        Sigma += JS @ J[l].transpose(0, 2, 1)
        Gbar[l] = H @ JS
        if noise.mul_unc or noise.mul_cor:
            HJ = H @ J[l]
            xbar[l] = (noise.mul_unc * x * np.einsum("bij,bij->bj", J[l], HJ)
                       + noise.mul_cor * (HJ.transpose(0, 2, 1) @ (J[l] @ x[:, :, None]))[..., 0])
    R = 0.5 * float(np.einsum("bij,bij->", H, Sigma)) / n_b
    scale = 1.0 / n_b  # batch mean
    dZ = {}

    def add_dz(l, v):
        dZ[l] = dZ[l] + v if l in dZ else v

    # back through the Jacobian recursion, from the lowest noisy layer up to L
    G_acc = Gbar.get(layers[0])
    for k in range(layers[0] + 1, L + 1):
        act = get_activation(arch.activations[k - 1])
        z = cache.Z[k - 1]
        d1 = act.d1(z)
        n_k = d1.shape[1]
        T = (G_acc.reshape(-1, G_acc.shape[2]) @ params.W[k - 1].T).reshape(n_b, -1, n_k)
        dW[k - 1] += scale * ((J[k] * d1[:, None, :]).reshape(-1, n_k).T
                              @ G_acc.reshape(-1, G_acc.shape[2]))
        add_dz(k, scale * act.d2(z) * np.einsum("bij,bij->bj", J[k], T))
        G_acc = T * d1[:, None, :]
        if k in Gbar:
            G_acc = G_acc + Gbar[k]
    for l, xb in xbar.items():
        if l > 0:  # the input has no parameters behind it
            add_dz(l, scale * xb * get_activation(arch.activations[l - 1]).d1(cache.Z[l - 1]))
    pbar = 0.5 * np.einsum("bii->bi", Sigma) - (Sigma @ p[:, :, None])[..., 0]
    ybar = p * (pbar - np.sum(p * pbar, axis=1, keepdims=True))
    add_dz(L, scale * ybar * get_activation(arch.activations[L - 1]).d1(cache.Z[L - 1]))
    return R, Params(tuple(dW), zero_b), dZ


def expected_loss(arch: Architecture, params: Params, X, y, spec) -> tuple[float, Params]:
    """``J = CE(y_clean, labels) + 1/2 tr(H Sigma)`` (batch mean) and its full gradient.

    ``X`` (n_batch, sizes[0]), ``y`` integer labels (n_batch,), ``spec`` an
    :class:`refnet.regularizers.ExpectedLoss`. Returns ``(J, grads)`` with ``grads`` of the
    shapes of ``params``: one clean forward pass, the penalty's terms, one backward pass.
    """
    out, cache = forward(arch, params, X)
    ce, d_out = cross_entropy(out, y)
    R, g, dZ = expected_loss_penalty(arch, params, cache, spec)
    back = backward(arch, params, cache, d_out, dZ)
    return ce + R, Params(tuple(a + b for a, b in zip(g.W, back.W)), back.b)
