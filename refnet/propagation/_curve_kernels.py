r"""The correlated curve's per-variance integral (:mod:`refnet.propagation.correlated_curve`):
a numba kernel beside its NumPy twin.

For one variance and each input ``b`` it computes

    ``sum_m w_m P(argmax(h_b(tau_m) + b3 + xi v) = y_b)``,  ``xi ~ N(0, 1)``,

over the panel nodes ``tau_m`` with weights ``w_m`` (the first hidden layer's shared draw),
where ``h_b(tau)`` (K,) is the logit curve without bias: the cubic Hermite interpolant of the
grid values ``H``, ``dH`` (C. de Boor, *A Practical Guide to Splines*, Springer 1978, Ch. IV),
or for a node beyond the grid its directly evaluated value. The second hidden layer's shared
draw ``xi`` is exact (:func:`~refnet.propagation.gaussian_argmax.rank_one_argmax_probability`):
its slope ``v`` is ``sd W3 1`` for additive noise and ``sd h_b(tau)`` for multiplicative.

The twin materializes the ``(M, B, K)`` interpolated logits and reuses the NumPy functions;
the kernel keeps one input's ``K`` logits in registers and never forms them (measured on the
784-300-300-10 benchmark nets: the per-variance work was most of the curve's time). The two
differ by rounding only: the normal CDF is ``erfc`` here and SciPy's ``ndtr`` there, and the
weighted sum runs in node order here (tested to 1e-12).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from .. import _numba
from .._numba import njit, prange
from ..activations import sigmoid
from .gaussian_argmax import rank_one_argmax_probability

__all__ = ["hermite_sums", "hermite_sums_numpy", "output_variances", "hermite_level",
           "hermite_level_numpy", "sigmoid_values_and_slopes", "sigmoid_values_and_slopes_numpy",
           "hermite_interpolate", "neuron_table_means", "neuron_table_means_numpy",
           "rank_one_shared_slope", "level_probability", "level_probability_numpy"]

Array = np.ndarray
_SQRT1_2 = 1.0 / math.sqrt(2.0)


def hermite_sums_numpy(E: Array, C: Array, w_pos: Array, w0, m1: Array, m2: Array) -> None:
    """The sigmoid's Gauss-Hermite sums ``m1 = sum_k w_k s_k``, ``m2 = sum_k w_k s_k^2`` with
    ``s_k = 1 / (1 + E c_k)`` at node ``+x_k`` and ``1 / (1 + E / c_k)`` at ``-x_k``
    (:func:`refnet.propagation.moment_curve.sigmoid_hermite_moments`), node by node in
    ascending order, ``+x`` before ``-x``, the node at 0 (weight ``w0``, or None) last.
    E (B, n) ``exp(-mean)``; C (half, B or 1, n) ``exp(-sd x_k)``; w_pos (half,)."""
    f = np.empty_like(E)
    m1[...] = 0.0
    m2[...] = 0.0

    def add(wk):  # f holds E c: the node's sigmoid, then its weighted value and square
        np.add(f, 1.0, out=f)
        np.reciprocal(f, out=f)
        np.add(m1, wk * f, out=m1)
        np.multiply(f, f, out=f)
        np.add(m2, wk * f, out=m2)

    for c, wk in zip(C, w_pos):
        np.multiply(E, c, out=f)
        add(wk)
        np.divide(E, c, out=f)
        add(wk)
    if w0 is not None:
        f[...] = E
        add(w0)


def _row_sums_body(E, C, w_pos, w0, has0, b, r, m1, m2):
    # Row b of the sums into m1[b] and m2 (1-D), in the twin's order and operations; the
    # inner loops are independent per element, so LLVM vectorizes the divisions.
    n = E.shape[1]
    for j in range(n):
        m1[b, j] = 0.0
        m2[j] = 0.0
    for k in range(w_pos.size):
        wk = w_pos[k]
        for j in range(n):
            s = 1.0 / (E[b, j] * C[k, r, j] + 1.0)
            m1[b, j] = m1[b, j] + wk * s
            m2[j] = m2[j] + wk * (s * s)
        for j in range(n):
            s = 1.0 / (E[b, j] / C[k, r, j] + 1.0)
            m1[b, j] = m1[b, j] + wk * s
            m2[j] = m2[j] + wk * (s * s)
    if has0:
        for j in range(n):
            s = 1.0 / (E[b, j] + 1.0)
            m1[b, j] = m1[b, j] + w0 * s
            m2[j] = m2[j] + w0 * (s * s)


_row_sums = njit(cache=True, inline="always", error_model="numpy")(_row_sums_body)


def _hermite_sums_body(E, C, w_pos, w0, has0, m1, m2):
    shared = C.shape[1] == 1
    for b in range(E.shape[0]):
        _row_sums(E, C, w_pos, w0, has0, b, 0 if shared else b, m1, m2[b])


_hermite_sums = njit(cache=True, error_model="numpy")(_hermite_sums_body)


def hermite_sums(E: Array, C: Array, w_pos: Array, w0, m1: Array, m2: Array) -> None:
    """The numba kernel of :func:`hermite_sums_numpy`: one pass, the sums kept per element
    instead of two full arrays updated per node; the twin's bits (tested). The twin runs
    without numba."""
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the sigmoid's Gauss-Hermite sums")
        return hermite_sums_numpy(E, C, w_pos, w0, m1, m2)
    _hermite_sums(E, np.ascontiguousarray(C), np.asarray(w_pos, np.float64),
                  0.0 if w0 is None else float(w0), w0 is not None, m1, m2)


def output_variances(m1: Array, m2: Array, d: Array, var_z, s: float, *, mul: bool) -> Array:
    """Variance of each second hidden neuron's noisy output (B, n2), its part not shared
    through ``W2``: the sigmoid's own spread beyond the linear part (``Var f - f'^2 Var z``,
    clipped at 0) plus the layer-2 noise: ``s`` for additive, ``s E f^2`` for multiplicative
    (``E f^2 = (E f)^2 + res + f'^2 Var z``, with the clipped ``res``). m1, m2, d (B, n2) the
    neurons' ``E f``, ``E f^2``, ``E f'``; var_z (n2,) or (B, n2) ``Var z``."""
    res = np.clip((m2 - m1 * m1) - d * d * var_z, 0.0, None)
    return res + s * ((m1 * m1 + res + d * d * var_z) if mul else 1.0)


def hermite_level_numpy(E: Array, C: Array, w_pos: Array, w0, var_z: Array, s: float,
                        mul: bool, m1: Array, d: Array, v2: Array) -> None:
    """One level's sigmoid neurons from their Gauss-Hermite sums (:func:`hermite_sums_numpy`):
    ``m1 = E s(z)``, ``d = E s'(z) = m1 - E s(z)^2`` and ``v2`` of :func:`output_variances`.
    var_z (1 or B, n) ``Var z`` per neuron; ``s`` the layer-2 noise variance."""
    m2 = np.empty_like(E)
    hermite_sums_numpy(E, C, w_pos, w0, m1, m2)
    np.subtract(m1, m2, out=d)
    v2[...] = output_variances(m1, m2, d, var_z, s, mul=mul)


def _hermite_level_body(E, C, w_pos, w0, has0, var_z, s, mul, m1, d, v2):
    B, n = E.shape
    m2 = np.empty(n)
    shared = C.shape[1] == 1
    shared_v = var_z.shape[0] == 1
    for b in range(B):
        _row_sums(E, C, w_pos, w0, has0, b, 0 if shared else b, m1, m2)
        rv = 0 if shared_v else b
        for j in range(n):                       # output_variances, in its order
            a = m1[b, j]
            dj = a - m2[j]
            vz = var_z[rv, j]
            res = (m2[j] - a * a) - dj * dj * vz
            if res < 0.0:                        # np.clip: NaN stays NaN
                res = 0.0
            d[b, j] = dj
            v2[b, j] = res + s * ((a * a + res + dj * dj * vz) if mul else 1.0)


_hermite_level = njit(cache=True, error_model="numpy")(_hermite_level_body)


def hermite_level(E: Array, C: Array, w_pos: Array, w0, var_z: Array, s: float, mul: bool,
                  m1: Array, d: Array, v2: Array) -> None:
    """The numba kernel of :func:`hermite_level_numpy`: the sums, ``d`` and ``v2`` in one
    pass over the neurons (no ``E s^2`` array, none of ``output_variances``' temporaries);
    the twin's bits (tested). The twin runs without numba."""
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the sigmoid's Gauss-Hermite sums")
        return hermite_level_numpy(E, C, w_pos, w0, var_z, s, mul, m1, d, v2)
    _hermite_level(E, np.ascontiguousarray(C), np.asarray(w_pos, np.float64),
                   0.0 if w0 is None else float(w0), w0 is not None,
                   np.ascontiguousarray(var_z, dtype=np.float64), float(s), bool(mul), m1, d, v2)


def sigmoid_values_and_slopes_numpy(z2: Array, u: Array, t: float, out: Array) -> Array:
    """The logit curve's inputs at one grid point ``tau = t`` of a sigmoid layer: with
    ``z = z2 + t u``, ``out[:B] = s(z)`` and ``out[B:] = s'(z) o u`` (``s' = s (1 - s)``), so
    that one product with ``W3^T`` gives the curve and its derivative. z2 (B, n2); u (1, n2)
    or (B, n2); out (2 B, n2). The sigmoid is :func:`refnet.activations.sigmoid`."""
    B = len(z2)
    z = np.multiply(u, t, out=np.empty_like(z2))
    z += z2
    out[:B] = sigmoid(z)
    np.subtract(1.0, out[:B], out=out[B:])
    out[B:] *= out[:B]
    out[B:] *= u
    return out


def _negated_shift_body(z2, u, t, out):
    B, n = z2.shape
    shared = u.shape[0] == 1
    for b in range(B):
        r = 0 if shared else b
        for j in range(n):
            out[b, j] = -(u[r, j] * t + z2[b, j])


def _values_and_slopes_body(e, u, out):
    B, n = e.shape
    shared = u.shape[0] == 1
    for b in range(B):
        r = 0 if shared else b
        for j in range(n):
            s = 1.0 / (1.0 + e[b, j])
            out[b, j] = s
            out[B + b, j] = ((1.0 - s) * s) * u[r, j]


_negated_shift = njit(cache=True, error_model="numpy")(_negated_shift_body)
_values_and_slopes = njit(cache=True, error_model="numpy")(_values_and_slopes_body)


def sigmoid_values_and_slopes(z2: Array, u: Array, t: float, out: Array, *,
                              work: Array | None = None) -> Array:
    """:func:`sigmoid_values_and_slopes_numpy` in three passes instead of eight: numba writes
    ``-z``, NumPy's ``exp`` (vectorized) runs in place, numba forms ``s = 1 / (1 + e)`` and
    the slopes. Every element sees the twin's operations in the twin's order, so the bits
    are the same (tested); the twin runs without numba. ``work`` (B, n2), if given, holds
    ``-z`` (a caller evaluating many grid points allocates it once)."""
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the correlated curve's grid")
        return sigmoid_values_and_slopes_numpy(z2, u, t, out)
    e = np.empty_like(z2) if work is None else work
    u = np.ascontiguousarray(u)
    _negated_shift(z2, u, float(t), e)
    with np.errstate(over="ignore"):               # exp(-z) = inf: s = 0, as in the twin
        np.exp(e, out=e)
    _values_and_slopes(e, u, out)
    return out


def hermite_interpolate(H: Array, dH: Array, grid: Array, tau: Array) -> Array:
    """Cubic Hermite interpolation on an equally spaced grid: H, dH (G, B, K); tau (M,) ->
    (M, B, K). The weights depend on ``tau`` only, shared by all inputs."""
    h = grid[1] - grid[0]
    i = np.clip(np.floor((tau - grid[0]) / h).astype(np.intp), 0, len(grid) - 2)
    s = (tau - grid[i]) / h
    s2, s3 = s * s, s * s * s
    c = [(2 * s3 - 3 * s2 + 1), h * (s3 - 2 * s2 + s), (-2 * s3 + 3 * s2), h * (s3 - s2)]
    c = [x[:, None, None] for x in c]
    return c[0] * H[i] + c[1] * dH[i] + c[2] * H[i + 1] + c[3] * dH[i + 1]


def neuron_table_means_numpy(lo: Array, step: Array, values: Array, slopes: Array,
                             z2T: Array, shift: Array, out: Array) -> Array:
    """Each neuron's tabulated function at ``mu = z2 + shift``, by cubic Hermite interpolation
    in its own table (de Boor 1978, Ch. IV): neuron ``j``'s knots ``lo_j + i step_j``,
    ``i < N``, with ``values`` and ``slopes`` (n, N) there. Neuron-major: z2T (n, B) the
    transposed ``z2``, out (n, B); shift, lo, step (n,). The interval is
    ``floor((mu - lo) / step)`` kept in ``[0, N - 2]``. Writes and returns ``out``."""
    N = values.shape[1]
    lo, step, shift = lo[:, None], step[:, None], shift[:, None]
    u = ((z2T + shift) - lo) / step
    i = np.clip(np.floor(u), 0.0, N - 2.0)
    f = u - i
    f2 = f * f
    f3 = f2 * f
    i = i.astype(np.intp)
    rows = np.arange(len(values))[:, None]
    out[...] = ((2.0 * f3 - 3.0 * f2 + 1.0) * values[rows, i]
                + step * (f3 - 2.0 * f2 + f) * slopes[rows, i]
                + (-2.0 * f3 + 3.0 * f2) * values[rows, i + 1]
                + step * (f3 - f2) * slopes[rows, i + 1])
    return out


def _neuron_table_means_body(lo, step, values, slopes, z2T, shift, out):
    # the twin's operations per element, in its order; one neuron at a time, so that its
    # table stays in cache while every input reads it (input-major: 16 ns a value, mostly
    # cache misses; neuron-major: measured in docs/benchmarks.md)
    n, B = z2T.shape
    N = values.shape[1]
    for j in range(n):
        lj, sj, hj = lo[j], step[j], shift[j]
        for b in range(B):
            u = ((z2T[j, b] + hj) - lj) / sj
            fi = min(max(math.floor(u), 0.0), N - 2.0)
            f = u - fi
            f2 = f * f
            f3 = f2 * f
            i = int(fi)
            out[j, b] = ((2.0 * f3 - 3.0 * f2 + 1.0) * values[j, i]
                         + sj * (f3 - 2.0 * f2 + f) * slopes[j, i]
                         + (-2.0 * f3 + 3.0 * f2) * values[j, i + 1]
                         + sj * (f3 - f2) * slopes[j, i + 1])


_neuron_table_means = njit(cache=True, error_model="numpy")(_neuron_table_means_body)


def neuron_table_means(lo: Array, step: Array, values: Array, slopes: Array, z2T: Array,
                       shift: Array, out: Array) -> Array:
    """The numba kernel of :func:`neuron_table_means_numpy`: one pass, no temporaries; the
    twin's bits (tested). The twin runs without numba."""
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the tabulated neuron means")
        return neuron_table_means_numpy(lo, step, values, slopes, z2T, shift, out)
    _neuron_table_means(lo, step, values, slopes, z2T, shift, out)
    return out


def rank_one_shared_slope(c: Array, u: Array, y: Array) -> Array:
    """:func:`~refnet.propagation.gaussian_argmax.rank_one_argmax_probability` when every row
    has the same slope ``u`` (additive correlated noise on the last layer: ``u = sd W3 1``):
    which classes' lines rise faster than the label's then depends on the label only, so each
    label's rows take fixed columns and no masks. The same operations, so the same bits
    (tested). c (M, B, K); u (K,); y (B,). Returns (M, B)."""
    M, B, K = c.shape
    out = np.empty((M, B))
    cols = np.arange(K)
    for g in np.unique(y):
        idx = np.flatnonzero(y == g)
        cg = c[:, idx]
        b = cg - cg[..., g:g + 1]                       # wins where a_k xi > b_k
        a = u[g] - u
        pos, neg = (a > 0) & (cols != g), (a < 0) & (cols != g)
        zero = (a == 0) & (cols != g)
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = ((b[..., pos] / a[pos]).max(axis=-1) if pos.any()
                  else np.full(b.shape[:2], -np.inf))
            hi = ((b[..., neg] / a[neg]).min(axis=-1) if neg.any()
                  else np.full(b.shape[:2], np.inf))
        never = (b[..., zero] >= 0).any(axis=-1)
        p = np.where(lo > 0, ndtr(-lo) - ndtr(-hi), ndtr(hi) - ndtr(lo))
        out[:, idx] = np.where(never | (hi <= lo), 0.0, np.clip(p, 0.0, 1.0))
    return out


def level_probability_numpy(H, dH, grid, tau, w, direct, slot, b3, slope, y, mul: bool,
                            sd: float) -> Array:
    """Per input (B,), the module's sum. H, dH (G, B, K) on the equally spaced ``grid`` (G,);
    tau, w (M,) nodes and weights; direct (n_direct, B, K) the values of the nodes beyond the
    grid, ``slot[m]`` the row of node ``m`` there or -1 (interpolated); b3 (K,); slope (K,)
    the shared slope ``sd W3 1`` (additive; ignored for ``mul``); y (B,)."""
    M, (B, K) = len(tau), H.shape[1:]
    h = np.empty((M, B, K))
    inside = slot < 0
    h[inside] = hermite_interpolate(H, dH, grid, tau[inside])
    for m in np.flatnonzero(~inside):
        h[m] = direct[slot[m]]
    if mul:  # the slope sd h(tau) differs per row
        v = sd * h
        h += b3
        p = rank_one_argmax_probability(h.reshape(-1, K), v.reshape(-1, K),
                                        np.tile(y, M)).reshape(M, B)
    else:
        h += b3
        p = rank_one_shared_slope(h, slope, y)
    return w @ p


@njit(cache=True, inline="always")
def _ndtr(x):
    """The standard normal CDF (SciPy's ``ndtr`` to rounding)."""
    return 0.5 * math.erfc(-x * _SQRT1_2)


def _level_probability_body(H, dH, grid, tau, w, direct, slot, b3, slope, y, mul, sd, out):
    G, B, K = H.shape
    step = grid[1] - grid[0]
    for b in prange(B):
        hk = np.empty(K)
        vk = np.empty(K)
        lab = y[b]
        acc = 0.0
        for m in range(tau.size):
            if slot[m] >= 0:
                for k in range(K):
                    hk[k] = direct[slot[m], b, k]
            else:                    # the twin's interpolation, operation for operation
                i = min(max(int(math.floor((tau[m] - grid[0]) / step)), 0), G - 2)
                s = (tau[m] - grid[i]) / step
                s2 = s * s
                s3 = s * s * s
                c0 = 2 * s3 - 3 * s2 + 1
                c1 = step * (s3 - 2 * s2 + s)
                c2 = -2 * s3 + 3 * s2
                c3 = step * (s3 - s2)
                for k in range(K):
                    hk[k] = (c0 * H[i, b, k] + c1 * dH[i, b, k] + c2 * H[i + 1, b, k]
                             + c3 * dH[i + 1, b, k])
            for k in range(K):
                vk[k] = sd * hk[k] if mul else slope[k]
                hk[k] += b3[k]
            # the label wins where (v_lab - v_k) xi > h_k - h_lab for every k
            lo, hi, never = -np.inf, np.inf, False
            for k in range(K):
                if k == lab:
                    continue
                a = vk[lab] - vk[k]
                d = hk[k] - hk[lab]
                if a > 0:
                    lo = max(lo, d / a)
                elif a < 0:
                    hi = min(hi, d / a)
                elif d >= 0:
                    never = True
            p = 0.0
            if not never and hi > lo:
                # upper tail by ndtr(-x): no cancellation far out on the right
                p = _ndtr(-lo) - _ndtr(-hi) if lo > 0 else _ndtr(hi) - _ndtr(lo)
                p = min(max(p, 0.0), 1.0)
            acc += w[m] * p
        out[b] = acc


_level_probability = njit(cache=True, error_model="numpy")(_level_probability_body)


def level_probability(H, dH, grid, tau, w, direct, slot, b3, slope, y, mul: bool,
                      sd: float) -> Array:
    """The numba kernel of :func:`level_probability_numpy` (same arguments, same result to
    rounding); that twin without numba."""
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the correlated curve's per-variance integral")
        return level_probability_numpy(H, dH, grid, tau, w, direct, slot, b3, slope, y, mul, sd)
    out = np.empty(H.shape[1])
    _level_probability(H, dH, np.asarray(grid, np.float64), np.asarray(tau, np.float64),
                       np.asarray(w, np.float64), direct, np.asarray(slot, np.int64), b3,
                       np.asarray(slope, np.float64), np.asarray(y, np.int64), bool(mul),
                       float(sd), out)
    return out
