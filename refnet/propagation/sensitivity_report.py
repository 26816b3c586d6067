r"""The noise sensitivity report: accuracy under noise and a Monte-Carlo check on top of the
first-order output moments of :mod:`refnet.propagation.sensitivity`.

The accuracy under noise treats the noisy output as Gaussian with those moments and computes
``P(argmax = label)`` and ``P(argmax differs from the clean argmax)`` as orthant probabilities
of that Gaussian's differences, without sampling
(:mod:`~refnet.propagation.gaussian_argmax`).
The optional Monte-Carlo check samples the network itself with
:func:`refnet.montecarlo.reference.monte_carlo_outputs` (repeated :func:`refnet.model.forward`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Architecture, Params
from ..noise import NOISE_TYPES, NoiseConfig
from .gaussian_argmax import gaussian_argmax_probability

__all__ = ["gaussian_argmax_probabilities", "SensitivityReport", "sensitivity_report",
           "format_report"]

Array = np.ndarray


def gaussian_argmax_probabilities(mean: Array, covariance: Array, labels: Array | None, *,
                                  log2_points: int = 7) -> tuple[Array, Array | None]:
    """``P(argmax flips)`` and ``P(argmax = label)`` for ``Y ~ N(mean, covariance)`` per input.

    mean (n_batch, n_out); covariance (n_batch, n_out, n_out), singular allowed; labels
    (n_batch,) or None. Returns (flip (n_batch,), correct (n_batch,) or None). No sampling:
    ``P(argmax = c)`` is the orthant probability of the differences ``Y_c - Y_k``
    (:func:`~refnet.propagation.gaussian_argmax.gaussian_argmax_probability`: Bonferroni bounds
    where they close, else Genz's transform on ``2**log2_points`` Sobol points), and a flip is
    the argmax leaving the clean one, ``1 - P(argmax = argmax(mean))``.
    """
    mean = np.asarray(mean, dtype=np.float64)
    stay = gaussian_argmax_probability(mean, covariance, mean.argmax(-1), log2_points=log2_points)
    correct = None if labels is None else gaussian_argmax_probability(
        mean, covariance, np.asarray(labels), log2_points=log2_points)
    return np.clip(1.0 - stay, 0.0, 1.0), correct


@dataclass(frozen=True)
class SensitivityReport:
    """Analytic (first-order) and Monte-Carlo noise sensitivity of one network on some inputs."""

    layers: tuple[int, ...]  #: noisy layers (0 = input)
    contributions: Array  #: (n_layers, 4) median over inputs of the mean output variance
    predicted_variance: Array  #: (n_batch, n_out) first-order output variance
    predicted_snr: Array  #: (n_batch, n_out) |clean output| / predicted std
    predicted_flip: float  #: mean P(argmax flips), Gaussian approximation
    predicted_accuracy: float | None  #: mean P(argmax = label), Gaussian approximation
    clean_accuracy: float | None
    mc_variance: Array | None  #: (n_batch, n_out)
    mc_flip: float | None
    mc_accuracy: float | None
    n_trials: int

    @property
    def dominant(self) -> tuple[int, str]:
        k, t = np.unravel_index(np.argmax(self.contributions), self.contributions.shape)
        return self.layers[k], NOISE_TYPES[t]

    @property
    def median_relative_error(self) -> float | None:
        if self.mc_variance is None:
            return None
        ok = self.mc_variance > 0
        return float(np.median(np.abs(self.predicted_variance[ok] / self.mc_variance[ok] - 1)))


def sensitivity_report(arch: Architecture, params: Params, inputs: Array, noise: NoiseConfig,
                       labels: Array | None = None, n_trials: int = 0, rng=None
                       ) -> SensitivityReport:
    """Build a :class:`SensitivityReport`; ``n_trials = 0`` skips the Monte-Carlo check.

    inputs (n_batch, sizes[0]); labels (n_batch,) integer classes or None.
    """
    rng = np.random.default_rng(rng)
    from .sensitivity import output_variance_contributions   # (it imports this module)

    mean, contrib, cov, layers = output_variance_contributions(arch, params, inputs, noise)
    var = np.einsum("bkk->bk", cov)
    with np.errstate(divide="ignore"):
        snr = np.abs(mean) / np.sqrt(var)
    flip, correct = gaussian_argmax_probabilities(mean, cov, labels)
    per = np.median(contrib.mean(-1), axis=-1) if len(layers) else np.zeros((0, 4))
    clean_acc = None if labels is None else float(np.mean(mean.argmax(-1) == labels))
    mc_var = mc_flip = mc_acc = None
    if n_trials:
        # the check samples the network with refnet.montecarlo's NumPy reference (imported
        # here: the analytic side neither samples nor loads the numba kernels)
        from ..montecarlo.reference import monte_carlo_outputs

        Y = monte_carlo_outputs(arch, params, inputs, noise, n_trials, rng)
        mc_var = Y.var(0, ddof=1)
        arg = Y.argmax(-1)
        mc_flip = float(np.mean(arg != mean.argmax(-1)[None]))
        mc_acc = None if labels is None else float(np.mean(arg == np.asarray(labels)[None]))
    return SensitivityReport(layers, per, var, snr, float(flip.mean()),
                             None if correct is None else float(correct.mean()), clean_acc,
                             mc_var, mc_flip, mc_acc, int(n_trials))


def format_report(report: SensitivityReport) -> str:
    """A plain-text table of the report."""
    lines = ["noise sensitivity (first-order analytic; variances are output variances)",
             "layer  " + "  ".join(f"{t:>10}" for t in NOISE_TYPES)]
    for k, l in enumerate(report.layers):
        lines.append(f"{l:>5}  " + "  ".join(f"{v:10.3e}" for v in report.contributions[k]))
    if report.layers:
        l, t = report.dominant
        lines.append(f"dominant: layer {l}, {t}")
    lines.append(f"median output SNR (analytic): {np.median(report.predicted_snr):.4g}")
    lines.append(f"P(argmax flips), analytic: {report.predicted_flip:.4f}"
                 + ("" if report.mc_flip is None else f"   Monte-Carlo (K={report.n_trials}): "
                    f"{report.mc_flip:.4f}"))
    if report.predicted_accuracy is not None:
        lines.append(f"accuracy clean: {report.clean_accuracy:.4f}   under noise, analytic: "
                     f"{report.predicted_accuracy:.4f}"
                     + ("" if report.mc_accuracy is None else
                        f"   Monte-Carlo: {report.mc_accuracy:.4f}"))
    if report.mc_variance is not None:
        lines.append("median |analytic / Monte-Carlo output variance - 1|: "
                     f"{report.median_relative_error:.4f}")
    return "\n".join(lines)
