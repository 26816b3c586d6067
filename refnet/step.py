"""One training step, written once: the loss and every gradient for a batch and its noise draws.

:func:`loss_and_grad` is what :func:`refnet.train.train` computes for each batch, and what a
framework is checked against: given the batch, the labels and the standard-normal draws of
every noisy layer (:class:`refnet.noise.LayerNoise`, the same numbers the framework used), it
returns the data loss, its gradient, each regularizer's value and gradient separately and
the total. :func:`train_step` adds the optimizer update. Noise draws are either supplied
(``draws``: one entry per layer 0..L) or drawn from ``rng`` in :func:`refnet.model.forward`'s
order.

Objective (Duque 2024, Sec. 2): ``J = loss(y_hat, y) + sum_r R_r`` with the penalties of
(Duque 2024, Eq. 4, p. 3) and (Duque 2024, Eq. 7, p. 5); gradients by
:func:`refnet.model.backward` with the drawn noise held fixed (contract in :mod:`refnet.noise`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._model_kernels import add_row_values
from .losses import get_loss
from .model import Architecture, Cache, Params, backward, forward
from .noise import LayerNoise, NoiseConfig
from .regularizers import regularizer_value_and_grad
from .regularizers.combine import regularizer_layers

__all__ = ["LossAndGrad", "loss_and_grad", "train_step"]

Array = np.ndarray


@dataclass(frozen=True)
class LossAndGrad:
    """The objective of one batch and its gradients (all :class:`Params` shaped like params).

    ``loss``: data loss (batch mean); ``loss_grads``: its gradient. ``penalties[r]`` and
    ``penalty_grads[r]``: value and full gradient of ``regularizers[r]`` alone (for Eq. 7 this
    includes its derivative term backpropagated through the network). ``total`` = loss +
    penalties, ``grads`` its gradient (what the optimizer uses). ``output``: network output
    (n_batch, n_out); ``cache``: the forward pass, with ``cache.A[l]`` each layer's (noisy)
    output and ``cache.noise`` the draws used. With ``per_term=False`` the separate
    ``loss_grads`` and ``penalty_grads`` are ``None`` (one backward pass instead of one per
    term: the trainer's setting). When the objective is NaN or inf there is no gradient to
    take: ``grads`` (and the per-term gradients) are ``None``.
    """

    loss: float
    penalties: tuple[float, ...]
    grads: Params | None
    loss_grads: Params | None
    penalty_grads: tuple[Params, ...] | None
    output: Array
    cache: Cache

    @property
    def penalty(self) -> float:
        return float(sum(self.penalties))

    @property
    def total(self) -> float:
        return self.loss + self.penalty


def _add(a: Params, b: Params) -> Params:
    return Params(tuple(x + y for x, y in zip(a.W, b.W)), tuple(x + y for x, y in zip(a.b, b.b)))


def loss_and_grad(arch: Architecture, params: Params, X, y, *, noise: NoiseConfig | None = None,
                  draws: Sequence[LayerNoise | None] | None = None, rng=None,
                  regularizers=(), loss: str = "cross_entropy", per_term: bool = True,
                  check: bool = True, grads_out: Params | None = None) -> LossAndGrad:
    """Loss, penalties and all their gradients for batch ``X``, ``y`` and the given draws.

    Parameters
    ----------
    X : array (n_batch, sizes[0]);  y : int labels (n_batch,) or targets (n_batch, n_out)
    noise : NoiseConfig or None
        Where and how much noise.
    draws : sequence of LayerNoise or None, length L + 1
        The standard normals of each noisy layer (``None`` entries for clean layers); when
        ``None`` they are drawn from ``rng`` as :func:`refnet.model.forward` does.
    regularizers : sequence of RowSumPenalty / SaturationPenalty
        Added to the loss; each one's value and gradient is also reported on its own.
    loss : ``"cross_entropy"`` or ``"mse"``
    per_term : bool
        Also return the separate gradients of the loss and of each regularizer (one extra
        backward pass per Eq. 7 term); ``False`` computes the total gradient in one pass.
    check : bool
        Validate ``params`` and ``X`` (the trainer validates once and passes ``False``).
    grads_out : Params or None
        With ``per_term=False``: preallocated arrays that receive ``grads`` (the trainer's
        buffers, allocated once per run; see :func:`refnet.model.backward`'s ``out``).
    """
    loss_fn = get_loss(loss)
    regs = tuple(regularizers or ())
    out, cache = forward(arch, params, X, noise, rng, draws, check=check)
    value, d_out = loss_fn(out, y)
    # each regularizer: direct weight gradient + dR/dz of Eq. 7's derivative term; one pass
    # only needs the penalised layers' weight gradients (regularizer_layers: same sums)
    if per_term:
        terms = [regularizer_value_and_grad(arch, params, cache, r) for r in regs]
    else:
        terms = [regularizer_layers(arch, params, cache, r, views=True, check=check)
                 for r in regs]
    penalties = tuple(float(t[0]) for t in terms)
    if not math.isfinite(value + sum(penalties)):  # diverged: no backward pass through NaNs
        return LossAndGrad(float(value), penalties, None, None, None, out, cache)
    if not per_term:
        dZ_extra: dict[int, Array] = {}
        for _, _, extra in terms:
            for l, dz in extra.items():
                dZ_extra[l] = dZ_extra[l] + dz if l in dZ_extra else dz
        grads = backward(arch, params, cache, d_out, dZ_extra or None, out=grads_out)
        for _, direct, _ in terms:  # in place: backward's gradients are fresh or ours
            for l, r in direct.items():
                g = grads.W[l - 1]
                if r.strides[1] == 0:   # Eq. 4's gradient: one value per row, added as such
                    add_row_values(g, r[:, 0])
                else:
                    g += r
            for g in grads.b:   # the regularizers' zero bias gradient, added as before (a
                g += 0.0        # bias gradient is a column sum and may be -0: it becomes +0)
        return LossAndGrad(float(value), penalties, grads, None, None, out, cache)
    loss_grads = backward(arch, params, cache, d_out)
    penalty_grads = []
    for _, direct, extra in terms:
        g = direct
        if extra:  # backpropagate Eq. 7's derivative term alone (zero output gradient)
            g = _add(g, backward(arch, params, cache, np.zeros_like(out), extra))
        penalty_grads.append(g)
    grads = loss_grads
    for g in penalty_grads:
        grads = _add(grads, g)
    return LossAndGrad(float(value), penalties, grads, loss_grads, tuple(penalty_grads), out, cache)


def train_step(arch: Architecture, params: Params, X, y, *, optimizer, state: dict,
               noise: NoiseConfig | None = None, draws=None, rng=None, regularizers=(),
               loss: str = "cross_entropy", per_term: bool = False, check: bool = True):
    """One optimizer step on batch ``X``, ``y``: ``(new_params, new_state, LossAndGrad)``.

    ``optimizer`` is a :mod:`refnet.optim` optimizer and ``state`` its state
    (``optimizer.init(params.arrays())`` for the first step); biases are left alone when
    ``arch.train_biases`` is false. ``draws`` / ``rng`` / ``per_term`` as in
    :func:`loss_and_grad`. Neither ``params`` nor ``state`` is modified; when the objective
    is not finite (``res.grads is None``) no step is taken and both come back as they were.
    """
    res = loss_and_grad(arch, params, X, y, noise=noise, draws=draws, rng=rng,
                        regularizers=regularizers, loss=loss, per_term=per_term, check=check)
    if res.grads is None:
        return params, state, res
    trainable = [True, arch.train_biases] * arch.n_layers
    arrays, state = optimizer.step(params.arrays(), res.grads.arrays(), state, trainable=trainable)
    return Params.from_arrays(arrays), state, res
