"""``stat``: same distribution or not? A framework's noisy outputs against refnet's Monte-Carlo.

For simulators that own their random numbers (IBM aihwkit, a CUDA kernel): the framework runs
K noisy repeats of T inputs; refnet runs its own K repeats of the same inputs with the same
weights and noise (:func:`refnet.montecarlo.layer_samples`). Per compared layer:

* per neuron and input: mean and variance of both, with confidence intervals
  (:func:`refnet.montecarlo.confidence_intervals`); Welch's t-test of the means, the
  Brown-Forsythe test of the variances (``scipy.stats.levene``, median-centred: robust to the
  non-Gaussian outputs of saturating sigmoids) and the two-sample Kolmogorov-Smirnov test of
  the whole distribution (``scipy.stats.ks_2samp``);
* pooled over neurons, with the T inputs as independent replicates (their noise is
  independent; neurons of one input are not, so their spread is measured, not assumed):
  ``d_t = mean_j log(s2_fw / s2_ref)`` and a one-sample t-test of ``mean d = 0``, reported as
  the variance ratio ``exp(mean d)`` with its confidence interval. This is the test with power
  against a scaled variance (a 10 % error is ~15 standard errors at K = 1000, T = 50, while
  each single-neuron test sees ~1.5). Under equal distributions ``d_t`` has mean exactly 0
  when both sides have the same K (swap symmetry); for unequal K the Gaussian bias
  ``psi((K-1)/2) - log((K-1)/2)`` of ``E log s2`` is removed. The same for the means, in
  units of their standard error;
* with labels: accuracy of both, and their difference with its standard error (per-input
  differences, independent across inputs).
* a neuron without noise on either side (all repeats equal, as in a layer before the first
  noisy one) has nothing to sample: its values must agree to float32 rounding (the float32
  tolerances of :mod:`refnet.crosscheck.check`), else its mean test rejects (p = 0).

Every p-value of every layer goes into one family, controlled by Holm's step-down method
(family-wise error, valid under any dependence; default) or Benjamini-Hochberg (false
discovery rate, ``scipy.stats.false_discovery_control``). Verdict: ``"consistent"`` when no
adjusted p-value is below ``alpha``, else ``"differ"`` with the tests that rejected.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from ..errors import ConfigError
from ..losses import check_labels
from ..model import Architecture, Params, check_input
from ..montecarlo import confidence_intervals, layer_samples
from ..noise import NoiseConfig
from .check import TOLERANCES

__all__ = ["LayerComparison", "StatComparison", "compare_samples", "holm", "format_report"]

Array = np.ndarray
METHODS = ("holm", "bh")
#: Most values refnet's reference samples may hold (repeats x inputs x widest layer): 1 GiB.
MAX_REFERENCE_VALUES = 1 << 27


def holm(p: Array) -> Array:
    """Holm (1979) step-down adjusted p-values: ``max_{j<=i} min(1, (m - j + 1) p_(j))``."""
    p = np.asarray(p, dtype=np.float64).ravel()
    m = p.size
    order = np.argsort(p)
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


@dataclass(frozen=True)
class LayerComparison:
    """Framework (``fw``) against refnet (``ref``) at one layer; per-neuron arrays are (T, n)."""

    layer: int
    K_fw: int
    K_ref: int
    mean_fw: Array
    mean_ref: Array
    var_fw: Array
    var_ref: Array
    mean_ci_fw: tuple
    mean_ci_ref: tuple
    var_ci_fw: tuple
    var_ci_ref: tuple
    p_mean: Array
    p_var: Array
    p_dist: Array
    variance_ratio: float
    variance_ratio_ci: tuple
    p_variance_ratio: float
    mean_shift: float
    p_mean_shift: float


@dataclass(frozen=True)
class StatComparison:
    """All layers, the accuracy comparison, the multiple-testing result and the verdict."""

    layers: dict
    accuracy_fw: float | None
    accuracy_ref: float | None
    accuracy_diff: float | None
    accuracy_se: float | None
    p_accuracy: float | None
    alpha: float
    method: str
    n_tests: int
    rejected: tuple = ()
    smallest: tuple = ()
    seed: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "differ" if self.rejected else "consistent"


def _log_var_bias(K: int) -> float:
    """``E[log s2] - log sigma2`` for Gaussian samples of size K."""
    h = (K - 1) / 2.0
    return float(special.digamma(h) - np.log(h))


def _pooled(d: Array) -> tuple[float, float, float]:
    """Mean of the per-input statistics ``d`` (T,), its standard error and the t-test p."""
    T = d.size
    m = float(d.mean())
    if T < 3:
        return m, np.nan, 1.0
    se = float(d.std(ddof=1) / np.sqrt(T))
    if se == 0:
        return m, 0.0, 1.0 if m == 0 else 0.0
    return m, se, float(2 * stats.t.sf(abs(m) / se, T - 1))


def _compare_layer(l: int, Y_fw: Array, Y_ref: Array, confidence: float) -> LayerComparison:
    K_fw, K_ref = len(Y_fw), len(Y_ref)
    m_f, m_r = Y_fw.mean(0), Y_ref.mean(0)
    # a neuron whose repeats are all equal has no noise on that side; its computed variance
    # can still be a few ulp^2 (the mean's rounding), which is not noise to test
    still_f, still_r = (Y_fw == Y_fw[0]).all(axis=0), (Y_ref == Y_ref[0]).all(axis=0)
    v_f = np.where(still_f, 0.0, Y_fw.var(0, ddof=1))
    v_r = np.where(still_r, 0.0, Y_ref.var(0, ddof=1))
    _, mci_f, vci_f, _ = confidence_intervals(m_f, v_f, K_fw, confidence)
    _, mci_r, vci_r, _ = confidence_intervals(m_r, v_r, K_ref, confidence)
    live = ~(still_f & still_r)  # neurons with noise on either side: the tests below
    shape = m_f.shape
    p_mean, p_var, p_dist = np.ones(shape), np.ones(shape), np.ones(shape)
    # noiseless on both sides (a layer before the first noisy one): no test has anything to
    # sample, so the values themselves must agree, to float32 rounding (a framework in
    # float32 passes), else the means differ for certain
    rtol, atol = TOLERANCES["float32"]
    p_mean[~live & (np.abs(m_f - m_r) > atol + rtol * np.abs(m_r))] = 0.0
    if live.any():
        a, b = Y_fw[:, live], Y_ref[:, live]
        # a column constant on one side (a framework's noiseless neuron) made scipy print a
        # "catastrophic cancellation" warning on stderr beside the verdict; Welch's test
        # takes its standard error from the other side's spread then
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            p_mean[live] = stats.ttest_ind(a, b, axis=0, equal_var=False).pvalue
            p_var[live] = stats.levene(a, b, center="median", axis=0).pvalue
        p_dist[live] = stats.ks_2samp(a, b, axis=0).pvalue
        for p in (p_mean, p_var, p_dist):
            p[~np.isfinite(p)] = 1.0  # constant columns on both sides: nothing differs
    both = ~still_f & ~still_r
    cols = both.all(axis=0)  # neurons noisy for every input: the pooled statistics use these
    if cols.any():
        d_var = (np.log(v_f[:, cols] / v_r[:, cols]) - (_log_var_bias(K_fw) - _log_var_bias(K_ref))
                 ).mean(axis=1)
        d_mean = ((m_f[:, cols] - m_r[:, cols]) /
                  np.sqrt(v_f[:, cols] / K_fw + v_r[:, cols] / K_ref)).mean(axis=1)
        lv, se_v, p_v = _pooled(d_var)
        ms, _, p_m = _pooled(d_mean)
        t_crit = stats.t.ppf(0.5 + confidence / 2, max(d_var.size - 1, 1))
        ratio, ratio_ci = float(np.exp(lv)), (float(np.exp(lv - t_crit * se_v)),
                                              float(np.exp(lv + t_crit * se_v)))
    else:
        ratio, ratio_ci, p_v, ms, p_m = np.nan, (np.nan, np.nan), 1.0, np.nan, 1.0
    return LayerComparison(l, K_fw, K_ref, m_f, m_r, v_f, v_r, mci_f, mci_r, vci_f, vci_r,
                           p_mean, p_var, p_dist, ratio, ratio_ci, p_v, ms, p_m)


def _accuracy(Y_fw: Array, Y_ref: Array, labels: Array):
    acc_f = (Y_fw.argmax(-1) == labels).mean(0)  # per input, over the repeats: (T,)
    acc_r = (Y_ref.argmax(-1) == labels).mean(0)
    diff, se, p = _pooled(acc_f - acc_r)
    return float(acc_f.mean()), float(acc_r.mean()), diff, se, p


def compare_samples(arch: Architecture, params: Params, X, noise: NoiseConfig, samples: dict, *,
                    labels=None, K_ref: int | None = None, rng=0, alpha: float = 0.01,
                    method: str = "holm", confidence: float = 0.95,
                    backend: str = "numba") -> StatComparison:
    """Compare a framework's noisy layer outputs with refnet's Monte-Carlo (module docstring).

    Parameters
    ----------
    X : array (T, sizes[0])
        The inputs the framework repeated.
    noise : NoiseConfig
        The noise refnet simulates (the framework's, in refnet's terms).
    samples : dict {layer: array (K, T, sizes[layer])}
        The framework's noisy outputs: K repeats of each input, drawn with its own RNG.
        Layer numbers as in :mod:`refnet.noise` (-1 = the output). Real and finite: NaN or
        inf is refused (it would make every test's p-value 1, a false "consistent").
    labels : int array (T,) or None
        For the accuracy comparison: class labels in ``0..sizes[-1]-1``.
    K_ref : int or None
        refnet's repeats (default: the framework's K, which makes the pooled variance
        statistic exactly unbiased).
    rng : int
        refnet's Monte-Carlo seed.
    alpha : float
        Family-wise error rate (Holm) or false discovery rate (BH) of the verdict.
    """
    if method not in METHODS:
        raise ValueError(f"method: must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must lie in (0, 1), got {alpha}")
    X = check_input(X, arch.sizes[0])
    T, L = len(X), arch.n_layers
    if T == 0:
        raise ValueError("X: no inputs (0 rows); the comparison needs at least one input")
    y = None if labels is None else check_labels(labels, T, arch.sizes[-1], "labels")
    fw = {}
    for l, Y in samples.items():
        r = int(l) + L + 1 if int(l) < 0 else int(l)
        Y = np.asarray(Y)
        if Y.dtype.kind not in "biuf":
            raise ValueError(f"samples[{l}]: expected real numbers, got dtype {Y.dtype}")
        Y = Y.astype(np.float64)
        if not 0 <= r <= L or Y.ndim != 3 or Y.shape[1:] != (T, arch.sizes[r]) or len(Y) < 2:
            raise ValueError(f"samples[{l}]: expected shape (K >= 2, {T}, "
                             f"{arch.sizes[r] if 0 <= r <= L else '?'}) for layer {l}, got "
                             f"{Y.shape}")
        if r in fw:
            raise ValueError(f"samples[{l}]: layer {r} is given twice")
        if not np.isfinite(Y).all():  # NaN would make every test's p = 1: "consistent"
            k, t, j = (int(i) for i in np.argwhere(~np.isfinite(Y))[0])
            raise ValueError(f"samples[{l}]: holds NaN or inf (first at repeat {k}, input {t}, "
                             f"neuron {j}); the framework's outputs must be finite")
        fw[r] = Y
    if not fw:
        raise ValueError("samples: need at least one layer's outputs")
    K = min(len(Y) for Y in fw.values())
    K_ref = K if K_ref is None else int(K_ref)
    if K_ref < 2:   # one repeat has no variance: every test's statistic is NaN, p = 1
        raise ConfigError(f"K_ref: refnet's repeats must be >= 2, got {K_ref}")
    width = max(arch.sizes[l] for l in fw)
    if K_ref * T * width > MAX_REFERENCE_VALUES:   # checked before layer_samples allocates
        raise ConfigError(f"K_ref: {K_ref} repeats x {T} inputs x {width} neurons is more than "
                          f"{MAX_REFERENCE_VALUES} values (1 GiB); use fewer repeats or inputs")
    ref, seed = layer_samples(arch, params, X, noise, K_ref, rng, tuple(fw), backend=backend)
    layers = {l: _compare_layer(l, fw[l], ref[l], confidence) for l in sorted(fw)}
    names, ps = [], []
    for l, c in layers.items():
        for test, p in (("mean", c.p_mean), ("variance", c.p_var), ("distribution", c.p_dist)):
            for (t, j), v in np.ndenumerate(p):
                names.append(f"layer {l} {test} input {t} neuron {j}")
                ps.append(v)
        names += [f"layer {l} pooled variance ratio", f"layer {l} pooled mean shift"]
        ps += [c.p_variance_ratio, c.p_mean_shift]
    acc = (None,) * 5
    L_out = max(fw)
    if y is not None and L_out == L:
        acc = _accuracy(fw[L], ref[L], y)
        names.append("accuracy difference")
        ps.append(acc[4])
    ps = np.asarray(ps, dtype=np.float64)
    adj = holm(ps) if method == "holm" else stats.false_discovery_control(ps, method="bh")
    order = np.lexsort((ps, adj))  # by adjusted p, ties by raw p
    rejected = tuple(names[i] for i in order if adj[i] < alpha)
    smallest = tuple((names[i], float(ps[i]), float(adj[i])) for i in order[:5])
    settings = {"K_framework": K, "K_refnet": K_ref, "T": T, "confidence": confidence,
                "noise": noise.as_dict(), "backend": backend}
    return StatComparison(layers, *acc, alpha, method, int(ps.size), rejected, smallest,
                          seed, settings)


def format_report(res: StatComparison) -> str:
    """A plain-text report: per layer, the pooled statistics and the worst tests; the verdict."""
    s = res.settings
    lines = [f"framework K = {s['K_framework']} vs refnet K = {s['K_refnet']} repeats of "
             f"T = {s['T']} inputs (refnet seed {res.seed}); {res.n_tests} tests, "
             f"{'Holm' if res.method == 'holm' else 'Benjamini-Hochberg'} at {res.alpha:g}"]
    pct = int(round(100 * s["confidence"]))
    for l, c in res.layers.items():
        if not (c.var_fw.any() or c.var_ref.any()):
            lines.append(f"layer {l}: no noise on either side; largest |value difference| "
                         f"{np.abs(c.mean_fw - c.mean_ref).max():.3g}, smallest p "
                         f"{c.p_mean.min():.2g}")
            continue
        lo, hi = c.variance_ratio_ci
        lines.append(f"layer {l}: variance ratio framework/refnet {c.variance_ratio:.4f} "
                     f"({pct} % CI {lo:.4f}..{hi:.4f}), mean shift {c.mean_shift:+.3f} s.e.; "
                     f"smallest per-neuron p: mean {c.p_mean.min():.2g}, variance "
                     f"{c.p_var.min():.2g}, distribution {c.p_dist.min():.2g}")
        j = np.unravel_index(np.argmax(np.abs(c.var_fw - c.var_ref)), c.var_fw.shape)
        lines.append(f"  largest variance gap at input {j[0]} neuron {j[1]}: framework "
                     f"{c.var_fw[j]:.4g} [{c.var_ci_fw[0][j]:.4g}, {c.var_ci_fw[1][j]:.4g}], "
                     f"refnet {c.var_ref[j]:.4g} [{c.var_ci_ref[0][j]:.4g}, "
                     f"{c.var_ci_ref[1][j]:.4g}]")
    if res.accuracy_diff is not None:
        lines.append(f"accuracy: framework {res.accuracy_fw:.4f}, refnet {res.accuracy_ref:.4f}, "
                     f"difference {res.accuracy_diff:+.4f} +- {res.accuracy_se:.4f} (s.e.)")
    for name, p, a in res.smallest[:3]:
        lines.append(f"  p = {p:.3g} (adjusted {a:.3g}): {name}")
    if res.rejected:
        lines.append(f"verdict: DIFFER ({len(res.rejected)} tests reject, first: "
                     f"{res.rejected[0]})")
    else:
        lines.append("verdict: consistent (no test rejects)")
    return "\n".join(lines)
