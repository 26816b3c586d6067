"""Duque et al.'s explainable regularizers: the equations, with hand-derived gradients.

Layer numbering follows the paper: ``W^(l)``, ``l = 1..L``, is ``params.W[l-1]``; ``l = 1`` is
the input weight matrix; ``z^(l)`` is the pre-activation of weight layer ``l``, i.e.
``cache.Zn[l-1]`` (the one fed to the activation, after any pre-activation noise). Biases are
never regularized (their gradients are zero here).
"""
from __future__ import annotations

import numpy as np

from ..activations import get_activation
from ..model import Architecture, Cache, Params
from .lambdas import layers_of, resolve_layer_lambdas

__all__ = ["row_sum_penalty", "row_sum_rows", "derivative_penalty", "weight_norm_penalty",
           "saturation_penalty"]

Array = np.ndarray


def full_grads(params: Params, grads: dict[int, Array]) -> Params:
    """``{l: dR/dW^(l)}`` of the penalised layers as a full :class:`Params`: zero arrays for
    every other weight and for every bias (no regularizer here penalises a bias)."""
    dW = [grads[l] if l in grads else np.zeros_like(W) for l, W in enumerate(params.W, start=1)]
    return Params(tuple(dW), tuple(np.zeros_like(b) for b in params.b))


def row_sum_rows(W: Array, lambda_l: float) -> tuple[float, Array]:
    """One layer of the row-sum penalty (Duque 2024, Eq. 4, p. 3): ``lambda_l sum_i |s_i|``
    with ``s_i = sum_j w_ij``, and its gradient, which is the same ``lambda_l sign(s_i)`` for
    every weight of row ``i``: returned once per row, shape ``(n_out,)``, in ``W``'s dtype."""
    s = W.sum(axis=1)  # s_i = sum_j w_ij, shape (n_out,)
    value = lambda_l * float(np.abs(s).sum())
    return value, (lambda_l * np.sign(s)).astype(W.dtype)


def row_sum_layers(params: Params, lam: dict[int, float], *,
                   views: bool = False) -> tuple[float, dict[int, Array]]:
    """:func:`row_sum_terms` with the gradients of the penalised layers only, ``{l: dR/dW^(l)}``
    (the trainer adds them to its gradients and skips the zero ones): each a fresh array
    shaped like ``W``, ``(n_out, n_in)``, or with ``views`` a read-only broadcast view of its
    row values (:func:`row_sum_rows`, stride 0 along the inputs), so no ``(n_out, n_in)``
    array is written: the trainer adds it row by row
    (:func:`refnet._model_kernels.add_row_values`)."""
    R = 0.0
    dW = {}
    for l, lambda_l in lam.items():
        W = params.W[l - 1]
        v, c = row_sum_rows(W, lambda_l)
        g = np.broadcast_to(c[:, None], W.shape)
        dW[l] = g if views else g.copy()
        R += v
    return R, dW


def row_sum_terms(params: Params, lam: dict[int, float]) -> tuple[float, Params]:
    """:func:`row_sum_penalty` for lambdas already resolved to ``{l: lambda}`` (trusted)."""
    R, grads = row_sum_layers(params, lam)
    return R, full_grads(params, grads)


def row_sum_penalty(params: Params, lambdas) -> tuple[float, Params]:
    """Row-sum penalty and its gradient (Duque 2024, Eq. 4, p. 3).

    ``R = sum_l lambda_l sum_i |sum_j w_ij^(l)|``, ``dR/dw_ij^(l) = lambda_l sign(s_i^(l))`` for
    every ``j``, with ``s_i^(l) = sum_j w_ij^(l)`` the row sum of neuron ``i``'s incoming weights.
    At ``s_i = 0`` the subgradient is taken as 0 (``sign(0) = 0``, as PyTorch's ``abs``): a row
    that already meets the zero-sum condition is left alone.

    Parameters
    ----------
    params : Params
        ``W[l-1]`` of shape ``(n_out, n_in)``.
    lambdas : {layer: lambda} or float
        Penalised layers (float: every layer ``l >= 2``, the paper's default).

    Returns
    -------
    value : float
    grads : Params
        ``dR/dW^(l)``, shape ``(n_out, n_in)``; zero for unpenalised layers and all biases.
    """
    return row_sum_terms(params, resolve_layer_lambdas(lambdas, len(params.W), "lambdas"))


