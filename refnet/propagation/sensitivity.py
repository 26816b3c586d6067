r"""Noise sensitivity report for any trained network: predicted output variance and SNR per layer
and per noise type, the dominant layer and type, and the accuracy under noise, next to a
Monte-Carlo check.

Method (derived, first order in the noise): every noise source enters the output linearly
through the Jacobian ``G_l = dY/dy_l`` of the clean network (shape ``(n_out, n_l)`` per input),
so for a noisy layer ``l`` with clean signal ``x_l`` at the noise point and the variances of
:class:`refnet.noise.NoiseSpec`::

    Var_AU = s_AU sum_j G_kj^2               Var_AC = s_AC (sum_j G_kj)^2
    Var_MU = s_MU sum_j G_kj^2 x_j^2         Var_MC = s_MC (sum_j G_kj x_j)^2

This is Semenova 2022, Eqs. 6 and 19 (p. 4, p. 9) with Eq. 9's first-order closure applied per
neuron instead of through layer averages, and Duque 2024, Eqs. 2-3 (p. 3): correlated terms
follow row sums (``sum_j G_kj``), uncorrelated ones sums of squares. Correlations between
neurons are kept exactly (the full output covariance is ``sum G diag(.) G^T`` plus rank-one
correlated terms). Noise levels are **variances** (refnet's contract).

Only the covariance needs every ``G_l``. For the variances alone
(``output_variance_contributions(..., covariance=False)``) the correlated terms are
forward-mode products with one vector, the additive uncorrelated term after an activation goes
through the triangular factor of the next weight matrix's Gram matrix, and only
multiplicative uncorrelated noise (or additive noise before an activation) forms ``G_l``; the
two paths agree to rounding (``tests/propagation/test_sensitivity_paths.py``).

The report built on these moments (accuracy under noise, the Monte-Carlo check) is
:mod:`~refnet.propagation.sensitivity_report`.
"""
from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from .._blas import on_fixed_blas_threads
from .._gemm import matmul, squares_times_squares, upper_triangular_times_rows
from ..activations import get_activation
from ..model import Architecture, Params, check_input, check_params, forward
from ..noise import NOISE_TYPES, NoiseConfig
from ._below_top_kernels import below_top_sums_of_squares
from ._jacobian_kernels import columns_scaled, rows_scaled

__all__ = ["output_variance_contributions", "output_jacobians", "jacobian_times_noise",
           "layer_output_covariance", "gaussian_argmax_probabilities",
           "SensitivityReport", "sensitivity_report", "format_report"]

Array = np.ndarray


@on_fixed_blas_threads   # one BLAS thread; the fixed-block products use both cores
def output_variance_contributions(arch: Architecture, params: Params, inputs: Array,
                                  noise: NoiseConfig, covariance: bool = True, chunk: int = 256
                                  ) -> tuple[Array, Array, Array | None, tuple[int, ...]]:
    """First-order output moments, split by noisy layer and noise type.

    Parameters
    ----------
    inputs : (n_batch, sizes[0])
    noise : NoiseConfig (variances; "pre" or "post" position)
    covariance : bool
        Also build the full output covariance (needed for argmax probabilities); without it
        only the variances are computed, which is faster.
    chunk : int
        Inputs per block. The Jacobians take ``n_out x width`` numbers per input; blocks of a
        few hundred inputs keep them in cache and reuse memory (2x faster than one block of
        1000, measured), and give identical results.

    Returns
    -------
    mean : (n_batch, n_out), the clean output (first-order mean)
    contributions : (n_noisy_layers, 4, n_batch, n_out) output variances, types in
        :data:`refnet.noise.NOISE_TYPES` order
    covariance : (n_batch, n_out, n_out) total first-order output covariance, or None
    layers : the noisy layer numbers (0 = input, L = output)
    """
    check_params(arch, params)
    X = check_input(inputs, arch.sizes[0], "inputs")   # once: the blocks skip forward's checks
    if int(chunk) < 1:
        raise ValueError(f"chunk: must be >= 1, got {chunk}")
    if covariance:  # the covariance needs every G_l S G_l^T: the full Jacobians
        parts = [_contributions_block(arch, params, X[i:i + int(chunk)], noise, covariance)
                 for i in range(0, max(len(X), 1), int(chunk))]
    else:  # variances only: products that avoid the full Jacobians where they can
        factors = _gram_factors(arch, params, noise)  # once, shared by every block
        parts = [_variances_block(arch, params, X[i:i + int(chunk)], noise, factors)
                 for i in range(0, max(len(X), 1), int(chunk))]
    mean = np.concatenate([p[0] for p in parts])
    contrib = np.concatenate([p[1] for p in parts], axis=2)
    cov = np.concatenate([p[2] for p in parts]) if covariance else None
    return mean, contrib, cov, parts[0][3]


