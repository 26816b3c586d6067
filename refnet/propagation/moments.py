r"""Moment propagation beyond first order, and the predicted accuracy under noise it gives.

What it computes (derived; analytic, no sampling): for each input, the mean and covariance of
every layer's noisy signal under the noise of :mod:`refnet.noise` (Semenova 2022, Eq. 3, p. 3:
``y = x (1 + xi_MU)(1 + xi_MC) + xi_AU + xi_AC``, levels are variances), then
``P(argmax of the logits = label)``.

Method
------
* **Uncorrelated noise** makes the next pre-activation ``z = W y + b`` a sum of many
  independent terms; ``z`` is treated as Gaussian with its exact mean and covariance (the
  closure of Semenova 2022, Eqs. 6 and 9, p. 4, carried per neuron and with all correlations
  between neurons instead of layer averages). Per neuron the activation's mean, variance and
  effective slope ``d = E f'(z)`` are Gaussian expectations
  (:mod:`refnet.propagation.neuron_moments`, Gauss-Hermite). Between neurons,
  ``Cov(f(z_i), z_j) = d_i Cov(z_i, z_j)`` exactly (Stein's lemma), and
  ``Cov(f(z_i), f(z_j)) ~ d_i d_j Cov(z_i, z_j)`` for ``i != j``: the first term of the Hermite
  (Mehler) expansion of a bivariate Gaussian expectation (e.g. N. L. Johnson, S. Kotz &
  N. Balakrishnan, *Continuous Multivariate Distributions*, Vol. 1, Wiley 2000, Ch. 46), exact
  for the diagonal, which carries the activation's full variance. So the signal's covariance is
  ``D Cov(z) D + diag(Var f - d^2 Var z)`` plus the noise: ``s_AU I`` and
  ``s_MU diag(E[x^2])`` with ``E[x^2] = mean^2 + Var x`` (multiplicative noise scales with the
  signal's second moment).
* The covariance is never formed as ``n x n`` per input: it is kept as a sum of factors
  ``diag(r) A diag(c) A^T diag(r)`` (``A`` the identity, one matrix shared by all inputs such as
  ``W``, or a per-input product such as ``(W3 D2) W2``), so a 784-300-300-10 network costs
  ``10 x 300 x 300`` per input, like the first-order Jacobians of
  :mod:`refnet.propagation.sensitivity`.
* **Correlated noise** (one draw per sample and layer, shared by all neurons) is one scalar
  ``xi`` per noisy layer. It is integrated exactly in the limit of many nodes by Gauss-Hermite
  quadrature over ``xi`` (each node is a deterministic shift or scale of the whole layer, so no
  Gaussian closure is made for it); the last such scalar, when the rest of the network is affine
  (e.g. post-activation noise on the last hidden layer before a linear output), is kept as an
  exact direction ``Y = c + xi u``, whose argmax probability is exact
  (:func:`refnet.propagation.gaussian_argmax.rank_one_argmax_probability`).
* The predicted accuracy averages, over quadrature nodes and inputs,
  ``P(argmax = label)`` for the Gaussian logits
  (:mod:`refnet.propagation.gaussian_argmax`: exact for rank one, Boole bounds where they decide,
  otherwise Genz's transform on a fixed scrambled Sobol set: deterministic).

Exact cases (tested): zero noise (the clean forward); a linear network (means and covariances
exact for every noise type; accuracies exact for additive noise); correlated noise alone with
enough nodes. The approximations are the Gaussian closure of uncorrelated noise and the
first-order Mehler term between neurons.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import ndtr, ndtri

from ..activations import get_activation
from ..errors import ConfigError
from ..losses import check_labels
from ..model import Architecture, Params, check_input, check_params
from ..noise import NOISE_TYPES, NoiseConfig, NoiseSpec, noise_config
from .gaussian_argmax import gaussian_argmax_probability, rank_one_argmax_probability
from .neuron_moments import gauss_hermite_activation_moments

__all__ = ["LayerMoments", "layer_moments", "predicted_accuracy", "PredictedCurve",
           "predicted_accuracy_curve", "DEFAULT_VARIANCES"]

Array = np.ndarray
#: The Monte-Carlo sweep's grid: 100 log-spaced variances in [1e-3, 1].
DEFAULT_VARIANCES = np.logspace(-3, 0, 100)


# --- the state: mean and factored covariance of one layer's signal, per row -------------------
@dataclass(frozen=True)
class _Factor:
    """Covariance term ``diag(r) A diag(c) A^T diag(r)``.

    A : (n, k) shared by all rows, or (R, n, k) per row; c : (R, k) >= 0; r : (R, n) or None.
    """

    A: Array
    c: Array
    r: Array | None = None


@dataclass(frozen=True)
class _State:
    """Rows are (input, quadrature node) pairs, ``Q`` consecutive rows per input.

    w : (R,) node weights (sum 1 per input); mu : (R, n) mean; diag : (R, n) or None, an
    independent per-neuron variance; dense : factors; lin : (R, n) directions ``u`` of exact
    terms ``xi u`` with independent ``xi ~ N(0, 1)``.
    """

    w: Array
    Q: int
    mu: Array
    diag: Array | None = None
    dense: tuple = ()
    lin: tuple = ()
    splits: tuple = ()  #: per direction: the ``xi`` where its gain ``1 + sd xi`` is 0, or None

    @property
    def is_deterministic(self) -> bool:
        return self.diag is None and not self.dense and not self.lin


def _factor_variance(f: _Factor) -> Array:
    """Per-neuron variance of a factor, (R, n)."""
    if f.A.ndim == 2:
        v = f.c @ (f.A * f.A).T
    else:
        v = np.einsum("rnk,rk->rn", f.A * f.A, f.c)
    return v if f.r is None else v * f.r * f.r


def _variance(s: _State) -> Array:
    """Per-neuron variance of the signal, (R, n)."""
    v = np.zeros_like(s.mu) if s.diag is None else s.diag.copy()
    for f in s.dense:
        v += _factor_variance(f)
    for u in s.lin:
        v += u * u
    return v


def _scale(s: _State, g: Array) -> _State:
    """The signal times ``g`` ((R, 1) or (R, n)): every term of the covariance scales."""
    return replace(s, mu=s.mu * g, diag=None if s.diag is None else s.diag * g * g,
                   dense=tuple(replace(f, r=g * (1.0 if f.r is None else f.r)) for f in s.dense),
                   lin=tuple(u * g for u in s.lin))


@functools.lru_cache(maxsize=64)
def normal_panel_rule(n_nodes: int, split: float | None = None) -> tuple[Array, Array]:
    """Nodes ``t_k`` and weights (sum 1) with ``E g(xi) ~ sum_k w_k g(t_k)``, xi ~ N(0, 1).

    Composite two-point Gauss-Legendre on ``n_nodes / 2`` equal panels of ``u = Phi(xi)`` in
    (0, 1), mapped back by ``t = Phi^{-1}(u)`` (the probability-integral transform; P. J. Davis
    & P. Rabinowitz, *Methods of Numerical Integration*, 2nd ed., Academic Press 1984, Ch. 2).
    Unlike Gauss-Hermite it stays accurate when the integrand has a near-step, as the accuracy
    does where multiplicative correlated noise ``1 + xi`` crosses 0: measured on a trained MNIST
    net at variance 1, 16 nodes are within 0.2 pp where 16-64 Gauss-Hermite nodes are 2-4 pp
    off. ``n_nodes`` is rounded up to even.

    With ``split`` (multiplicative correlated noise: the ``xi`` where the gain ``1 + sd xi`` is
    0) the panels end at ``u* = Phi(split)`` and are graded geometrically (widths doubling) away
    from it, ``n_nodes / 4`` (at least 1) per side, rounded up to a multiple of 4: the accuracy
    changes fastest just beside ``u*``. Measured on the trained MNIST net at variances 0.2-1:
    within 0.25 pp with 16 nodes, where the equal panels are up to 1.1 pp off.
    """
    if int(n_nodes) < 1:
        raise ValueError(f"n_nodes: need >= 1 quadrature node, got {n_nodes}")
    if split is None:
        edges = np.linspace(0.0, 1.0, (int(n_nodes) + 1) // 2 + 1)
    else:
        u_star, p = float(ndtr(split)), max(1, (int(n_nodes) + 3) // 4)
        grade = (2.0 ** np.arange(p + 1) - 1.0) / (2.0 ** p - 1.0)  # 0 .. 1, doubling steps
        edges = np.concatenate([u_star * (1.0 - grade[::-1]), u_star + (1.0 - u_star) * grade[1:]])
    g, gw = np.polynomial.legendre.leggauss(2)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    u = (mid[:, None] + half[:, None] * g).ravel()
    w = (half[:, None] * gw).ravel()
    t = ndtri(np.clip(u, 1e-300, 1.0))
    t.setflags(write=False)
    w.setflags(write=False)
    return t, w


def _expand(s: _State, n_nodes: int, split: float | None = None) -> tuple[_State, Array]:
    """Each row becomes one row per node ``t`` of :func:`normal_panel_rule` for a new N(0,1) scalar.

    Returns the state and ``t`` per row, (R * len(t), 1).
    """
    x, w = normal_panel_rule(n_nodes, split)
    n_nodes = len(x)

    def rep(a):
        return None if a is None else np.repeat(a, n_nodes, axis=0)
    dense = tuple(_Factor(f.A if f.A.ndim == 2 else rep(f.A), rep(f.c), rep(f.r)) for f in s.dense)
    new = _State(np.repeat(s.w, n_nodes) * np.tile(w, len(s.w)), s.Q * n_nodes, rep(s.mu),
                 rep(s.diag), dense, tuple(rep(u) for u in s.lin), s.splits)
    return new, np.tile(x, len(s.w))[:, None]


def _expand_directions(s: _State, n_nodes: int) -> _State:
    """Integrate the exact directions ``xi u`` by quadrature: row ``t`` gets the mean ``mu + t u``.

    Done before a nonlinearity or a multiplicative noise: the map from where a correlated draw
    entered up to here is affine, so this is the same as expanding where it entered (no
    closure), only cheaper (the row-sum shortcut of the Monte-Carlo engine, analytically).
    """
    while s.lin:
        u, split = s.lin[0], s.splits[0]
        s, t = _expand(replace(s, lin=s.lin[1:], splits=s.splits[1:]), n_nodes, split)
        s = replace(s, mu=s.mu + t * np.repeat(u, len(t) // len(u), axis=0))
    return s


# --- one step each: noise (Semenova 2022, Eq. 3), activation, weight layer ------------------
def _noise(s: _State, spec: NoiseSpec, n_nodes: int) -> _State:
    """``y = x (1 + xi_MU)(1 + xi_MC) + xi_AU + xi_AC`` on the signal (Semenova 2022, Eq. 3, p. 3).

    Uncorrelated sources add independent per-neuron variance. A correlated source becomes an
    exact direction ``xi u`` (``u = sd`` for additive noise, ``sd x`` for multiplicative noise on
    a deterministic ``x``), or, multiplying a random signal, is integrated by quadrature nodes.
    """
    if spec.mul_unc or spec.mul_cor:  # products of draws: condition on the earlier ones first
        s = _expand_directions(s, n_nodes)
    if spec.mul_unc:  # Var(x xi) = s E[x^2]; uncorrelated with everything else (E xi = 0)
        add = spec.mul_unc * (s.mu * s.mu + _variance(s))
        s = replace(s, diag=add if s.diag is None else s.diag + add)
    if spec.mul_cor:
        sd = np.sqrt(spec.mul_cor)
        if s.is_deterministic:
            s = replace(s, lin=(sd * s.mu,), splits=(-1.0 / sd,))
        else:
            s, t = _expand(s, n_nodes, -1.0 / sd)
            s = _scale(s, 1.0 + sd * t)
    if spec.add_unc:
        s = replace(s, diag=np.full_like(s.mu, spec.add_unc) if s.diag is None
                    else s.diag + spec.add_unc)
    if spec.add_cor:
        s = replace(s, lin=s.lin + (np.full_like(s.mu, np.sqrt(spec.add_cor)),),
                    splits=s.splits + (None,))
    return s


def _activation(s: _State, activation: str, n_nodes: int, gh_nodes: int) -> _State:
    """``f(z)`` of a Gaussian signal: per-neuron moments, cross-covariances ``d_i d_j Cov(z)``."""
    act = get_activation(activation)
    if act.spec == "identity":
        return s
    s = _expand_directions(s, n_nodes)
    if s.is_deterministic:
        return replace(s, mu=act.f(s.mu))
    var_z = _variance(s)
    m1, m2, d = gauss_hermite_activation_moments(act, s.mu, var_z, n_nodes=gh_nodes)
    residual = np.clip((m2 - m1 * m1) - d * d * var_z, 0.0, None)  # >= 0 by Cauchy-Schwarz
    diag = residual if s.diag is None else residual + d * d * s.diag
    return _State(s.w, s.Q, m1, diag, tuple(replace(f, r=d if f.r is None else f.r * d)
                                             for f in s.dense))


def _apply_weights(W: Array, f: _Factor) -> Array:
    """``W diag(r) A`` of a factor: (n', k) if it stays shared, else (R, n', k)."""
    if f.A.ndim == 2 and f.r is None:
        return W @ f.A
    if f.A.ndim == 2:  # per row: one GEMM over all (row, output) pairs
        R, n_out = len(f.r), W.shape[0]
        if n_out <= f.A.shape[1]:
            return ((W[None] * f.r[:, None, :]).reshape(R * n_out, -1) @ f.A).reshape(R, n_out, -1)
        return np.matmul(W, f.r[:, :, None] * f.A)
    return np.matmul(W, f.A if f.r is None else f.r[:, :, None] * f.A)


def _weights(s: _State, W: Array, b: Array) -> _State:
    """``z = W y + b``: the mean is mapped; each covariance factor ``F`` becomes ``W F``."""
    dense = tuple(_Factor(_apply_weights(W, f), f.c) for f in s.dense)
    if s.diag is not None:
        dense = (_Factor(W, s.diag),) + dense
    return _State(s.w, s.Q, s.mu @ W.T + b, None, dense, tuple(u @ W.T for u in s.lin), s.splits)


def _output_covariance(s: _State) -> Array:
    """Full covariance of the signal (R, n, n) from its factors (only for the small output)."""
    R, n = s.mu.shape
    cov = np.zeros((R, n, n))
    if s.diag is not None:
        cov[:, np.arange(n), np.arange(n)] = s.diag
    for f in s.dense + tuple(_Factor(u[:, :, None], np.ones((R, 1))) for u in s.lin):
        M = np.broadcast_to(f.A, (R,) + f.A.shape[-2:]) if f.A.ndim == 2 else f.A
        if f.r is not None:
            M = M * f.r[:, :, None]
        cov += (M * f.c[:, None, :]) @ M.transpose(0, 2, 1)
    return cov


# --- the driver ----------------------------------------------------------------------------
def _resolve(noise, arch: Architecture) -> NoiseConfig:
    if isinstance(noise, str):
        return noise_config(noise, None, arch.n_layers)
    if isinstance(noise, NoiseConfig):
        return noise
    raise ConfigError(f"noise: expected a NoiseConfig or a preset name, got {type(noise).__name__}")


def _expanded_scalars(arch: Architecture, cfg: NoiseConfig) -> int:
    """How many correlated draws get quadrature nodes: those a nonlinearity or a later
    multiplicative noise follows (an upper bound, for the block size)."""
    spec, layers = cfg.spec, cfg.resolved_layers(arch.n_layers)
    n_cor = bool(spec.add_cor) + bool(spec.mul_cor)
    curved = [l for l, a in enumerate(arch.activations, start=1) if get_activation(a).spec != "identity"]
    mul = bool(spec.mul_unc or spec.mul_cor)
    n = 0
    for l in layers:
        first_act = l + 1 if (cfg.position == "post" or l == 0) else l
        later = any(k >= first_act for k in curved) or (mul and any(k > l for k in layers))
        n += n_cor * later
    return n


def _clean_start(arch: Architecture, params: Params, X: Array, cfg: NoiseConfig):
    """``(layer, stage, signal)`` where the first noise acts; the clean layers before it, once."""
    L = arch.n_layers
    layers = () if cfg.is_zero else cfg.resolved_layers(L)
    l0 = min(layers, default=L)
    a = X
    for l in range(1, l0 + 1):
        z = a @ params.W[l - 1].T + params.b[l - 1]
        if l == l0 and layers and cfg.position == "pre":
            return l0, "pre", z
        a = get_activation(arch.activations[l - 1]).f(z)
    return l0, "post", a


def _marginal(s: _State) -> tuple[Array, Array]:
    """Per-input mean and variance (B, n) over quadrature rows (law of total variance)."""
    R, n = s.mu.shape
    w = s.w.reshape(-1, s.Q, 1)
    mu = s.mu.reshape(-1, s.Q, n)
    mean = (w * mu).sum(1)
    second = (w * (_variance(s).reshape(-1, s.Q, n) + mu * mu)).sum(1)
    return mean, np.clip(second - mean * mean, 0.0, None)


def _run(arch, params, start, cfg, n_nodes: int, gh_nodes: int, record: bool = False):
    """Propagate a block of inputs from ``start`` to the output; optionally record each layer."""
    L = arch.n_layers
    layers = () if cfg.is_zero else cfg.resolved_layers(L)

    def noise_at(s, l):
        return _noise(s, cfg.spec, n_nodes)

    l, stage, x = start
    s = _State(np.ones(len(x)), 1, x)
    records = []
    while True:
        if stage == "pre":
            if l in layers and cfg.position == "pre":
                s = noise_at(s, l)
            s = _activation(s, arch.activations[l - 1], n_nodes, gh_nodes)
        if l in layers and (cfg.position == "post" or l == 0):
            s = noise_at(s, l)
        if record:
            records.append(_marginal(s))
        if l == L:
            return s, records
        l, stage = l + 1, "pre"
        s = _weights(s, params.W[l - 1], params.b[l - 1])


def _row_accuracy(s: _State, labels: Array, log2_points: int) -> Array:
    """``P(argmax = label)`` per row (R,); exact when the logits are ``c + xi u`` or fixed."""
    if s.diag is None and not s.dense and len(s.lin) <= 1:
        u = s.lin[0] if s.lin else np.zeros_like(s.mu)
        return rank_one_argmax_probability(s.mu, u, labels)
    return gaussian_argmax_probability(s.mu, _output_covariance(s), labels,
                                       log2_points=log2_points)


def _check_options(quadrature_nodes, hermite_nodes, chunk):
    for name, v in (("quadrature_nodes", quadrature_nodes), ("hermite_nodes", hermite_nodes),
                    ("chunk", chunk)):
        if int(v) < 1:
            raise ConfigError(f"{name}: must be an integer >= 1, got {v!r}")


def _blocks(arch: Architecture, cfg: NoiseConfig, n_inputs: int, chunk: int, n_nodes: int):
    """Input blocks small enough that the per-row factors stay near 128 MB."""
    L, sizes = arch.n_layers, arch.sizes
    layers = () if cfg.is_zero else cfg.resolved_layers(L)
    Q = ((n_nodes + 3) // 4 * 4) ** (_expanded_scalars(arch, cfg) if layers else 0)
    l0 = min(layers, default=L)
    per_row = max([sizes[l] * max(sizes[l - 1], sizes[l0]) for l in range(l0 + 2, L + 1)]
                  + [max(sizes)])
    step = max(1, min(int(chunk), (1 << 24) // (per_row * Q)))
    return [slice(i, min(i + step, n_inputs)) for i in range(0, n_inputs, step)]


@dataclass(frozen=True)
class LayerMoments:
    """Predicted per-input moments of every layer's noisy signal (layer 0 = input, L = output).

    means[l], variances[l] : (n_inputs, sizes[l]); output_covariance : (n_inputs, K, K).
    """

    means: tuple
    variances: tuple
    output_covariance: Array


def layer_moments(arch: Architecture, params: Params, X, noise, *, quadrature_nodes: int = 16,
                  hermite_nodes: int = 24, chunk: int = 256) -> LayerMoments:
    """Mean and variance of each layer's noisy signal, as in ``refnet.model.forward``'s ``cache.A``.

    ``noise`` is a :class:`NoiseConfig` (its spec is used) or a preset name (no noise).
    """
    check_params(arch, params)
    X = check_input(X, arch.sizes[0])
    cfg = _resolve(noise, arch)
    _check_options(quadrature_nodes, hermite_nodes, chunk)
    L = arch.n_layers
    means, variances, covs = [[] for _ in range(L + 1)], [[] for _ in range(L + 1)], []
    for sl in _blocks(arch, cfg, len(X), chunk, quadrature_nodes):
        x = X[sl]
        s, rec = _run(arch, params, (0, "post", x), cfg, quadrature_nodes, hermite_nodes, True)
        for l, (m, v) in enumerate(rec):
            means[l].append(m)
            variances[l].append(v)
        R, K = s.mu.shape
        w = s.w.reshape(-1, s.Q, 1, 1)
        mu = s.mu.reshape(-1, s.Q, K)
        m = rec[-1][0]
        second = (w * (_output_covariance(s).reshape(-1, s.Q, K, K)
                       + mu[..., :, None] * mu[..., None, :])).sum(1)
        covs.append(second - m[:, :, None] * m[:, None, :])
    return LayerMoments(tuple(np.concatenate(m) for m in means),
                        tuple(np.concatenate(v) for v in variances), np.concatenate(covs))


def _predict(arch, params, start, y, cfg, n_nodes, gh_nodes, log2_points, chunk) -> Array:
    """Per-input ``P(argmax = label)`` from the clean ``start`` of every input, block by block."""
    l, stage, x = start
    out = np.empty(len(x))
    for sl in _blocks(arch, cfg, len(x), chunk, n_nodes):
        s, _ = _run(arch, params, (l, stage, x[sl]), cfg, n_nodes, gh_nodes)
        p = _row_accuracy(s, np.repeat(y[sl], s.Q), log2_points)
        out[sl] = (s.w * p).reshape(-1, s.Q).sum(1)
    return out


def predicted_accuracy(arch: Architecture, params: Params, X, y, noise, *,
                       quadrature_nodes: int = 16, hermite_nodes: int = 24, log2_points: int = 7,
                       chunk: int = 512) -> Array:
    """Predicted ``P(argmax = label)`` per input, shape (n_inputs,), for a :class:`NoiseConfig`.

    quadrature_nodes : Gauss-Hermite nodes per correlated draw that meets a nonlinearity;
    hermite_nodes : Gauss-Hermite nodes of each neuron's expectations; log2_points : size of
    the fixed Sobol set for Gaussian argmax probabilities; chunk : inputs per block (capped so
    that the per-input covariance factors stay near 128 MB).
    """
    check_params(arch, params)
    X = check_input(X, arch.sizes[0]).astype(np.float64, copy=False)
    y = check_labels(y, len(X), arch.sizes[-1])
    cfg = _resolve(noise, arch)
    _check_options(quadrature_nodes, hermite_nodes, chunk)
    return _predict(arch, params, _clean_start(arch, params, X, cfg), y, cfg, quadrature_nodes,
                    hermite_nodes, log2_points, chunk)


@dataclass(frozen=True)
class PredictedCurve:
    """Predicted accuracy under one noise type at each variance (no sampling).

    accuracy : (n_levels,) mean over the inputs of the predicted ``P(argmax = label)``;
    per_input : (n_levels, n_inputs).
    """

    noise_type: str
    variances: Array
    accuracy: Array
    per_input: Array
    clean_accuracy: float
    settings: dict


def predicted_accuracy_curve(arch: Architecture, params: Params, X, y, noise="duque",
                             noise_type: str = "add_unc", variances=DEFAULT_VARIANCES, *,
                             quadrature_nodes: int = 16, hermite_nodes: int = 24,
                             log2_points: int = 7, chunk: int = 512,
                             progress=None) -> PredictedCurve:
    """Predicted accuracy vs variance for ``noise_type`` alone, the analytic twin of
    :func:`refnet.montecarlo.accuracy_sweep` (same placement argument ``noise``: a
    :class:`NoiseConfig`, whose spec is ignored, or a preset name; default "duque").

    ``progress(done, total)`` is called after each variance.
    """
    if noise_type not in NOISE_TYPES:
        raise ConfigError(f"noise_type: unknown {noise_type!r}; known: {', '.join(NOISE_TYPES)}")
    v = np.asarray(variances, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ConfigError("variances: need a non-empty 1-D array of finite variances >= 0")
    check_params(arch, params)
    cfg = _resolve(noise, arch)
    X = check_input(X, arch.sizes[0]).astype(np.float64, copy=False)
    y = check_labels(y, len(X), arch.sizes[-1])
    _check_options(quadrature_nodes, hermite_nodes, chunk)
    opts = dict(quadrature_nodes=quadrature_nodes, hermite_nodes=hermite_nodes,
                log2_points=log2_points, chunk=chunk)
    clean = np.argmax(_clean_start(arch, params, X, cfg.with_spec(NoiseSpec()))[2], axis=1) == y
    # the clean layers before the first noisy one are the same at every variance: once
    start = _clean_start(arch, params, X, cfg.with_spec(NoiseSpec.single(noise_type, 1.0)))
    per = np.empty((len(v), len(X)))
    for j, var in enumerate(v):
        per[j] = _predict(arch, params, start, y, cfg.with_spec(NoiseSpec.single(noise_type, var)),
                          quadrature_nodes, hermite_nodes, log2_points, chunk)
        if progress is not None:
            progress(j + 1, len(v))
    settings = {"layers": list(cfg.layers), "position": cfg.position, "n_samples": int(len(X)),
                "method": "moments (Gauss-Hermite neurons, quadrature over correlated draws)",
                **opts}
    return PredictedCurve(noise_type, v.copy(), per.mean(axis=1), per, float(clean.mean()),
                          settings)
