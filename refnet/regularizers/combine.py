"""Regularizers combined: the trainer's one-pass value and gradient, and independent checks.

The trainer adds regularizers to the loss in one forward/backward pass:
``value, grads, dZ_extra = regularizer_value_and_grad(arch, params, cache, regs)``; the weight
terms are in ``grads``, and the Eq. 7 derivative term arrives as ``dZ_extra = {l: dR/dz^(l)}``
for :func:`refnet.model.backward`, which carries it through ``f''`` into ``W^(l)``, ``b^(l)``,
the previous activations and every earlier layer.
"""
from __future__ import annotations

import numpy as np

from ..activations import get_activation
from ..model import Architecture, Cache, Params, backward, check_params, forward
from .equations import cached_preactivation, full_grads, row_sum_layers, saturation_layers
from .expected_loss import cross_entropy_hessian, expected_loss_penalty, softmax
from .lambdas import layers_of
from .specs import SPEC_TYPES, ExpectedLoss, Regularizer, RowSumPenalty

__all__ = ["regularizer_value_and_grad", "regularizer_layers", "regularizer_value", "value",
           "value_and_grad"]

Array = np.ndarray


def _as_list(regs) -> list[Regularizer]:
    if regs is None:
        return []
    regs = [regs] if isinstance(regs, SPEC_TYPES) else list(regs)
    for r in regs:
        if not isinstance(r, SPEC_TYPES):
            raise TypeError(f"regs: expected RowSumPenalty, SaturationPenalty or ExpectedLoss, "
                            f"got {type(r).__name__}")
    return regs


def _need_cache(cache):
    if cache is None:
        raise ValueError("cache: SaturationPenalty needs the batch's forward cache")


def regularizer_value_and_grad(arch: Architecture, params: Params, cache: Cache | None,
                               regs) -> tuple[float, Params, dict[int, Array]]:
    """Total value of ``regs`` (one spec, a sequence, or ``None``) with its gradients.

    Returns ``(value, grads, dZ_extra)``: ``grads`` are the direct weight gradients (Eq. 4 and
    Eq. 7's weight terms), ``dZ_extra = {l: dR/dz^(l)}`` the pre-activation gradients of Eq. 7's
    derivative terms, to pass to ``backward(arch, params, cache, d_loss, dZ_extra)`` together
    with the loss gradient, then add ``grads``. ``cache`` (from :func:`refnet.model.forward` on
    the same batch and params) may be ``None`` when no spec needs it.
    """
    R, grads, dZ_extra = regularizer_layers(arch, params, cache, regs)
    return R, full_grads(params, grads), dZ_extra


def regularizer_layers(arch: Architecture, params: Params, cache: Cache | None,
                       regs, *, views: bool = False,
                       check: bool = True) -> tuple[float, dict[int, Array], dict[int, Array]]:
    """The sum of ``regs`` as the trainer takes it: ``(value, dW, dZ_extra)`` with
    ``dW = {l: dR/dW^(l)}`` holding only the layers some spec penalises (bias gradients are
    always zero and left out), so no zero arrays are allocated or added each batch;
    :func:`regularizer_value_and_grad` is this with the zeros filled in. With ``views`` a
    layer penalised by the row-sum penalty alone gets a read-only broadcast view of its
    values per row (:func:`~refnet.regularizers.equations.row_sum_layers`); ``check=False``
    skips the parameter check (the trainer checks once per run).

    Adding these to gradients from :func:`refnet.model.backward` gives the bits of adding
    :func:`regularizer_value_and_grad`'s full arrays: a weight gradient is a matrix product,
    whose sums start from +0 and so never end at -0, and ``x + 0 == x`` for every other
    ``x``; the value is summed in the same order.
    """
    if check:
        check_params(arch, params)
    R = 0.0
    dW: dict[int, Array] = {}
    dZ_extra: dict[int, Array] = {}
    for reg in _as_list(regs):
        if isinstance(reg, RowSumPenalty):
            v, g = row_sum_layers(params, layers_of(reg.lambdas, arch.n_layers, "lambdas"),
                                  views=views)
            extra = {}
        elif isinstance(reg, ExpectedLoss):
            _need_cache(cache)
            v, full, extra = expected_loss_penalty(arch, params, cache, reg)
            g = dict(enumerate(full.W, start=1))
        else:
            _need_cache(cache)
            v, g, extra = saturation_layers(arch, params, cache, reg)
        R += v
        for l, a in g.items():
            if l in dW:
                dW[l] = dW[l] + a   # a new array: the first may be a spec's own
            else:
                dW[l] = a
        for l, dz in extra.items():
            dZ_extra[l] = dZ_extra[l] + dz if l in dZ_extra else dz
    return R, dW, dZ_extra