def derivative_penalty(activation, z: Array, lam: float, reduction: str = "mean",
                       power: int = 1) -> tuple[float, Array]:
    """Derivative term of Eq. 7 for one layer: ``lambda red_b sum_i f'(z_bi)^p``.

    (Duque 2024, Eq. 7, p. 5), first term, with ``z = z^(l)``. The paper writes ``sum_i f'(z_i)``
    for one sample, inside a batch-mean loss (``reduction="mean"``); the authors' code sums over
    the batch (``"sum"``) and until late August 2024 used ``f'^2`` (``power=2``).

    Parameters
    ----------
    activation : str or Activation
        ``f``, with ``d1 = f'`` and ``d2 = f''``.
    z : ndarray, shape (n_batch, n_neurons)
        Pre-activations fed to ``f`` (``cache.Zn[l-1]``).
    lam : float
        ``lambda_l >= 0``.

    Returns
    -------
    value : float
    dR_dz : ndarray, shape (n_batch, n_neurons)
        ``lambda p f'(z)^{p-1} f''(z) / n`` with ``n = n_batch`` for the mean, 1 for the sum.
    """
    f = get_activation(activation)
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"z: expected shape (n_batch, n_neurons), got {z.shape}")
    n = z.shape[0] if reduction == "mean" else 1
    f1, f2 = f.d1_d2(z) if f.d1_d2 is not None else (f.d1(z), f.d2(z))
    if power == 1:
        return lam * float(f1.sum()) / n, (lam / n) * f2
    return lam * float((f1 * f1).sum()) / n, (2.0 * lam / n) * f1 * f2


def weight_norm_penalty(weight_matrix: Array, lam: float) -> tuple[float, Array]:
    """Weight term of Eq. 7 for one layer: ``lambda ||W||_F^2``, gradient ``2 lambda W``.

    (Duque 2024, Eq. 7, p. 5), second term. ``weight_matrix`` has shape ``(n_out, n_in)``.
    """
    W = weight_matrix
    return lam * float(np.sum(W * W)), (2.0 * lam) * W


def cached_preactivation(arch: Architecture, cache: Cache, l: int) -> Array:
    """``z^(l)`` from a forward cache, shape ``(n_batch, sizes[l])``, checked against ``arch``."""
    z = cache.Zn[l - 1]
    want = (cache.A[0].shape[0], arch.sizes[l])
    if z.shape != want:
        raise ValueError(f"cache: Zn[{l - 1}] has shape {z.shape}, expected {want}")
    return z


def saturation_penalty(arch: Architecture, params: Params, cache: Cache,
                       spec) -> tuple[float, Params, dict[int, Array]]:
    """Eq. 7 on a batch's forward pass (Duque 2024, Eq. 7, p. 5).

    ``spec`` is a :class:`refnet.regularizers.SaturationPenalty`. Returns
    ``(value, grads, dZ_extra)``: ``grads`` holds the weight terms ``2 lambda_l W^(l)`` (zero
    elsewhere and for biases); ``dZ_extra[l] = dR/dz^(l)`` of shape ``(n_batch, sizes[l])`` is
    the derivative term, for :func:`refnet.model.backward`.
    """
    R, grads, dZ_extra = saturation_layers(arch, params, cache, spec)
    return R, full_grads(params, grads), dZ_extra


def saturation_layers(arch: Architecture, params: Params, cache: Cache,
                      spec) -> tuple[float, dict[int, Array], dict[int, Array]]:
    """:func:`saturation_penalty` with the weight gradients of the penalised layers only,
    ``{l: 2 lambda_l W^(l)}`` (the trainer adds them and skips the zero ones)."""
    L = arch.n_layers
    R = 0.0
    dZ_extra = {}
    for l, lam in layers_of(spec.derivative_lambdas, L, "derivative_lambdas").items():
        z = cached_preactivation(arch, cache, l)
        v, dz = derivative_penalty(arch.activations[l - 1], z, lam, spec.reduction, spec.power)
        R += v
        dZ_extra[l] = dz
    dW = {}
    for l, lam in layers_of(spec.weight_lambdas, L, "weight_lambdas").items():
        v, dW[l] = weight_norm_penalty(params.W[l - 1], lam)
        R += v
    return R, dW, dZ_extra