def output_jacobians(arch: Architecture, params: Params, cache, lowest: int, *,
                     fixed_blocks: bool = False, d1s: dict | None = None) -> dict[int, Array]:
    """Per-input Jacobians ``G_l = dY/dy_l`` of the clean network for ``l = lowest..L``.

    Derived (chain rule): ``G_L = I`` and ``G_{l-1} = G_l diag(f_l'(z_l)) W_l``, with
    ``z_l = cache.Z[l-1]`` from a clean :func:`refnet.model.forward`. Returns ``{l: G_l}``,
    each of shape ``(n_batch, n_out, sizes[l])``. Shared by this report and the expected-loss
    objective (:mod:`refnet.regularizers.expected_loss`), which differentiates through it.
    ``fixed_blocks=True`` takes the products in :mod:`refnet._gemm`'s fixed row blocks (bits
    independent of the thread count; both cores inside ``fixed_blas_threads``); the objective
    keeps NumPy's products, whose bits its trained networks and reports were made with.
    ``d1s``: ``{l: f_l'(z_l)}`` already computed by the caller (the same values; each one not
    given is computed here).
    """
    mm = matmul if fixed_blocks else np.matmul
    L = arch.n_layers
    n_b, n_out = cache.A[-1].shape
    eye = np.eye(n_out, dtype=cache.A[-1].dtype)  # float32 networks stay float32
    G = np.broadcast_to(eye, (n_b, n_out, n_out)).copy()  # dY / dy_L
    out = {L: G}
    for l in range(L, int(lowest), -1):  # dY/dy_{l-1} = dY/dy_l diag(f'(z_l)) W_l
        d1 = (d1s[l] if d1s is not None and l in d1s
              else get_activation(arch.activations[l - 1]).d1(cache.Z[l - 1]))
        if l == L:  # I diag(f_L') W_L: the product's values (its other terms are exact zeros)
            G = rows_scaled(d1, params.W[l - 1])
        else:  # one GEMM over all (input, output) rows instead of a stack of small products
            G = mm(columns_scaled(G, d1).reshape(-1, d1.shape[1]), params.W[l - 1])
            G = G.reshape(n_b, n_out, -1)
        out[l - 1] = G
    return out


def jacobian_times_noise(G: Array, x: Array, spec) -> Array:
    """``G S`` for one noisy layer: ``S`` is the covariance of the noise added to its signal.

    Derived, first order, from ``y = x (1 + xi_MU)(1 + xi_MC) + xi_AU + xi_AC`` (Semenova 2022,
    Eq. 3, p. 3): ``S = s_AU I + s_AC 1 1^T + s_MU diag(x^2) + s_MC x x^T`` (the variances of
    ``spec``). ``G`` (n_batch, n_out, n_l) the Jacobian at the noise point, ``x`` (n_batch, n_l)
    the clean signal there. Returns (n_batch, n_out, n_l); ``S`` itself is never formed.
    """
    s_AU, s_AC, s_MU, s_MC = (getattr(spec, t) for t in NOISE_TYPES)
    # the diagonal part in one pass over G, then the two rank-one parts added in place
    GS = G * (s_AU + s_MU * x * x)[:, None, :]
    if s_AC:  # (G 1) 1^T
        GS += s_AC * G.sum(-1, keepdims=True)
    if s_MC:  # (G x) x^T
        GS += s_MC * (G @ x[:, :, None]) * x[:, None, :]
    return GS


