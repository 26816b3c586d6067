r"""The layer-1 noise's dominant directions through ``W2``, integrated by cubature instead of
linearised (additive uncorrelated noise, the one-pass curve of
:mod:`refnet.propagation.moment_curve`).

Why. With noise ``xi ~ N(0, s I)`` after the first hidden layer, the second layer's
pre-activation is ``z2 = W2 (a1 + xi) + b2``. A trained ``W2`` has a few large singular values
(on the 3-epoch MNIST net of the benchmarks: 10.0, 9.3, 8.7, 7.9, 7.7, 6.8, 6.0, 5.1, 4.6,
then 1.6; nine directions for ten classes), so at ``s = 1`` the noise moves ``z2`` by a
standard deviation of up to 10 along those directions, across the whole of each sigmoid. The
curve's moment propagation keeps each neuron's mean and variance exactly (Gauss-Hermite) but
carries the shared part of the noise to the logits linearly and treats the logits as
Gaussian; there the logits are not Gaussian, and a Gaussian with Monte-Carlo's own logit
moments already misses Monte-Carlo's accuracy by 1.1 pp (MNIST, variance 1, measured).

What (derived; the only new approximation is the cubature). With ``W2 = U S V^T`` and the top
``k`` singular directions, ``t = V_k^T xi / sqrt(s) ~ N(0, I_k)`` is independent of the rest of
the noise, ``(I - V_k V_k^T) xi``, and

    ``z2 | t ~ N(W2 a1 + b2 + sqrt(s) U_k S_k t,  s W' W'^T)``,  ``W' = W2 - U_k S_k V_k^T``:

the same model with a shifted mean and the deflated Gram matrix (per-neuron variance
``s (q2 - (U_k o U_k) S_k^2)``, :func:`deflated_variance`), so the curve's own machinery gives
``P(argmax = y | t)``, and ``P(argmax = y) = E_t P(argmax = y | t)``. The expectation is taken
with a fifth-degree cubature rule (:func:`cubature_rule`: 3 points for one direction, 7 for
two). Per point the neurons' means (and so the logit means) are exact; the covariance of the
logit differences is the one at ``t = 0``, shared by the points (a second approximation,
measured with ``benchmarks/diag_shared_covariance.py`` against each point's own covariance:
by at most 0.09 pp on the benchmark's 3-epoch MNIST and Fashion-MNIST nets, by -0.30 to
+0.17 pp on the MNIST sweep's 10-epoch baselines; forming a covariance was about half of a
point's work). The first directions conditioned on are those whose standard
deviation in ``z2``, ``sqrt(s) sigma_i``, is at least :data:`MIN_SD` (= 3: a Gaussian of that
width spans the sigmoid's nonlinear range), at most :data:`MAX_DIRECTIONS` (= 2: seven
points; the nine-point rule of the general shape, used first, gave curves within 0.003
pp of the seven-point one on the benchmark nets, at 1.2x the cost). A third-degree rule (``2k``
points) was tried first and is not enough: on the small blobs net of the tests it moved the
curve away from Monte-Carlo. How the two numbers were chosen, and the errors and costs measured
around them (1 to 4 directions), is in the README.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .lowrank_cov import PPCAGram, ppca_gram

__all__ = ["MAX_DIRECTIONS", "MIN_SD", "cubature_rule", "conditioned_directions", "Deflation",
           "deflate", "deflated_variance", "conditioned_probability"]

Array = np.ndarray
#: At most this many directions are conditioned on (:func:`cubature_rule`'s points).
MAX_DIRECTIONS = 2
#: A direction is conditioned on when its standard deviation in z2 is at least this.
MIN_SD = 3.0


def cubature_rule(k: int) -> tuple[Array, Array]:
    """A fifth-degree rule for ``E f(t)``, ``t ~ N(0, I_k)``. Exact for every polynomial of
    degree <= 5, which ``tests/propagation/test_conditioned.py`` checks monomial by monomial.
    Returns points (m, k), weights (m,).

    * ``k = 2``: seven points, the origin (weight 1/2) and a regular hexagon of radius 2
      (weight 1/12 each). Derived: the hexagon's sums of ``cos^a sin^b`` equal six times the
      circle's averages for every ``a + b <= 5``, so with ``w_0 + 6 w = 1``, ``3 w r^2 = 1``
      (second moments) and ``(9/4) w r^4 = 3`` (fourth) every moment up to the fifth is
      matched: ``r^2 = 4``, ``w = 1/12``. (Radon's seven-point construction, the fewest
      points a fifth-degree rule in the plane needs; Stroud, *Approximate Calculation of
      Multiple Integrals*, Prentice-Hall 1971.)
    * other ``k``: ``2k^2 + 1`` points, the origin (weight ``2 / (k + 2)``), ``+-r e_i`` (weight
      ``(4 - k) / (2 (k + 2)^2)``) and ``+-r (e_i +- e_j) / sqrt(2)`` for ``i < j`` (weight
      ``1 / (k + 2)^2``), ``r = sqrt(k + 2)`` (the classical rule of this shape among Stroud's
      ``E_n^{r^2}`` rules, ibid.); points of weight 0 (the axes when k = 4) are left out. For
      ``k = 1`` it is the three-point Gauss-Hermite rule.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k: need at least one direction, got {k}")
    if k == 2:
        angle = np.arange(6) * (np.pi / 3.0)
        pts = np.concatenate([np.zeros((1, 2)),
                              2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)])
        return pts, np.array([0.5] + [1.0 / 12.0] * 6)
    r = np.sqrt(k + 2.0)
    pts, w = [np.zeros(k)], [2.0 / (k + 2)]
    eye = np.eye(k)
    for i in range(k):
        pts += [r * eye[i], -r * eye[i]]
        w += [(4.0 - k) / (2.0 * (k + 2) ** 2)] * 2
        for j in range(i + 1, k):
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                pts.append(r * (si * eye[i] + sj * eye[j]) / np.sqrt(2.0))
                w.append(1.0 / (k + 2) ** 2)
    pts, w = np.array(pts), np.array(w)
    keep = w != 0.0
    return pts[keep], w[keep]


