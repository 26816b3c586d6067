r"""Moment propagation beyond first order, and the predicted accuracy under noise it gives.

What it computes (derived; analytic, no sampling): for each input, the mean and covariance of
every layer's noisy signal under the noise of :mod:`refnet.noise` (Semenova 2022, Eq. 3, p. 3:
``y = x (1 + xi_MU)(1 + xi_MC) + xi_AU + xi_AC``, levels are variances), then
``P(argmax of the logits = label)``.

Method
------
* **Noise and weights, exactly.** Noise adds per-neuron variance ``s_AU`` and
  ``s_MU E[x^2] = s_MU (mean^2 + Var x)`` (multiplicative noise scales with the signal's second
  moment), and ``z = W y + b`` maps mean and covariance exactly: per neuron this is
  (Semenova 2022, Eq. 19, p. 9), the exact variance of the next internal state under the four
  sources, here carried per neuron and input with every correlation between neurons instead of
  the layer averages of Eq. 6 (p. 4).
* **Activations, beyond first order.** With ``z`` Gaussian (exact after the first noisy layer;
  a closure, by the central limit theorem over the many independent terms of ``W y``, after
  that), each neuron's output mean and variance and its effective slope ``d = E f'(z)`` are
  Gaussian expectations by Gauss-Hermite quadrature (:mod:`refnet.propagation.neuron_moments`;
  they replace Eq. 9's (p. 5) first-order ``f'(E z)^2 Var z`` and the Taylor orders of Methods
  VII A, Eqs. 24-28). Between neurons, ``Cov(f(z_i), z_j) = d_i Cov(z_i, z_j)`` exactly (Stein's
  lemma) and ``Cov(f(z_i), f(z_j)) ~ d_i d_j Cov(z_i, z_j)``, the first term of Mehler's
  expansion of a bivariate Gaussian expectation in Hermite polynomials (F. G. Mehler, J. Reine
  Angew. Math. 66, 161-176, 1866); the diagonal keeps the full variance:
  ``Cov f(z) = D Cov(z) D + diag(Var f - d^2 Var z)``.
* **Factored covariance.** It is never formed as ``n x n`` per input but kept as a sum of factors
  ``diag(r) A diag(c) A^T diag(r)`` (``A`` the identity, a matrix shared by all inputs such as
  ``W``, or a per-input product such as ``(W3 D2) W2``): a 784-300-300-10 network costs
  ``10 x 300 x 300`` per input, like the first-order Jacobians of
  :mod:`refnet.propagation.sensitivity`.
* **Correlated noise** (one draw per sample and layer, shared by all neurons) is one scalar
  ``xi ~ N(0, 1)`` per layer and source, never closed by a Gaussian: it is carried as an exact
  direction ``xi u`` (``u = sd`` for additive noise, ``sd x`` for multiplicative noise on a
  deterministic ``x``) through the affine maps, and integrated by quadrature
  (:func:`normal_panel_rule`: Gauss-Legendre panels in ``Phi(xi)``, graded towards the zero of
  the gain ``1 + sd xi`` for multiplicative noise) only where a nonlinearity or another
  multiplicative correlated draw meets it; each node is then a deterministic shift or scale of
  the layer. A direction that reaches the logits stays exact: ``Y = c + xi u`` has an exact
  argmax probability (:func:`refnet.propagation.gaussian_argmax.rank_one_argmax_probability`).
  With the Duque placement this makes correlated noise alone exact up to the quadrature
  (16 nodes over the first hidden layer's draw).
* **Predicted accuracy**: the mean over inputs and nodes of ``P(argmax = label)`` for the
  Gaussian logits (:mod:`refnet.propagation.gaussian_argmax`: exact for rank one, Boole bounds
  where they decide, otherwise Genz's transform on a fixed scrambled Sobol set of 128 points:
  deterministic, no random draws).

The accuracy vs variance curve (:func:`predicted_accuracy_curve`) runs every variance through
the above (``method="full"``) or, by default on the Duque placement of a 3-layer net, the whole
curve in one pass with bounded numerical shortcuts (:mod:`refnet.propagation.moment_curve`).

Exact cases (tested): zero noise (the clean forward); a linear network (means and covariances
exact for all four sources, mixed or alone, on any layers: the quadrature rule has N(0, 1)'s
mean and variance; accuracies exact for additive noise). The approximations: the Gaussian closure of
uncorrelated noise after a nonlinearity (its logits are treated as Gaussian), the first Mehler
term between neurons, and the quadrature. Measured against Monte-Carlo on 3-epoch MNIST and
Fashion-MNIST nets: see ``benchmarks/bench_moments.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._blas import on_fixed_blas_threads
from ..activations import get_activation
from ..errors import ConfigError
from ..losses import check_labels
from ..model import Architecture, Params, check_input, check_params
from ..noise import NOISE_TYPES, NoiseConfig, NoiseSpec, noise_config
from .conditioned import MAX_DIRECTIONS
from .gaussian_argmax import gaussian_argmax_probability, rank_one_argmax_probability
from .moment_curve import (GRID_POINTS, ROTATED_LOG2_POINTS, SETTLE_TOL, correlated_curve,
                           fast_path, uncorrelated_curve)
from .moment_steps import (MomentState, activation_step, noise_step, normal_panel_rule,
                           output_covariance, signal_variance, weight_step)

__all__ = ["normal_panel_rule", "LayerMoments", "layer_moments", "predicted_accuracy",
           "PredictedCurve", "predicted_accuracy_curve", "DEFAULT_VARIANCES"]

Array = np.ndarray
#: Most quadrature rows per input (nodes ** correlated draws meeting a nonlinearity).
MAX_ROWS_PER_INPUT = 100_000
#: The Monte-Carlo sweep's grid: 100 log-spaced variances in [1e-3, 1].
DEFAULT_VARIANCES = np.logspace(-3, 0, 100)


# --- the driver ----------------------------------------------------------------------------
def _resolve(noise, arch: Architecture) -> NoiseConfig:
    if isinstance(noise, str):
        return noise_config(noise, None, arch.n_layers)
    if isinstance(noise, NoiseConfig):
        return noise
    raise ConfigError(f"noise: expected a NoiseConfig or a preset name, got {type(noise).__name__}")


def _expanded_scalars(arch: Architecture, cfg: NoiseConfig) -> int:
    """How many correlated draws get quadrature nodes: those a nonlinearity follows, or a later
    multiplicative correlated noise on a signal without uncorrelated noise (an upper bound)."""
    L = arch.n_layers
    layers = cfg.resolved_layers(L)
    specs = {l: cfg.spec_for(l, L) for l in layers}  # per-layer variances (layer_specs)
    curved = [l for l, a in enumerate(arch.activations, start=1)
              if get_activation(a).spec != "identity"]
    # any layer's (an upper bound when the layers' variances differ; exact for one spec)
    mul = any(bool(sp.mul_cor) and not (sp.add_unc or sp.mul_unc) for sp in specs.values())
    n = 0
    for l in layers:
        n_cor = bool(specs[l].add_cor) + bool(specs[l].mul_cor)
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


def _clean_rest(arch: Architecture, params: Params, start) -> Array:
    """The clean output from :func:`_clean_start`'s ``(layer, stage, signal)``: the same
    operations as the clean forward from there on, so the same bits."""
    l, stage, a = start
    if stage == "pre":
        a = get_activation(arch.activations[l - 1]).f(a)
    for k in range(l + 1, arch.n_layers + 1):
        a = get_activation(arch.activations[k - 1]).f(a @ params.W[k - 1].T + params.b[k - 1])
    return a


def _marginal(s: MomentState) -> tuple[Array, Array]:
    """Per-input mean and variance (B, n) over quadrature rows (law of total variance)."""
    R, n = s.mu.shape
    w = s.w.reshape(-1, s.Q, 1)
    mu = s.mu.reshape(-1, s.Q, n)
    mean = (w * mu).sum(1)
    second = (w * (signal_variance(s).reshape(-1, s.Q, n) + mu * mu)).sum(1)
    return mean, np.clip(second - mean * mean, 0.0, None)


def _run(arch, params, start, cfg, n_nodes: int, gh_nodes: int, record: bool = False):
    """Propagate a block of inputs from ``start`` to the output; optionally record each layer."""
    L = arch.n_layers
    layers = () if cfg.is_zero else cfg.resolved_layers(L)

    l, stage, x = start
    s = MomentState(np.ones(len(x)), 1, x)
    records = []
    while True:
        if stage == "pre":
            if l in layers and cfg.position == "pre":
                s = noise_step(s, cfg.spec_for(l, L), n_nodes)
            s = activation_step(s, arch.activations[l - 1], n_nodes, gh_nodes)
        if l in layers and (cfg.position == "post" or l == 0):
            s = noise_step(s, cfg.spec_for(l, L), n_nodes)
        if record:
            records.append(_marginal(s))
        if l == L:
            return s, records
        l, stage = l + 1, "pre"
        s = weight_step(s, params.W[l - 1], params.b[l - 1])


def _row_accuracy(s: MomentState, labels: Array, log2_points: int) -> Array:
    """``P(argmax = label)`` per row (R,); exact when the logits are ``c + xi u`` or fixed."""
    if s.diag is None and not s.dense and len(s.lin) <= 1:
        u = s.lin[0] if s.lin else np.zeros_like(s.mu)
        return rank_one_argmax_probability(s.mu, u, labels)
    return gaussian_argmax_probability(s.mu, output_covariance(s), labels,
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
    Q = ((n_nodes + 3) // 4 * 4 + 2) ** (_expanded_scalars(arch, cfg) if layers else 0)
    l0 = min(layers, default=L)
    per_row = max([sizes[l] * max(sizes[l - 1], sizes[l0]) for l in range(l0 + 2, L + 1)]
                  + [max(sizes)])
    if Q > MAX_ROWS_PER_INPUT:
        raise ConfigError(f"quadrature_nodes: {n_nodes} nodes per correlated draw give up to {Q} "
                          f"rows per input here (limit {MAX_ROWS_PER_INPUT}); use fewer nodes "
                          "or fewer layers with correlated noise")
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


@on_fixed_blas_threads   # one BLAS thread: the same bits on any thread count
def layer_moments(arch: Architecture, params: Params, X, noise, *, quadrature_nodes: int = 16,
                  hermite_nodes: int = 24, chunk: int = 512) -> LayerMoments:
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
        second = (w * (output_covariance(s).reshape(-1, s.Q, K, K)
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


@on_fixed_blas_threads   # one BLAS thread: the same bits on any thread count
def predicted_accuracy(arch: Architecture, params: Params, X, y, noise, *,
                       quadrature_nodes: int = 16, hermite_nodes: int = 24, log2_points: int = 7,
                       chunk: int = 512) -> Array:
    """Predicted ``P(argmax = label)`` per input, shape (n_inputs,), for a :class:`NoiseConfig`.

    quadrature_nodes : nodes of :func:`normal_panel_rule` per correlated draw that meets a
    nonlinearity; hermite_nodes : Gauss-Hermite nodes of each neuron's expectations
    (:func:`~refnet.propagation.neuron_moments.gauss_hermite_activation_moments`);
    log2_points : size of the fixed Sobol set for Gaussian argmax probabilities; chunk : inputs
    per block (capped so that the per-input covariance factors stay near 128 MB).
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