def layer_output_covariance(G: Array, x: Array, spec) -> Array:
    """First-order output covariance of one noisy layer: ``G S G^T``, (n_batch, n_out, n_out).

    ``s_AU G G^T``, ``s_AC (G 1)(G 1)^T``, ``s_MU G diag(x^2) G^T``, ``s_MC (G x)(G x)^T``
    (see :func:`jacobian_times_noise`; the module docstring gives their diagonals).
    """
    return jacobian_times_noise(G, x, spec) @ G.transpose(0, 2, 1)


def _contributions_block(arch, params, X, noise, covariance):
    """:func:`output_variance_contributions` for one block of inputs (same returns)."""
    L = arch.n_layers
    out, cache = forward(arch, params, X, check=False)   # checked by the caller
    layers = () if noise.is_zero else noise.resolved_layers(L)
    n_b, n_out = out.shape
    contrib = np.zeros((len(layers), 4, n_b, n_out))
    cov = np.zeros((n_b, n_out, n_out)) if covariance else None
    # no Jacobian below the first noisy layer
    jac = output_jacobians(arch, params, cache, min(layers, default=L), fixed_blocks=True)
    for k, l in enumerate(layers):
        G = jac[l]
        if noise.position == "pre" and l > 0:  # noise on z_l: through f'(z_l), scales with z_l
            Gn = G * get_activation(arch.activations[l - 1]).d1(cache.Z[l - 1])[:, None, :]
            x = cache.Z[l - 1]
        else:
            Gn, x = G, cache.A[l]
        spec = noise.spec_for(l, L)  # per-layer variances where layer_specs sets them
        s_AU, s_AC, s_MU, s_MC = (getattr(spec, t) for t in NOISE_TYPES)
        # sources with zero variance are skipped: they cost most of the time
        if s_AU:  # sum_j G_ij^2 without materialising G^2
            contrib[k, 0] = s_AU * np.einsum("bij,bij->bi", Gn, Gn)
        if s_AC:
            contrib[k, 1] = s_AC * Gn.sum(-1) ** 2
        if s_MU:  # sum_j G_ij^2 x_j^2, one gemv per input on its squares
            contrib[k, 2] = s_MU * squares_times_squares(Gn, x)
        if s_MC:  # G x by the same forward-mode products as the variance-only path
            Gx = _correlated_times_signal(arch, params, cache, noise, l, x)
            contrib[k, 3] = s_MC * Gx ** 2
        if covariance:
            # the rank-one s_MC (G x)(G x)^T from that same G x, the rest as G S G^T
            cov += layer_output_covariance(Gn, x, replace(spec, mul_cor=0.0) if s_MC else spec)
            if s_MC:
                cov += s_MC * Gx[:, :, None] * Gx[:, None, :]
    return out, contrib, cov, layers


def _correlated_times_signal(arch, params, cache, noise, l, x, d1s=None) -> Array:
    """``G_l x`` (times ``f'`` before an activation) by forward-mode products, (n_batch, n_out).

    x (n_batch, sizes[l]) the clean signal at the noise point; ``d1s`` optional
    ``{m: f_m'(z_m)}`` for ``m > l`` already computed. Both paths take the multiplicative
    correlated term from here: ``G_l x`` often cancels (mixed-sign weights: ``|G x|`` down to
    1e-4 of ``|G| |x|``), so two summation orders differ there by more than the rounding of
    the result; one shared order keeps the dense and the variance-only paths in agreement.
    """
    L = arch.n_layers
    pre = noise.position == "pre" and l > 0
    if pre:
        x = x * get_activation(arch.activations[l - 1]).d1(cache.Z[l - 1])
    if l == L:
        return x
    if d1s is None:
        d1s = {m: get_activation(arch.activations[m - 1]).d1(cache.Z[m - 1])
               for m in range(l + 1, L + 1)}
    if pre:
        return _jvp_to_output(arch, params, d1s, l, x)
    # after an activation x is the clean a_l, so the first product W_{l+1} a_l is the clean
    # pass's own z_{l+1} - b_{l+1}: one (n_batch, n_l) x (n_l, n_{l+1}) product saved (a
    # third of a forward pass for 784-300-300-10); it differs from the product by the
    # rounding of z + b, a few ulp of max(|z|, |b|)
    u = (cache.Z[l] - params.b[l]) * d1s[l + 1]
    return u if l + 1 == L else _jvp_to_output(arch, params, d1s, l + 1, u)