def conditioned_directions(singular_values: Array, variance: float, *,
                           max_directions: int = MAX_DIRECTIONS, min_sd: float = MIN_SD) -> int:
    """How many top singular directions of ``W2`` to condition on at noise variance ``s``:
    those with ``sqrt(s) sigma_i >= min_sd``, at most ``max_directions`` (0: none)."""
    sd = np.sqrt(max(float(variance), 0.0)) * np.asarray(singular_values, dtype=float)
    return int(min(int(max_directions), np.count_nonzero(sd >= float(min_sd))))


class Deflation(NamedTuple):
    """``W2`` without its top ``k`` singular directions, in the forms the curve needs."""
    US: Array          # (n2, k)   U_k S_k: the mean shift is sqrt(s) US t
    q_drop: Array      # (n2,)     (U_k o U_k) S_k^2: the per-neuron variance removed (over s)
    W_rest: Array      # (n2, n1)  W' = W2 - U_k S_k V_k^T
    gram: PPCAGram | None   # rank-``gram_rank`` PPCA form of W' W'^T (None: keep it exact)


def deflate(svd: tuple, k: int, *, gram_rank: int | None) -> Deflation:
    """:class:`Deflation` from ``svd = (U, S, Vt)`` of ``W2`` (``U`` square). The PPCA form
    of ``W' W'^T`` comes from the same SVD: its singular vectors are ``U``'s columns ``k..``
    (then the top ``k``, now with singular value 0)."""
    U, S, Vt = svd
    k = int(k)
    US = U[:, :k] * S[:k]
    W_rest = (U[:, k:len(S)] * S[k:]) @ Vt[k:len(S)]
    gram = None
    if gram_rank is not None and gram_rank < U.shape[0]:
        U_perm = np.concatenate([U[:, k:], U[:, :k]], axis=1)
        S_perm = np.concatenate([S[k:], np.zeros(k)])
        gram = ppca_gram(W_rest, gram_rank, svd=(U_perm, S_perm, None))
    return Deflation(US, (U[:, :k] ** 2) @ (S[:k] ** 2), W_rest, gram)


def deflated_variance(variance: float, q2: Array, deflation: Deflation) -> Array:
    """The per-neuron variance of ``z2`` given ``t`` (n2,): ``s (q2 - (U_k o U_k) S_k^2)``,
    clipped at 0 (rounding can take a neuron carried wholly by the top directions below)."""
    return float(variance) * np.clip(q2 - deflation.q_drop, 0.0, None)


def conditioned_probability(variance: float, q2: Array, deflation: Deflation,
                            level_probability: Callable) -> tuple[Array, Array, Array]:
    """``E_t P(argmax = y | t)`` by :func:`cubature_rule` over the deflated directions.

    q2 (n2,) the per-neuron variance pattern of additive noise (``Var z2 = s q2``);
    ``level_probability(shift, var_z, deflation, share)`` the curve's conditional argmax
    probability of its inputs (B of them) given ``t``: their clean pre-activations ``z2``
    moved by ``shift = sqrt(s) U_k S_k t`` (n2,, the same for every input), per-neuron
    variance ``var_z`` (n2,), for a point whose weight is ``share`` times the rule's largest
    (so that it can spend its integration effort by weight), returning ``(p, tv, var)``,
    each (B,). Returns the weighted ``p`` and ``tv`` (a mixture moves by at most the weighted
    total variations) and a bound on the integration variance of the weighted ``p``,
    ``(sum_j w_j sd_j)^2`` (the points' rotated-QMC errors share their rotations, so they are
    not independent)."""
    s = float(variance)
    pts, w = cubature_rule(deflation.US.shape[1])
    var_z = deflated_variance(s, q2, deflation)
    p = tv = sd = 0.0
    for t, wj in zip(pts, w):
        pj, tvj, varj = level_probability(np.sqrt(s) * (deflation.US @ t), var_z, deflation,
                                          wj / w.max())
        p = p + wj * pj
        tv = tv + wj * tvj
        sd = sd + wj * np.sqrt(np.clip(varj, 0.0, None))
    return p, tv, sd * sd
