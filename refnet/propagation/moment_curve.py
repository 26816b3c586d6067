r"""The predicted accuracy vs variance curve of :mod:`refnet.propagation.moments` in one pass.

:func:`refnet.propagation.moments.predicted_accuracy_curve` with ``method="full"`` propagates
every variance separately. For the placement the sweep ranks with (noise after both hidden
activations of a 3-layer net with a linear output, the Duque placement) most of that work does
not depend on the variance, and most inputs are decided long before the Gaussian argmax
integral is needed. This module shares that work over the whole curve (derived; no new
approximation of the noise model, only numerical ones, each with its bound):

* **Shared clean work.** The first hidden layer is clean (noise acts after it), so ``a1``, the
  second layer's mean pre-activation ``W2 a1 + b2`` and the per-neuron variance pattern
  ``q2 = (W2 o W2) g1`` (``g1 = 1`` for additive, ``a1^2`` for multiplicative noise; the
  variance is ``s q2``, Semenova 2022, Eq. 19, p. 9, per neuron) are computed once.
* **Uncorrelated noise: settled inputs.** With ``D_k = Y_y - Y_k`` and the exact output
  covariance ``W3 diag(v2) W3^T + s (W3 D W2) diag(g1) (W3 D W2)^T`` of
  :mod:`~refnet.propagation.moment_steps`, the costly second term (a ``10 x 300 x 300``
  product per input and variance) is bounded through a rank-``r`` split of ``W2`` (its top
  singular directions exactly, the rest by ``sigma_{r+1}``;
  :class:`~refnet.propagation.settle_bounds.DenseBound`), which bounds every ``sd D_k`` from
  above at ``2 r / 300`` of the cost. Then (Boole's inequality and
  ``Phi`` monotone) ``1 - sum_k Phi(-E D_k / sd_k) <= P(argmax = y)`` when all ``E D_k > 0``,
  and ``P <= Phi(E D_k / sd_k)`` for any ``E D_k < 0``. An input whose bound leaves less than
  ``settle_tol`` (default 1e-4) open takes the bound interval's midpoint (error
  ``<= settle_tol / 2`` per input, so on the mean). In the same way the classes whose bounds
  ``P(D_k <= 0)`` sum to at most ``settle_tol`` leave the argmax integral of the other inputs
  (``P`` over the kept classes minus half the dropped sum: error ``<= settle_tol / 2``), whose
  exact covariance is then formed over the kept differences only (``(m x 300) x 300`` per
  input, in float32 with a stated rounding bound, instead of ``10 x 300 x 300``) and
  integrated on ``m`` dimensions (:func:`_kept_probability`). For additive noise
  ``W2 W2^T`` there is its rank-``GRAM_RANK`` probabilistic-PCA form
  (:mod:`~refnet.propagation.lowrank_cov`: ``m n2 r`` per input instead of ``m n2 n1``), with
  a rigorous total-variation bound on each input's change (``settings["lowrank_tv_bound"]``,
  the level means; loose: on the 784-300-300-10 benchmark nets at most 1.6 pp where the
  measured change of the mean is below 0.002 pp).
* **Uncorrelated noise: Gauss-Hermite nodes per variance.** Each variance uses the fewest
  nodes (of 4, 6, 8, 12, 16, 24, at most ``hermite_nodes``) whose activation moments
  (:func:`~refnet.propagation.neuron_moments.gauss_hermite_activation_moments`) are within
  ``1e-9`` of a 96-node rule at every mean in ``[-30, 30]`` and variance up to that layer's
  largest (:func:`hermite_nodes_for_variance`; checked numerically, cached).
* **Additive uncorrelated noise: the dominant directions of W2 by cubature.** Where the
  noise along ``W2``'s largest singular directions is wide (``sqrt(s) sigma_i >= 3``), the
  inputs still open condition on up to ``directions`` (default 2) of them and average the
  conditional probabilities over a fifth-degree cubature rule, instead of carrying that part
  of the noise to the logits linearly (:mod:`~refnet.propagation.conditioned`, where the
  derivation is); ``directions=0`` turns it off (then the curve is ``method="full"``'s). The
  points share one covariance of the logit differences, formed at the unshifted mean; each
  point takes its own logit means (its sigmoid neurons' Gauss-Hermite means at the shifted
  mean, read from one table per neuron, :func:`sigmoid_mean_table`) and its own settling,
  and integrates the argmax on rotated points in proportion to its weight
  (:func:`_conditional_level`).
* **Correlated noise: one grid over the shared draw** (:mod:`~refnet.propagation.correlated_curve`).

Anything else (other placements, depths or mixed sources) runs ``method="full"``.
Agreement with ``method="full"`` and with Monte-Carlo: ``tests/propagation/test_moment_curve.py``;
costs: ``benchmarks/bench_moments.py``.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.special import ndtr

from ..activations import get_activation
from ..noise import NoiseConfig
from ._curve_kernels import hermite_level, hermite_sums, neuron_table_means, output_variances
from .conditioned import (MAX_DIRECTIONS, conditioned_directions, conditioned_probability,
                          cubature_rule, deflate, deflated_variance)
from .correlated_curve import GRID_POINTS, correlated_curve, rank_one_shared_slope  # noqa: F401
from .gaussian_argmax import orthant_probability_and_variance, other_classes, z_scores
from .lowrank_cov import (class_forms, class_projector, lowrank_kept_covariance,
                          lowrank_kept_probability, ppca_gram, total_variation_bound)
from .neuron_moments import gauss_hermite_activation_moments, hermite_rule
from .settle_bounds import (SIGMOID_D4_MAX, CleanSettleBound, DenseBound, pair_diagonal,
                            pair_forms)

__all__ = ["fast_path", "hermite_nodes_for_variance", "sigmoid_hermite_moments",
           "rank_one_shared_slope",
           "correlated_curve", "uncorrelated_curve", "HERMITE_TOL", "SETTLE_TOL", "GRID_POINTS"]

Array = np.ndarray
#: Largest allowed error of a neuron's Gauss-Hermite moments when fewer nodes are used.
HERMITE_TOL = 1e-9
#: Largest open width of a settled input's argmax probability (error <= half of it).
SETTLE_TOL = 1e-4
#: log2 of the Sobol points per input of the rotated (randomized QMC) argmax integral.
ROTATED_LOG2_POINTS = 4
#: Seed of the per-input rotations (fixed: the curve is deterministic).
ROTATION_SEED = 20240
#: Rank of the probabilistic-PCA form of ``W2 W2^T`` for additive uncorrelated noise.
GRAM_RANK = 32
_NODE_CHOICES = (4, 6, 8, 12, 16, 24)


def fast_path(arch, cfg: NoiseConfig, noise_type: str) -> str | None:
    """``"correlated"`` or ``"uncorrelated"`` when the one-pass curve applies, else None:
    3 weight layers, noise after both hidden activations (nonlinear), a linear output."""
    L = arch.n_layers
    if L != 3 or cfg.position != "post" or cfg.resolved_layers(L) != (1, 2):
        return None
    acts = [get_activation(a).spec for a in arch.activations]
    if acts[2] != "identity" or "identity" in acts[:2]:
        return None
    return "correlated" if noise_type in ("add_cor", "mul_cor") else "uncorrelated"


# --- Gauss-Hermite nodes per variance ------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _nodes_for_bucket(activation: str, log2_var_x2: int, max_nodes: int, tol: float) -> int:
    v_top = 2.0 ** (log2_var_x2 / 2.0)
    mu = np.linspace(-30.0, 30.0, 241)[:, None]
    var = v_top * 2.0 ** (-np.arange(0, 13) / 2.0)[None, :]
    mu, var = np.broadcast_arrays(mu, var)
    ref = gauss_hermite_activation_moments(activation, mu, var, n_nodes=96)
    for n in _NODE_CHOICES:
        if n >= max_nodes:
            break
        got = gauss_hermite_activation_moments(activation, mu, var, n_nodes=n)
        if max(np.abs(a - b).max() for a, b in zip(got, ref)) <= tol:
            return n
    return max_nodes


def hermite_nodes_for_variance(activation: str, max_variance: float, *, max_nodes: int = 24,
                               tol: float = HERMITE_TOL) -> int:
    """Fewest Gauss-Hermite nodes (of 4, 6, 8, 12, 16, 24) below ``max_nodes`` whose moments
    ``E f, E f^2, E f'`` are within ``tol`` of a 96-node rule for every mean in [-30, 30] and
    every variance in ``(0, V]``, ``V >= max_variance`` rounded up to a power of sqrt(2) and
    checked at 13 variances down to ``V / 64`` (the error falls with the variance; random
    means and variances off this grid are tested); ``max_nodes`` itself (the full method's
    rule) when none is."""
    if max_variance <= 0:
        return min(_NODE_CHOICES[0], int(max_nodes))
    k = int(np.ceil(2.0 * np.log2(max_variance)))
    return _nodes_for_bucket(get_activation(activation).spec, k, int(max_nodes), float(tol))


def sigmoid_hermite_moments(mean: Array, sd: Array, n_nodes: int, *, block_rows: int = 256
                            ) -> tuple[Array, Array, Array]:
    """``(E s(z), E s(z)^2, E s'(z))`` for the sigmoid ``s``, z ~ N(mean, sd^2): the
    Gauss-Hermite sums of
    :func:`~refnet.propagation.neuron_moments.gauss_hermite_activation_moments` with fewer
    exponentials. ``s(mean + sd x) = 1 / (1 + E c)`` with ``E = exp(-mean)`` (once)
    and ``c = exp(-sd x)``; the rule's nodes come in pairs ``+-x``, so one ``c`` serves both
    (``1 / (1 + E / c)``), and when ``sd`` is one row shared by all inputs (additive noise)
    ``c`` costs nothing per input. Agrees with the generic sums to rounding (tested).

    mean (B, n); sd (n,) or (B, n), with ``sd x`` clipped at 700 (exp stays finite; the
    sigmoid there is saturated for any ``|mean| < 660``). Runs on blocks of ``block_rows``
    rows so that the working arrays stay in cache (elementwise: the same bits).
    """
    m1, m2, d = np.empty_like(mean), np.empty_like(mean), np.empty_like(mean)
    for i in range(0, len(mean), block_rows):
        rows = slice(i, i + block_rows)
        m1[rows], m2[rows], d[rows] = _sigmoid_hermite_block(
            mean[rows], sd if np.ndim(sd) == 1 else sd[rows], n_nodes)
    return m1, m2, d


def _sigmoid_hermite_block(mean: Array, sd: Array, n_nodes: int) -> tuple[Array, Array, Array]:
    """:func:`sigmoid_hermite_moments` on one block of rows: NumPy's (vectorized) ``exp`` for
    ``E`` and the ``c`` of every positive node, then one pass of
    :func:`~refnet.propagation._curve_kernels.hermite_sums` over the nodes."""
    E, C, w_pos, w0 = _sigmoid_hermite_factors(mean, sd, n_nodes)
    m1, m2 = np.empty_like(mean), np.empty_like(mean)
    hermite_sums(E, C, w_pos, w0, m1, m2)
    return m1, m2, m1 - m2


def _sigmoid_hermite_factors(mean: Array, sd: Array, n_nodes: int):
    """``E = exp(-mean)`` (B, n), ``C = exp(-sd x_k)`` of the positive nodes (half, 1 or B,
    n), their weights and the middle node's weight (None for an even rule)."""
    x, w = hermite_rule(int(n_nodes))
    half = len(x) // 2
    with np.errstate(over="ignore"):
        E = np.exp(-mean)
        xs = x[len(x) - half:]                                     # the positive nodes
        sdx = sd[None] * xs.reshape((-1,) + (1,) * np.ndim(sd))
        C = np.exp(-np.minimum(sdx, 700.0))                        # (half, n) or (half, B, n)
    return (E, C.reshape(half, -1, mean.shape[1]), w[len(x) - half:],
            float(w[half]) if len(x) % 2 else None)


def _level_moments(act: str, n_nodes: int, mean: Array, var_z: Array, s: float, *, mul: bool,
                   block_rows: int = 256) -> tuple[Array, Array, Array]:
    """``(E f, E f', v2)`` per neuron, z ~ N(mean, var_z), by the level's Gauss-Hermite rule,
    with ``v2`` the neuron's own output variance of
    :func:`~refnet.propagation._curve_kernels.output_variances` (layer-2 noise ``s``). For
    the sigmoid: :func:`sigmoid_hermite_moments`' sums in the fused kernel
    :func:`~refnet.propagation._curve_kernels.hermite_level`, blocks of ``block_rows`` rows
    (the same bits as sums, then ``m1 - m2``, then ``output_variances``). mean (B, n); var_z
    (n,) or (B, n)."""
    sd = np.sqrt(var_z)
    if get_activation(act).spec != "sigmoid":   # (sd^2: the variance this path always took)
        m1, m2, d = gauss_hermite_activation_moments(act, mean, sd * sd, n_nodes=n_nodes)
        return m1, d, output_variances(m1, m2, d, var_z, s, mul=mul)
    m1, d, v2 = np.empty_like(mean), np.empty_like(mean), np.empty_like(mean)
    for i in range(0, len(mean), block_rows):
        rows = slice(i, i + block_rows)
        vz, sdr = (var_z, sd) if np.ndim(var_z) == 1 else (var_z[rows], sd[rows])
        E, C, w_pos, w0 = _sigmoid_hermite_factors(mean[rows], sdr, n_nodes)
        hermite_level(E, C, w_pos, w0, np.reshape(vz, (-1, mean.shape[1])), s, mul,
                      m1[rows], d[rows], v2[rows])
    return m1, d, v2


# --- uncorrelated noise: settled inputs skip the dense propagation ---------------------------
def _settle_rules(z: Array, tol: float, labels: Array | None = None
                  ) -> tuple[Array, Array, Array, Array]:
    """The settle rules on standardised differences ``z`` (B, m), ``z_k`` a lower bound of
    ``E D_k / sd D_k`` (``labels``: the rows' label columns, always kept and never counted):
    ``P(all D_k > 0) <= min_k Phi(z_k)``, so a row whose bound is at most ``tol`` is lost and
    takes half of it; differences whose ``P(D_k <= 0) <= Phi(-z_k)`` sum (ascending) to at
    most ``tol`` leave the integral, which takes half their sum off. Either way the error is
    at most ``tol / 2``. Returns ``p`` (B,) for the settled rows, which rows are lost, which
    columns are kept (B, m) and the dropped bounds' sum (B,)."""
    right_up = ndtr(z).min(axis=1)                 # P(right) <= this
    lost = right_up <= tol
    tails = ndtr(-z)
    if labels is not None:
        tails[np.arange(len(z)), labels] = np.inf  # the label always stays
    order = np.argsort(tails, axis=1)
    sorted_tails = np.take_along_axis(tails, order, axis=1)
    drop_sorted = np.cumsum(sorted_tails, axis=1) <= tol
    kept = np.ones_like(tails, dtype=bool)
    np.put_along_axis(kept, order, ~drop_sorted, axis=1)
    dropped = np.where(drop_sorted, sorted_tails, 0.0).sum(axis=1)
    return np.where(lost, 0.5 * right_up, 1.0 - 0.5 * dropped), lost, kept, dropped


def _dense_kept_covariance(v2, d, g1, s, W2, W3, y, S, *, uniform: bool):
    """Covariance (n, m, m) of the differences ``D_k = Y_y - Y_k``, k the columns of ``S``
    (n, m): ``A diag(v2) A^T + s (A D W2) diag(g1) (A D W2)^T`` with ``A`` the rows
    ``W3[y] - W3[k]``. ``E = (A D) W2`` is the one large product; it and the Gram matrix
    ``E diag(g1) E^T`` run in float32 (each within ``n u32`` of the absolute values'
    product, ``n u32 <= 2e-5`` for 300 neurons: Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., SIAM 2002, Sec. 3.5), formed from the differences so that no
    variance is a float32 cancellation. ``uniform``: ``g1`` is all ones (additive noise)."""
    A = W3[y][:, None, :] - W3[S]                                  # (n, m, n2)
    m = S.shape[1]
    E = ((A * d[:, None, :]).astype(np.float32).reshape(-1, W2.shape[0])
         @ W2.astype(np.float32)).reshape(len(y), m, -1)           # (n, m, n1), float32
    Eg = E if uniform else E * g1[:, None, :].astype(np.float32)
    cov = s * (Eg @ E.transpose(0, 2, 1)).astype(np.float64)
    cov += (A * v2[:, None, :]) @ A.transpose(0, 2, 1)
    return cov


def _kept_probability(mu, v2, d, g1, s, W2, W3, y, kept, log2_points, *, uniform: bool,
                      shifts=None, chunk_elems=1 << 22):
    """``P(argmax = y)`` over the kept classes only, from the exact covariance of the
    differences (:func:`_dense_kept_covariance`). Returns (B,) and the integration variance
    of :func:`~refnet.propagation.gaussian_argmax.orthant_probability_and_variance` (B,)."""
    B, K = mu.shape
    p, var = np.empty(B), np.empty(B)
    m_of = kept.sum(axis=1) - 1                                # kept classes besides the label
    for m in np.unique(m_of):
        idx = np.flatnonzero(m_of == m)
        others = np.where(kept[idx], np.arange(K), K)
        others[np.arange(len(idx)), y[idx]] = K
        S = np.sort(others, axis=1)[:, :m]                     # (n, m) kept non-labels
        step = max(1, chunk_elems // (int(m) * W2.shape[1]))
        for i in range(0, len(idx), step):
            b, Sb = idx[i:i + step], S[i:i + step]
            cov = _dense_kept_covariance(v2[b], d[b], None if uniform else g1[b], s, W2, W3,
                                         y[b], Sb, uniform=uniform)
            md = mu[b, y[b]][:, None] - np.take_along_axis(mu[b], Sb, axis=1)
            p[b], var[b] = orthant_probability_and_variance(
                md, cov, log2_points=log2_points, shifts=None if shifts is None else shifts[b])
    return p, var


def _settle(mu, v2, d, s, y, bound, *, rows, settle_tol):
    """The level's bounds (module docstring) on the argmax probability of each input: settled
    inputs get their bound interval's midpoint, the classes whose bounds sum to at most
    ``settle_tol`` leave the integral. mu (B, K) logit means, v2 (B, n2) and d (B, n2) the
    neurons' own variances and slopes, ``bound`` the :class:`DenseBound` of the ``W2`` the
    noise goes through (``rows``: these inputs' rows of it). Returns ``p`` (B,), ``rest``
    (B,) the inputs still open, ``kept`` (B, K), the dropped bounds' sum (B,) and the class
    forms ``Qv``, ``Qd`` (B, K, K) of ``v2`` and ``d^2``."""
    W3 = bound.W3
    r = np.arange(len(mu))
    md = mu[r, y][:, None] - mu                    # E D_k, (B, K); 0 at k = y
    Qv, Qd = class_forms(v2, W3), class_forms(d * d, W3)   # reused by the low-rank path
    sd_up = np.sqrt(np.clip(pair_diagonal(Qv, y), 0.0, None)
                    + s * bound.squared(d, y, pair_diagonal(Qd, y), rows=rows))
    z = z_scores(md, sd_up)
    z[r, y] = np.inf
    p, lost, kept, dropped = _settle_rules(z, settle_tol, labels=y)
    return p, ~lost & (kept.sum(axis=1) > 1), kept, dropped, Qv, Qd


def mean_table_knots(lo: Array, hi: Array, *, tol: float = HERMITE_TOL) -> int:
    """How many knots per neuron :func:`sigmoid_mean_table` takes for ``[lo, hi]`` (n,):
    enough that no step exceeds ``(384 tol / sup |s^(4)|)^(1/4)``, at least 2."""
    steps = float(np.max(hi - lo, initial=0.0)) / (384.0 * tol / SIGMOID_D4_MAX) ** 0.25
    if not steps < 2.0 ** 52:   # inf or NaN included: more than any table could hold
        return 2 ** 62
    return max(2, int(np.ceil(steps)) + 1)


def sigmoid_mean_table(lo: Array, hi: Array, var_z: Array, n_nodes: int, *,
                       tol: float = HERMITE_TOL) -> tuple[Array, Array, Array, Array]:
    """Each sigmoid neuron's mean ``h_j(mu) = E s(mu + sqrt(var_z_j) x)`` as a table on
    ``[lo_j, hi_j]`` (n,) for :func:`~refnet.propagation._curve_kernels.neuron_table_means`:
    ``(lo, step, values, slopes)``, the values ``h_j`` and slopes ``h_j' = E s'`` at
    ``N`` knots per neuron (n, N) by :func:`sigmoid_hermite_moments` with ``n_nodes``.
    Cubic Hermite interpolation errs by at most ``step^4 / 384 sup |h^(4)|`` (de Boor 1978,
    Ch. IV), and ``sup |h^(4)| <= sup |s^(4)|`` (:data:`~refnet.propagation.settle_bounds.
    SIGMOID_D4_MAX`: ``h^(4)`` is an average of ``s^(4)``), so the steps are at most
    ``(384 tol / sup |s^(4)|)^(1/4)`` (0.042 for ``tol = 1e-9``): the interpolated means are
    within ``tol`` of the Gauss-Hermite sums, whose own error is that of ``n_nodes``."""
    width = hi - lo
    n_knots = mean_table_knots(lo, hi, tol=tol)
    step = np.where(width > 0, width / (n_knots - 1), 1.0)
    knots = lo + step * np.arange(n_knots)[:, None]               # (N, n)
    m1, _, d = sigmoid_hermite_moments(knots, np.sqrt(var_z), n_nodes)
    return lo, step, np.ascontiguousarray(m1.T), np.ascontiguousarray(d.T)


def _conditional_level(s, W3, b3, y, z2, var_z, deflation, n_pts, shifts, moments, *,
                       table_nodes: int | None = None, settle_tol=SETTLE_TOL,
                       chunk_elems=1 << 22):
    """``level_probability`` of :func:`~refnet.propagation.conditioned.
    conditioned_probability` for additive noise, with one covariance of the logit
    differences shared by the cubature points (the one approximation beyond the level's own:
    see :mod:`~refnet.propagation.conditioned`): formed once, from the neurons' moments at the
    unshifted mean ``z2`` (B, n2) and the deflated variances ``var_z`` (n2,), through the
    deflated ``W2`` (its PPCA form when it has one, whose total-variation bound, taken on
    all the differences, bounds every marginal the points integrate). A point computes only
    its neurons' means at its shifted mean, the logit means, and then, with the shared
    covariance's own standard deviations, the level's settle rules
    (:func:`_settled_orthant`): it cannot move more than ``settle_tol / 2`` by them.
    ``table_nodes`` (sigmoid neurons): the points' means come from one table per neuron
    (:func:`sigmoid_mean_table`, that many Gauss-Hermite nodes) over the range of every
    point's shifted means, instead of a Gauss-Hermite sum per point. Returns
    ``level(shift, var_z, deflation, share) -> (p, tv, var)``, each (B,); after the call for
    the rule's heaviest point (its origin, ``share = 1``), ``level.origin`` holds which rows
    it integrated and how many classes each kept there (the label included), for the curve's
    diagnostics."""
    K = W3.shape[0]
    others = other_classes(y, K)                               # (B, K - 1)
    _, d, v2 = moments(z2, var_z, s, mul=False)
    if deflation.gram is None:
        step = max(1, chunk_elems // ((K - 1) * deflation.W_rest.shape[1]))
        cov = np.concatenate([_dense_kept_covariance(
            v2[i:i + step], d[i:i + step], None, s, deflation.W_rest, W3, y[i:i + step],
            others[i:i + step], uniform=True) for i in range(0, max(len(y), 1), step)])
        tv = np.zeros(len(y))
    else:
        R = (d @ class_projector(W3, deflation.gram.U_r)).reshape(len(y), K, -1)
        cov, C_perp = lowrank_kept_covariance(class_forms(v2, W3), class_forms(d * d, W3), R,
                                              s, deflation.gram, y, others)
        tv = total_variation_bound(cov, C_perp, s, deflation.gram.eta)
    sd = np.sqrt(np.clip(np.einsum("nkk->nk", cov), 0.0, None))
    rows = np.arange(len(y))
    table = None
    if table_nodes is not None:   # the sigmoid's means at every point, from one table
        # the shifts conditioned_probability hands the points, computed as it does, so that
        # every mean a point asks for lies in its neuron's range (rounding is monotone)
        moved = [np.sqrt(s) * (deflation.US @ t) for t in cubature_rule(deflation.US.shape[1])[0]]
        lo = np.min([z2.min(axis=0) + sh for sh in moved], axis=0)
        hi = np.max([z2.max(axis=0) + sh for sh in moved], axis=0)
        # a table longer than the means it serves saves nothing, and pre-activations spread
        # over 1e5 (diverged weights) would ask for gigabytes of knots: then the sums
        if mean_table_knots(lo, hi) <= len(z2) * len(moved):
            table = sigmoid_mean_table(lo, hi, var_z, table_nodes)
            z2T = np.ascontiguousarray(z2.T)

    def level(shift, var_t, deflation_t, share=1.0):
        if deflation_t is not deflation or not np.array_equal(var_t, var_z):
            raise ValueError("this level's covariance is that of another deflation")
        if table is None:
            mu = moments(z2 + shift, var_z, s, mul=False)[0] @ W3.T + b3
        else:   # neuron-major (n2, B): each neuron's table stays in cache
            mu = (W3 @ neuron_table_means(*table, z2T, shift, np.empty_like(z2T))).T + b3
        md = mu[rows, y][:, None] - np.take_along_axis(mu, others, axis=1)
        # rotated points: 2**n_pts times the point's share of the largest weight, rounded up
        # to a power of two (at least 2): points in proportion to the weights minimise the
        # weighted sum of the points' integration variances for a given total. The fixed
        # rule keeps its points (its error is a bias, which fewer points would not average)
        n = n_pts if shifts is None else max(1, n_pts - int(np.floor(np.log2(1.0 / share))))
        p, var, open_, n_kept = _settled_orthant(md, cov, sd, shifts, n, settle_tol)
        if share == 1.0:   # the rule's heaviest point, its origin: the level's diagnostics
            level.origin = (open_, n_kept + 1)
        return p, tv, var
    return level


def _settled_orthant(md, cov, sd, shifts, log2_points, settle_tol):
    """``P(D > 0)`` for ``D ~ N(md, cov)`` per row (md (B, m), cov (B, m, m), ``sd`` its
    diagonal's roots), with :func:`_settle_rules` on the exact marginals, the rows and
    differences they leave integrated. Returns ``p``, the integration variance, which rows
    were integrated and how many differences each kept, each (B,)."""
    p, lost, kept, dropped = _settle_rules(z_scores(md, sd), settle_tol)
    var = np.zeros(len(md))
    m_of = kept.sum(axis=1)
    open_ = ~lost & (m_of > 0)
    for m in np.unique(m_of[open_]):
        idx = np.flatnonzero(open_ & (m_of == m))
        S = np.sort(np.where(kept[idx], np.arange(md.shape[1]), md.shape[1]), axis=1)[:, :m]
        C = cov[idx[:, None, None], S[:, :, None], S[:, None, :]]
        pk, var[idx] = orthant_probability_and_variance(
            np.take_along_axis(md[idx], S, axis=1), C, log2_points=log2_points,
            shifts=None if shifts is None else shifts[idx])
        p[idx] = pk - 0.5 * dropped[idx]
    return p, var, open_, m_of


def uncorrelated_curve(arch, params, a1: Array, y: Array, noise_type: str, variances: Array, *,
                       hermite_nodes: int = 24, log2_points: int = 7,
                       settle_tol: float = SETTLE_TOL, gram_rank: int | None = GRAM_RANK,
                       rotated_log2_points: int | None = ROTATED_LOG2_POINTS,
                       directions: int = MAX_DIRECTIONS) -> tuple[Array, dict]:
    """Per-input ``P(argmax = label)`` (n_levels, B) for add_unc or mul_unc after both hidden
    layers, and per-level diagnostics (Gauss-Hermite nodes, fraction of settled inputs, mean
    number of classes kept in the argmax integral, and for additive noise with ``gram_rank``
    below the width the bound of :mod:`~refnet.propagation.lowrank_cov` on the level's mean
    accuracy change, ``lowrank_tv_bound``). ``gram_rank=None`` keeps ``W2 W2^T`` exact.
    ``rotated_log2_points`` (default 4) integrates the argmax on that many (log2) Sobol points
    rotated per input (randomized QMC, see
    :func:`~refnet.propagation.gaussian_argmax.rotated_orthant_probability`; the level's
    standard error is ``argmax_se``); ``None`` uses the fixed ``2**log2_points``.
    ``directions`` (additive noise): condition on up to that many of ``W2``'s dominant
    singular directions where the noise along them is wide (:mod:`~refnet.propagation.
    conditioned`; how many per level: ``conditioned_directions``); 0 linearises them all."""
    W2, b2, W3, b3 = params.W[1], params.b[1], params.W[2], params.b[2]
    act = arch.activations[1]
    mul = noise_type == "mul_unc"
    z2 = a1 @ W2.T + b2
    g1 = a1 * a1 if mul else np.ones_like(a1)
    q2 = g1 @ (W2 * W2).T                              # Var z2 = s q2
    # one SVD of W2 for the bound and the low-rank Gram (U square when W2 is no taller than wide)
    svd = np.linalg.svd(W2, full_matrices=W2.shape[0] > W2.shape[1])
    bound = DenseBound(W2, W3, g1, svd=svd)
    # additive noise: g1 = 1, so the layer-1 term is B (W2 W2^T) B^T, low rank plus isotropic
    gram = (ppca_gram(W2, gram_rank, svd=svd) if not mul and gram_rank is not None
            and gram_rank < W2.shape[0] else None)
    WU = None if gram is None else class_projector(W3, gram.U_r)
    tv_mean, se = [], []
    # one fixed rotation per input (the same at every level), independent between inputs
    shifts = (None if rotated_log2_points is None else
              np.random.default_rng(ROTATION_SEED).random((len(a1), W3.shape[0] - 1)))
    n_pts = log2_points if rotated_log2_points is None else int(rotated_log2_points)
    per = np.empty((len(variances), len(a1)))
    sigmoid = get_activation(act).spec == "sigmoid"
    pre = None
    if sigmoid:  # bounds from the clean pass settle most inputs at small variances
        a2 = 1.0 / (1.0 + np.exp(-z2))
        d0 = a2 * (1.0 - a2)
        pre = CleanSettleBound(z2, q2 if mul else q2[0], bound.gmax,
                               bound.squared(d0, y, pair_forms(d0 * d0, W3, y)), bound.norm,
                               W3, b3, y, mul=mul, moment_tol=HERMITE_TOL)
    nodes, settled, n_kept, presettled, n_dirs = [], [], [], [], []
    deflations = {}
    for j, s in enumerate(variances):
        n_gh = hermite_nodes_for_variance(act, s * float(q2.max(initial=0.0)),
                                          max_nodes=hermite_nodes)
        nodes.append(n_gh)
        idx = np.arange(len(a1))
        if pre is not None and s > 0:
            t = pre.tails(s)
            won = t.sum(axis=1) <= settle_tol
            per[j, won] = 1.0 - 0.5 * t[won].sum(axis=1)
            idx = np.flatnonzero(~won)
        presettled.append(float(1.0 - len(idx) / len(a1)))
        yi = y[idx]
        var_z = s * (q2 if not mul else q2[idx])
        if not mul:
            var_z = var_z[0]
        k_dir = 0 if mul else conditioned_directions(svd[1], s, max_directions=directions)
        n_dirs.append(k_dir)
        tv, var = np.zeros(1), np.zeros(1)
        if k_dir and len(idx):
            # every open input is conditioned on, and each point settles and drops classes
            # on its own (the linearised level's own moments and bounds would not enter)
            if k_dir not in deflations:
                deflations[k_dir] = deflate(svd, k_dir, gram_rank=gram_rank)
            defl = deflations[k_dir]   # its narrower variances may need fewer nodes
            var_c = deflated_variance(s, q2[0], defl)
            n_c = hermite_nodes_for_variance(act, float(var_c.max()), max_nodes=hermite_nodes)
            cond = _conditional_level(s, W3, b3, yi, z2[idx], var_c,
                                      defl, n_pts, None if shifts is None else shifts[idx],
                                      functools.partial(_level_moments, act, n_c),
                                      table_nodes=n_c if sigmoid else None,
                                      settle_tol=settle_tol)
            p, tv, var = conditioned_probability(s, q2[0], defl, cond)
            rest, kept_counts = cond.origin    # the diagnostics: the rule's origin point's
        else:
            m1, d, v2 = _level_moments(act, n_gh, z2[idx], var_z, s, mul=mul)
            mu = m1 @ W3.T + b3
            p, rest, kept, dropped, Qv, Qd = _settle(mu, v2, d, s, yi, bound, rows=idx,
                                                     settle_tol=settle_tol)
            kept_counts = kept.sum(axis=1)
            sh = None if shifts is None else shifts[idx[rest]]
            if rest.any() and gram is not None:
                pk, tv, var = lowrank_kept_probability(mu[rest], Qv[rest], Qd[rest],
                                                       d[rest] @ WU, s, gram, yi[rest],
                                                       kept[rest], log2_points=n_pts, shifts=sh)
                p[rest] = pk - 0.5 * dropped[rest]
            elif rest.any():
                pk, var = _kept_probability(mu[rest], v2[rest], d[rest], g1[idx[rest]], s, W2,
                                            W3, yi[rest], kept[rest], n_pts, uniform=not mul,
                                            shifts=sh)
                p[rest] = pk - 0.5 * dropped[rest]
        tv_mean.append(float(tv.sum() / len(a1)))
        se.append(float(np.sqrt(var.sum()) / len(a1)))
        per[j, idx] = p
        settled.append(float(1.0 - rest.sum() / len(a1)))
        n_kept.append(float(kept_counts[rest].mean()) if rest.any() else 1.0)
    return per, {"hermite_nodes_per_level": nodes, "settled_fraction": settled,
                 "presettled_fraction": presettled,
                 "classes_kept": n_kept, "argmax_se": se, "conditioned_directions": n_dirs,
                 **({"lowrank_tv_bound": tv_mean} if gram is not None else {})}