def _noise_point(arch, cache, noise, l):
    """``(x, d)`` at noisy layer ``l``: the clean signal the noise acts on (n_batch, sizes[l]) and
    ``f_l'(z_l)`` when the noise is added before the activation (else None)."""
    if noise.position == "pre" and l > 0:  # noise on z_l: through f'(z_l), scales with z_l
        return cache.Z[l - 1], get_activation(arch.activations[l - 1]).d1(cache.Z[l - 1])
    return cache.A[l], None


def _needs_full_jacobian(noise, l, L) -> bool:
    """Whether layer ``l``'s variances need ``G_l`` itself, not only products with it.

    Multiplicative uncorrelated noise weights every ``G_kj^2`` by ``x_j^2`` (a different
    diagonal per input), and so does additive uncorrelated noise before an activation
    (``f'(z_j)^2``): neither factors through a fixed matrix. Additive uncorrelated noise after
    an activation needs only ``G G^T``, correlated noise only ``G 1`` and ``G x``.
    """
    spec = noise.spec_for(l, L)
    return bool(spec.mul_unc or (spec.add_unc and noise.position == "pre" and 0 < l < L))


def _gram_factors(arch: Architecture, params: Params, noise: NoiseConfig) -> dict[int, Array]:
    """Triangular factors of the weight Gram matrices the additive uncorrelated terms need.

    For noise after layer ``l``'s activation, ``G_l G_l^T = M W W^T M^T`` with
    ``M = G_{l+1} diag(f'(z_{l+1}))`` and ``W = W_{l+1}`` (n_{l+1}, n_l), the same ``W`` for
    every input. With ``W^T = Q R`` (R upper triangular, n_{l+1} x n_{l+1}) it is
    ``(M R^T)(M R^T)^T``: per input one triangular product of ``n_out x n_{l+1}^2 / 2``
    multiply-adds, whatever ``n_l`` (the input layer's 784 drops out). Returns
    ``{l: R}`` (Fortran order, for BLAS trmm) for the layers where this is cheaper than
    ``M W`` itself (``n_l >= n_{l+1}``); the others use ``M W``.
    """
    if noise.is_zero:
        return {}
    L = arch.n_layers
    out = {}
    for l in noise.resolved_layers(L):
        if l < L and noise.spec_for(l, L).add_unc and not _needs_full_jacobian(noise, l, L):
            W = params.W[l]  # W_{l+1}: (n_{l+1}, n_l)
            if W.shape[1] >= W.shape[0]:
                out[l] = _triangular_factor(W)
    return out


#: The last few ``(W, R)`` pairs of :func:`_triangular_factor`, newest last. The factor of a
#: 300 x 300 weight matrix took 3.3 ms, 8 % of the variances of 1,000 inputs, and a network's
#: variances are asked for again and again (blocks of a test set, sweeps, benchmarks); the
#: comparison that finds a stored one takes 0.1 ms.
_FACTORS: list = []
_FACTORS_KEPT = 4
_factors_lock = threading.Lock()


def _triangular_factor(W: Array) -> Array:
    """R (n_{l+1}, n_{l+1}), upper triangular in Fortran order, of ``W^T = Q R``, so that
    ``W W^T = R^T R``; read-only, and the same array for a ``W`` equal to one of the last
    :data:`_FACTORS_KEPT` (compared element by element, so a stored factor is the one this
    ``W`` would get)."""
    with _factors_lock:
        for i, (Wc, R) in enumerate(_FACTORS):
            if Wc.shape == W.shape and Wc.dtype == W.dtype and np.array_equal(Wc, W):
                _FACTORS.append(_FACTORS.pop(i))
                return R
    R = np.asfortranarray(np.linalg.qr(W.T, mode="r"))
    R.flags.writeable = False
    Wc = W.copy()
    Wc.flags.writeable = False
    with _factors_lock:
        _FACTORS.append((Wc, R))
        del _FACTORS[:-_FACTORS_KEPT]
    return R


