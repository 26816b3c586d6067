"""Numba kernels of the Monte-Carlo engine, each beside its NumPy twin (same signature).

Nothing here reads or writes files or plots. The kernels take arrays (noise draws included) and
scalars and write into ``out``; the one random kernel, :func:`fill_normal` (from
:mod:`refnet._random_kernels`, which training's noise draws share), takes an explicit
``np.random.Generator`` (the caller's per-chunk generator) and never touches global or
thread-local random state. A float32 array gets the float64 normals rounded: numba's float32
normal was 5x and NumPy's 2.5x slower than that on the test machine.
:mod:`refnet.montecarlo.engine` draws the noise per fixed-size chunk and calls these;
``tests/montecarlo/test_mc_kernels.py`` checks every kernel against its twin, and the twins
against :func:`refnet.noise.apply_noise` (the one Eq. 3) and :mod:`refnet.activations`, on the
same draws.

Each body is compiled twice, ``parallel=True`` (``prange`` over rows) and serial, as
``<name>`` and ``<name>_serial`` (:data:`KERNELS` maps backend names to the three versions).
Every loop body is elementwise in the row index, so a ``prange`` split across threads cannot
change any number: results are bitwise identical for any thread count. No ``fastmath``, so IEEE
semantics hold and the twins agree to rounding. The bodies are plain Python too, so the
kernels run (slowly) under ``NUMBA_DISABLE_JIT=1`` and coverage sees them. numba comes only
through :mod:`refnet._numba`: without numba the kernels here are the plain bodies and the
engine uses the NumPy twins instead (:func:`refnet.montecarlo.engine.prepare`).

Layer descriptor ``layer = (act_code, alpha, position)``: ``act_code`` from :data:`ACT_CODES`,
``alpha`` the shifted sigmoid's slope (ignored otherwise), ``position`` one of
:data:`POS_CLEAN`, :data:`POS_PRE`, :data:`POS_POST` (noise on ``z`` or on ``f(z)``).
Noise draws follow :class:`refnet.noise.LayerNoise`: ``au``, ``mu`` of shape (n_batch, n),
``ac``, ``mc`` of shape (n_batch, 1), standard normals; ``sd`` holds the four standard
deviations ``sqrt(variance)`` in :data:`refnet.noise.NOISE_TYPES` order, and a source with
``sd == 0`` is never read (pass an empty array).
"""
from __future__ import annotations

import math

import numpy as np

from .._numba import njit, prange
from .._numba import variant as _variant
from .._random_kernels import fill_normal, fill_normal_numpy  # noqa: F401  (one kernel, shared)
from ..activations import get_activation
from ..noise import LayerNoise, NoiseSpec, apply_noise

__all__ = ["ACT_CODES", "POS_CLEAN", "POS_PRE", "POS_POST", "sigmoid", "activate",
           "noisy_activation", "noisy_activation_serial", "noisy_activation_numpy",
           "row_sum_affine", "row_sum_affine_serial", "row_sum_affine_numpy",
           "row_sum_activation", "row_sum_activation_serial", "row_sum_activation_numpy",
           "fill_normal", "fill_normal_numpy", "tail_count", "tail_count_numpy", "KERNELS"]

#: Activation name -> integer code used inside the kernels.
ACT_CODES = {"identity": 0, "sigmoid": 1, "shifted_sigmoid": 2, "cubic": 3}
_ACT_NAMES = {v: k for k, v in ACT_CODES.items()}
POS_CLEAN, POS_PRE, POS_POST = 0, 1, 2

_jit = njit(cache=True, nogil=True)
_pjit = njit(cache=True, nogil=True, parallel=True)
_inline = njit(cache=True, nogil=True, inline="always")  # scalar helpers of the kernels


def _sigmoid_body(z):
    """Logistic sigmoid, stable in both branches: with ``e = exp(-|z|)`` (never overflows),
    ``1 / (1 + e)`` for ``z >= 0`` and ``e / (1 + e)`` for ``z < 0`` (within 4 ulp of
    :func:`refnet.activations.sigmoid`, tested). Both branches are computed and one selected,
    so the loop has no data-dependent jump (about twice as fast on random signs)."""
    e = math.exp(-abs(z))
    r = 1.0 / (1.0 + e)
    return r if z >= 0.0 else e * r


sigmoid = _inline(_sigmoid_body)


def _activate_body(z, code, alpha):
    """One activation of :mod:`refnet.activations`, same formulas, selected by ``code``."""
    if code == 1:
        return sigmoid(z)
    if code == 2:
        au = alpha * (z - 0.5)
        return 0.5 + 0.5 * au / math.hypot(1.0, au)
    if code == 3:
        return z * z * (3.0 - 2.0 * z)
    return z


activate = _inline(_activate_body)