@on_fixed_blas_threads   # one BLAS thread: the same bits on any thread count
def predicted_accuracy_curve(arch: Architecture, params: Params, X, y, noise="duque",
                             noise_type: str = "add_unc", variances=DEFAULT_VARIANCES, *,
                             quadrature_nodes: int = 16, hermite_nodes: int = 24,
                             log2_points: int = 7, chunk: int = 512, method: str = "auto",
                             grid_points: int = GRID_POINTS, settle_tol: float = SETTLE_TOL,
                             rotated_log2_points: int | None = ROTATED_LOG2_POINTS,
                             directions: int = MAX_DIRECTIONS, progress=None) -> PredictedCurve:
    """Predicted accuracy vs variance for ``noise_type`` alone, the analytic twin of
    :func:`refnet.montecarlo.accuracy_sweep` (same placement argument ``noise``: a
    :class:`NoiseConfig`, whose spec is ignored, or a preset name; default "duque").

    method : ``"full"`` propagates every variance on its own (:func:`predicted_accuracy` per
    level); ``"auto"`` computes the whole curve in one pass where
    :func:`refnet.propagation.moment_curve.fast_path` applies (the Duque placement on a
    3-layer net: shared clean work, settled inputs bounded to within ``settle_tol``, fewer
    Gauss-Hermite nodes where a variance is small, for uncorrelated noise the argmax integral
    on ``2**rotated_log2_points`` Sobol points rotated per input (``None``: the fixed
    ``2**log2_points``), for correlated noise one Hermite-interpolated grid of ``grid_points``
    over the shared draw; see that module for the bounds) and ``"full"`` elsewhere.
    ``directions`` (one-pass curve, additive uncorrelated noise): condition on up to that many
    dominant singular directions of ``W2`` where the noise along them is wide, by cubature
    (:mod:`refnet.propagation.conditioned`); 0 linearises them, as ``"full"`` does.
    ``progress(done, total)`` is called after each variance ("full") or once at the end (the
    one-pass curve).
    """
    if method not in ("auto", "full"):
        raise ConfigError(f"method: expected 'auto' or 'full', got {method!r}")
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
    if int(grid_points) < 3:
        raise ConfigError(f"grid_points: must be an integer >= 3, got {grid_points!r}")
    if not 0.0 <= float(settle_tol) < 1.0:
        raise ConfigError(f"settle_tol: must be in [0, 1), got {settle_tol!r}")
    if isinstance(directions, bool) or int(directions) != directions or directions < 0:
        raise ConfigError(f"directions: must be an integer >= 0, got {directions!r}")
    opts = dict(quadrature_nodes=quadrature_nodes, hermite_nodes=hermite_nodes,
                log2_points=log2_points, chunk=chunk)
    # the clean layers before the first noisy one are the same at every variance: once
    start = _clean_start(arch, params, X, cfg.with_spec(NoiseSpec.single(noise_type, 1.0)))
    clean = np.argmax(_clean_rest(arch, params, start), axis=1) == y
    path = fast_path(arch, cfg, noise_type) if method == "auto" else None
    extra = {}
    if path == "correlated":
        per, err = correlated_curve(arch, params, start[2], y, noise_type, v,
                                    quadrature_nodes=quadrature_nodes, grid_points=grid_points)
        extra = {"grid_points": int(grid_points), "interpolation_error": err}
    elif path == "uncorrelated":
        per, extra = uncorrelated_curve(arch, params, start[2], y, noise_type, v,
                                        hermite_nodes=hermite_nodes, log2_points=log2_points,
                                        settle_tol=settle_tol,
                                        rotated_log2_points=rotated_log2_points,
                                        directions=directions)
        extra["settle_tol"] = float(settle_tol)
    else:
        per = np.empty((len(v), len(X)))
        for j, var in enumerate(v):
            per[j] = _predict(arch, params, start, y,
                              cfg.with_spec(NoiseSpec.single(noise_type, var)),
                              quadrature_nodes, hermite_nodes, log2_points, chunk)
            if progress is not None:
                progress(j + 1, len(v))
    if path is not None and progress is not None:
        progress(len(v), len(v))
    settings = {"layers": list(cfg.layers), "position": cfg.position, "n_samples": int(len(X)),
                "method": "moments (Gauss-Hermite neurons, quadrature over correlated draws)",
                "curve": "one pass (" + path + ")" if path else "per variance",
                **opts, **extra}
    return PredictedCurve(noise_type, v.copy(), per.mean(axis=1), per, float(clean.mean()),
                          settings)