def _row_sums_of_squares_times_factor(M: Array, R: Array) -> Array:
    """``sum_j (M R^T)_ij^2`` for M (n_rows, n), R (n, n) upper triangular (Fortran order).

    ``(M R^T)^T = R M^T``: with ``M`` C-ordered, ``M^T`` is Fortran-ordered, so BLAS trmm
    works on it in place (half the multiply-adds of the general product, no copy of ``M``),
    in :mod:`refnet._gemm`'s fixed blocks (both cores, bits independent of the thread count).
    """
    P = upper_triangular_times_rows(R, M)  # (n_rows, n) = M R^T, in place
    return np.einsum("ij,ij->i", P, P)


def _jvp_to_output(arch, params, d1s, l, v, ones=False) -> Array:
    """``G_l v`` by forward-mode products through the clean network, never forming ``G_l``.

    ``G_l v = diag(f_L') W_L ... diag(f_{l+1}') W_{l+1} v``: per input one matrix-vector
    product per layer (a forward pass's cost), done as one product for all inputs. v
    (n_batch, n_l); ``ones=True`` says v is all ones, so the first product is the
    input-independent row sums of ``W_{l+1}``. ``d1s[m]`` is ``f_m'(z_m)`` (n_batch, n_m).
    Returns (n_batch, n_out).
    """
    for m in range(l + 1, arch.n_layers + 1):
        W = params.W[m - 1]
        v = (W.sum(1) if m == l + 1 and ones else matmul(v, W.T)) * d1s[m]
    return v


def _below_top_sums(params, d1s, factors, l, x, d, add, mul) -> Array:
    """The uncorrelated sums of layer ``l = L - 2`` without its ``(n_batch, n_out, n_l)``
    Jacobian (:mod:`._below_top_kernels`): ``sum_j G_kj^2`` (additive; times ``f_l'^2`` before
    an activation) first where ``add``, then ``sum_j G_kj^2 x_j^2`` (times ``f_l'^2`` before
    an activation) where ``mul``; returns (n_terms, n_batch, n_out). ``G_l = M W_{l+1}``;
    the additive sums alone after an activation go through the triangular factor of
    ``W_{l+1} W_{l+1}^T`` (:func:`_gram_factors`) where there is one."""
    L = l + 2
    d_out, d_top = d1s[L], d1s[L - 1]
    dt = d_out.dtype
    W_out = np.ascontiguousarray(params.W[L - 1], dt)
    F = np.ascontiguousarray(params.W[l], dt)
    if not mul and d is None:   # additive after the activation: unweighted sums
        if l in factors:
            F = factors[l]
        return below_top_sums_of_squares(d_out, W_out, d_top, F, np.ones((1, 1, F.shape[1]), dt),
                                         triangular=l in factors)
    w2 = [] if not add else [np.ones_like(x) if d is None else d * d]
    if mul:
        w2.append(x * x if d is None else (x * d) ** 2)
    return below_top_sums_of_squares(d_out, W_out, d_top, F, np.stack(w2))