def _noisy_activation_body(Z, layer, sd, au, ac, mu, mc, out):
    """``out = N(f(N(Z)))`` with the noise operator N on the side given by ``layer``.

    N is ``x (1 + xi_MU)(1 + xi_MC) + xi_AU + xi_AC`` (Semenova 2022, Eq. 3, p. 3), evaluated
    in the order of :func:`refnet.noise.apply_noise`. Z, out: (n_batch, n). Each row is
    processed in place in ``out`` by short branch-free loops (one per step), which compile to
    vector code, rather than one loop with per-element branches.
    """
    code, alpha, pos = layer
    n, m = Z.shape
    for i in prange(n):
        src = Z
        if pos == 1:
            for j in range(m):
                out[i, j] = Z[i, j]
            _noise_row(out, i, sd, au, ac, mu, mc)
            src = out
        for j in range(m):
            out[i, j] = activate(src[i, j], code, alpha)
        if pos == 2:
            _noise_row(out, i, sd, au, ac, mu, mc)


def _noise_row_body(y, i, sd, au, ac, mu, mc):
    """Row ``i`` of ``y`` through the noise operator, in place; the multiplicative factor is
    formed first, as in :func:`refnet.noise.noise_gradient_factor`, so the twins agree to the
    last bit."""
    s_au, s_ac, s_mu, s_mc = sd[0], sd[1], sd[2], sd[3]
    m = y.shape[1]
    f_c = 1.0 + s_mc * mc[i, 0] if s_mc > 0 else 1.0
    if s_mu > 0 and s_mc > 0:
        for j in range(m):
            y[i, j] = y[i, j] * ((1.0 + s_mu * mu[i, j]) * f_c)
    elif s_mu > 0:
        for j in range(m):
            y[i, j] = y[i, j] * (1.0 + s_mu * mu[i, j])
    elif s_mc > 0:
        for j in range(m):
            y[i, j] = y[i, j] * f_c
    if s_au > 0:
        for j in range(m):
            y[i, j] = y[i, j] + s_au * au[i, j]
    if s_ac > 0:
        c_a = s_ac * ac[i, 0]
        for j in range(m):
            y[i, j] = y[i, j] + c_a


# once per row: a call, not inlined (inlining it into the row loop made the loop 2x slower)
_noise_row = _jit(_noise_row_body)
noisy_activation_serial = _jit(_noisy_activation_body)
_sigmoid_p = _inline(_variant(_sigmoid_body, "_parallel", {}))
_activate_p = _inline(_variant(_activate_body, "_parallel", {"sigmoid": _sigmoid_p}))
_noise_row_p = _jit(_variant(_noise_row_body, "_parallel", {}))
noisy_activation = _pjit(_variant(_noisy_activation_body, "_parallel",
                                  {"activate": _activate_p, "_noise_row": _noise_row_p}))


def noisy_activation_numpy(Z, layer, sd, au, ac, mu, mc, out):
    """NumPy twin of :func:`noisy_activation`: the contract itself, :func:`refnet.noise.apply_noise`
    (Eq. 3) and the activation of :mod:`refnet.activations`, on the same draws."""
    code, alpha, pos = layer
    name = _ACT_NAMES[code]
    f = get_activation(f"{name}(alpha={alpha!r})" if code == ACT_CODES["shifted_sigmoid"]
                       else name).f
    # sqrt(sd^2) == sd exactly in binary floating point (and a float32 sd squares exactly in
    # float64), so apply_noise scales the draws by the very same standard deviations
    spec = NoiseSpec(*(float(s) ** 2 for s in sd))
    draws = LayerNoise(*(x if s > 0 else None for x, s in zip((au, ac, mu, mc), sd)))
    if pos == POS_PRE:
        out[...] = f(apply_noise(Z, spec, draws))
    elif pos == POS_POST:
        out[...] = apply_noise(f(Z), spec, draws)
    else:
        out[...] = f(Z)


def _row_sum_affine_body(U, idx, r, b, sd, ac, mc, out):
    """Next pre-activation from a clean product, with correlated noise carried exactly.

    For a layer output ``a`` shared by all repeats of an input, ``U = a @ W.T`` once per input,
    and correlated noise ``y = a (1 + xi_MC) + xi_AC`` gives
    ``y @ W.T + b = (1 + xi_MC) U + xi_AC r + b`` with ``r = W.sum(axis=1)`` the row sums
    (Derived: from (Semenova 2022, Eqs. 1 and 3) by linearity of Eq. 1).
    U: (n_inputs, m); idx: (n_batch,) input of each row; r, b: (m,); out: (n_batch, m).
    """
    for i in prange(out.shape[0]):
        _row_sum_row(U, idx, r, b, sd, ac, mc, out, i)