def regularizer_value(arch: Architecture, params: Params, cache: Cache | None, regs) -> float:
    """Value of ``regs`` alone, written out again without any gradient (an independent check
    of :func:`regularizer_value_and_grad`, which the finite-difference tests differentiate)."""
    check_params(arch, params)
    R = 0.0
    L = arch.n_layers
    for reg in _as_list(regs):
        if isinstance(reg, RowSumPenalty):
            for l, lam in layers_of(reg.lambdas, L, "lambdas").items():
                R += lam * float(np.abs(params.W[l - 1].sum(axis=1)).sum())
            continue
        _need_cache(cache)
        if isinstance(reg, ExpectedLoss):
            R += _expected_loss_value(arch, params, cache, reg)
            continue
        for l, lam in layers_of(reg.derivative_lambdas, L, "derivative_lambdas").items():
            z = cached_preactivation(arch, cache, l)
            f1 = get_activation(arch.activations[l - 1]).d1(z)
            n = z.shape[0] if reg.reduction == "mean" else 1
            R += lam * float((f1 ** reg.power).sum()) / n
        for l, lam in layers_of(reg.weight_lambdas, L, "weight_lambdas").items():
            R += lam * float(np.sum(params.W[l - 1] ** 2))
    return R


def _expected_loss_value(arch, params, cache, reg) -> float:
    """``1/2 mean_b tr(H Sigma)`` with ``Sigma`` from the sensitivity report's covariance
    (:func:`refnet.propagation.sensitivity.output_variance_contributions`), not the trainer's."""
    from ..propagation.sensitivity import output_variance_contributions

    _, _, Sigma, _ = output_variance_contributions(arch, params, cache.A[0], reg.noise)
    H = cross_entropy_hessian(softmax(cache.A[-1]))
    return 0.5 * float(np.einsum("bij,bij->", H, Sigma)) / max(len(H), 1)


def value(arch: Architecture, params: Params, X, regs, noise=None, rng=None, draws=None) -> float:
    """Value of ``regs`` on batch ``X`` (runs :func:`refnet.model.forward` itself)."""
    _, cache = forward(arch, params, X, noise, rng, draws)
    return regularizer_value(arch, params, cache, regs)


def value_and_grad(arch: Architecture, params: Params, X, regs, noise=None, rng=None,
                   draws=None) -> tuple[float, Params]:
    """Value of ``regs`` on batch ``X`` and its full gradient with respect to ``params``.

    Runs the forward pass (``noise``, ``rng``, ``draws`` as in :func:`refnet.model.forward`),
    then backpropagates Eq. 7's ``dR/dz`` with a zero output gradient. For tests and finite
    differences; the trainer uses :func:`regularizer_value_and_grad` inside its own pass.
    """
    out, cache = forward(arch, params, X, noise, rng, draws)
    R, g, dZ_extra = regularizer_value_and_grad(arch, params, cache, regs)
    if not dZ_extra:
        return R, g
    back = backward(arch, params, cache, np.zeros_like(out), dZ_extra)
    return R, Params(tuple(a + b for a, b in zip(g.W, back.W)),
                     tuple(a + b for a, b in zip(g.b, back.b)))