def _variances_block(arch, params, X, noise, factors):
    """:func:`output_variance_contributions` without the covariance, for one block of inputs.

    The same four first-order terms as :func:`_contributions_block` (the module docstring),
    by cheaper products: correlated terms ``(G 1)^2`` and ``(G x)^2`` by forward-mode
    products with one vector each (:func:`_jvp_to_output`); additive uncorrelated
    ``sum_j G_kj^2`` after an activation through the triangular factor of the next weight
    matrix's Gram matrix (:func:`_gram_factors`); only multiplicative uncorrelated noise (and
    additive uncorrelated before an activation) forms ``G_l`` (:func:`output_jacobians`,
    :func:`_needs_full_jacobian`). One batched product per layer for all inputs of the block.
    """
    L = arch.n_layers
    out, cache = forward(arch, params, X, check=False)   # checked by the caller
    layers = () if noise.is_zero else noise.resolved_layers(L)
    n_b, n_out = out.shape
    contrib = np.zeros((len(layers), 4, n_b, n_out))
    if not layers:
        return out, contrib, None, layers
    full = [l for l in layers if _needs_full_jacobian(noise, l, L)]
    gram = [l + 1 for l in layers if l < L and noise.spec_for(l, L).add_unc and l not in full]
    # G_{L-1} = f_L' W_L is a broadcast: the additive terms that need it alone take it below
    lowest = min(full + [g for g in gram if g < L - 1], default=L)
    # layer L - 2's sums come block by block from the kernel, unless the chain of Jacobians
    # has to go below L - 1 for another layer anyway (then G_{L-2} is on its way)
    below_top = L - 2 if L >= 2 and L - 2 in layers else None
    if below_top is not None:
        others = min([f for f in full if f != below_top] + [g for g in gram if g < L - 1],
                     default=L)
        if others < L - 1:
            below_top = None
        else:
            lowest = others
    d1s = {m: get_activation(arch.activations[m - 1]).d1(cache.Z[m - 1])
           for m in range(min(layers) + 1, L + 1)}
    jac = output_jacobians(arch, params, cache, lowest, fixed_blocks=True,
                           d1s=d1s)  # {L: I} if lowest = L
    for k, l in enumerate(layers):
        spec = noise.spec_for(l, L)
        s_AU, s_AC, s_MU, s_MC = (getattr(spec, t) for t in NOISE_TYPES)
        x, d = _noise_point(arch, cache, noise, l)
        if l == below_top and (s_AU or s_MU):
            sums = _below_top_sums(params, d1s, factors, l, x, d, s_AU, s_MU)
            if s_AU:
                contrib[k, 0] = s_AU * sums[0]
            if s_MU:
                contrib[k, 2] = s_MU * sums[-1]
        elif l in full:
            Gn = jac[l] if d is None else jac[l] * d[:, None, :]
            if s_AU:
                contrib[k, 0] = s_AU * np.einsum("bij,bij->bi", Gn, Gn)
            if s_MU:
                contrib[k, 2] = s_MU * squares_times_squares(Gn, x)
        elif s_AU and l == L:  # G_L = I: the noise reaches the output directly
            contrib[k, 0] = s_AU * (1.0 if d is None else d * d)
        elif s_AU:  # G_l = M W_{l+1}, M = G_{l+1} diag(f'_{l+1})
            if l + 1 in jac:
                M = columns_scaled(jac[l + 1], d1s[l + 1]).reshape(n_b * n_out, -1)
            else:  # l + 1 = L - 1: M = diag(f_L') W_L diag(f_{L-1}') in one array, the
                # values of the product route (whose other terms are exact zeros), without
                # its 10-column product, whose time varied with what ran before it (1,000
                # inputs: 37-50 ms for the whole add_unc call, against 30 ms this way)
                M = rows_scaled(d1s[L], params.W[L - 1])
                M = columns_scaled(M, d1s[l + 1], out=M).reshape(n_b * n_out, -1)
            if l in factors:
                sq = _row_sums_of_squares_times_factor(M, factors[l])
            else:
                P = matmul(M, params.W[l])
                sq = np.einsum("ij,ij->i", P, P)
            contrib[k, 0] = s_AU * sq.reshape(n_b, n_out)
        if s_AC:  # G_l v for v = 1 (times f' before an activation)
            v = np.ones_like(x) if d is None else d
            Gv = v if l == L else _jvp_to_output(arch, params, d1s, l, v, ones=d is None)
            contrib[k, 1] = s_AC * Gv ** 2
        if s_MC:  # G_l x, as the dense path takes it
            Gx = _correlated_times_signal(arch, params, cache, noise, l, x, d1s)
            contrib[k, 3] = s_MC * Gx ** 2
    return out, contrib, None, layers


# the report on these moments lives in its own module; its names stay importable from here
from .sensitivity_report import (SensitivityReport, format_report,  # noqa: E402, F401
                                 gaussian_argmax_probabilities, sensitivity_report)