def _row_sum_row_body(U, idx, r, b, sd, ac, mc, out, i):
    """Row ``i`` of :func:`row_sum_affine`'s output: ``(1 + xi_MC) U[idx[i]] + xi_AC r + b``."""
    s_ac, s_mc = sd[1], sd[3]
    f_c = 1.0 + s_mc * mc[i, 0] if s_mc > 0 else 1.0
    c_a = s_ac * ac[i, 0] if s_ac > 0 else 0.0
    k = idx[i]
    for j in range(out.shape[1]):
        out[i, j] = f_c * U[k, j] + c_a * r[j] + b[j]


_row_sum_row = _inline(_row_sum_row_body)


row_sum_affine_serial = _jit(_row_sum_affine_body)
row_sum_affine = _pjit(_variant(_row_sum_affine_body, "_parallel", {}))


def row_sum_affine_numpy(U, idx, r, b, sd, ac, mc, out):
    """NumPy twin of :func:`row_sum_affine`."""
    f_c = 1.0 + sd[3] * mc if sd[3] > 0 else 1.0
    c_a = sd[1] * ac if sd[1] > 0 else 0.0
    out[...] = f_c * U[idx] + c_a * r + b


def _row_sum_activation_body(U, idx, r, b, sd_in, ac_in, mc_in, layer, sd, au, ac, mu, mc,
                             out):
    """:func:`row_sum_affine` then :func:`noisy_activation`, row by row, in ``out``.

    Each row's pre-activation ``(1 + xi_MC) U + xi_AC r + b`` (the correlated noise of the
    layer below, ``sd_in``, ``ac_in``, ``mc_in``) is formed in ``out`` and taken through the
    noise operator and the activation of ``layer`` in place, while it is in cache: the same
    operations on the same stored values as the two kernels one after the other, without
    writing the (n_batch, m) pre-activation and reading it back. Arguments as the two kernels'.
    """
    code, alpha, pos = layer
    n, m = out.shape
    for i in prange(n):
        _row_sum_row(U, idx, r, b, sd_in, ac_in, mc_in, out, i)
        if pos == 1:
            _noise_row(out, i, sd, au, ac, mu, mc)
        for j in range(m):
            out[i, j] = activate(out[i, j], code, alpha)
        if pos == 2:
            _noise_row(out, i, sd, au, ac, mu, mc)


row_sum_activation_serial = _jit(_row_sum_activation_body)
row_sum_activation = _pjit(_variant(_row_sum_activation_body, "_parallel",
                                    {"activate": _activate_p, "_noise_row": _noise_row_p}))


def row_sum_activation_numpy(U, idx, r, b, sd_in, ac_in, mc_in, layer, sd, au, ac, mu, mc,
                             out):
    """NumPy twin of :func:`row_sum_activation`: the two twins one after the other."""
    z = np.empty(out.shape, dtype=out.dtype)
    row_sum_affine_numpy(U, idx, r, b, sd_in, ac_in, mc_in, z)
    noisy_activation_numpy(z, layer, sd, au, ac, mu, mc, out)


def _tail_count_body(Z, layer, labels):
    """How many rows of ``f(Z)`` have their largest entry at ``labels``: the clean output
    layer's activation ``f`` (``layer``), ``argmax`` and the count of correct classifications
    in one pass, without storing ``f(Z)``.

    Z: (n_batch, C) output pre-activations; labels: (n_batch,) int64. The activation is
    :func:`activate`, the very function the engine applies to a clean layer, and the argmax is
    NumPy's: the first largest entry, or the first NaN if there is one.
    """
    code, alpha, _ = layer
    n, m = Z.shape
    count = 0
    for i in range(n):
        best = activate(Z[i, 0], code, alpha)
        k = 0
        if best == best:            # not NaN: look for a larger entry or a NaN
            for j in range(1, m):
                v = activate(Z[i, j], code, alpha)
                if v != v:
                    k = j
                    break
                if v > best:
                    best, k = v, j
        if k == labels[i]:
            count += 1
    return count


tail_count = _jit(_tail_count_body)


def tail_count_numpy(Z, layer, labels):
    """NumPy twin of :func:`tail_count`: the activation (as :func:`noisy_activation_numpy`
    applies it to a clean layer), ``np.argmax`` and the count."""
    out = np.empty(Z.shape, dtype=Z.dtype)
    e = np.empty((0, 0), dtype=Z.dtype)
    noisy_activation_numpy(Z, (layer[0], layer[1], POS_CLEAN), np.zeros(4, Z.dtype),
                           e, e, e, e, out)
    return int(np.count_nonzero(np.argmax(out, axis=1) == labels))


#: backend -> (noisy_activation, row_sum_affine, fill_normal, tail_count,
#: row_sum_activation) implementations.
KERNELS = {"numba-parallel": (noisy_activation, row_sum_affine, fill_normal, tail_count,
                              row_sum_activation),
           "numba": (noisy_activation_serial, row_sum_affine_serial, fill_normal, tail_count,
                     row_sum_activation_serial),
           "numpy": (noisy_activation_numpy, row_sum_affine_numpy, fill_normal_numpy,
                     tail_count_numpy, row_sum_activation_numpy)}
