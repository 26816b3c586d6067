"""Figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state).

:func:`accuracy_vs_variance` draws the accuracy-under-noise figure of Duque 2024 (Fig. 3
style; the authors' code plots mean +- 2 std over 3 repetitions): log variance axis, one
curve per noise type, shaded mean +- 2 std band.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["accuracy_vs_variance", "figure_png_bytes", "NOISE_LABELS"]

#: Legend labels for the four noise types.
NOISE_LABELS = {"add_unc": "additive uncorrelated", "add_cor": "additive correlated",
                "mul_unc": "multiplicative uncorrelated", "mul_cor": "multiplicative correlated"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def accuracy_vs_variance(result, title: str | None = None, n_std: float = 2.0) -> Figure:
    """Accuracy against noise variance, mean +- ``n_std`` std band, one curve per type.

    ``result`` is a :class:`refnet.montecarlo.SweepResult` (or anything with ``noise_types``,
    ``variances`` (n_levels,), ``mean`` and ``std`` (n_types, n_levels), ``clean_accuracy``).
    Variances of 0 cannot be shown on the log axis and are left out; when every variance is 0
    the axis is linear (a log axis without data raised matplotlib's "Data cannot be
    log-scaled" after the whole computation of ``refnet evaluate --levels 0``).
    """
    v = np.asarray(result.variances, dtype=float)
    log = bool((v > 0).any())
    show = v > 0 if log else np.ones(v.shape, dtype=bool)
    fig = Figure(figsize=(6.4, 4.4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, t in enumerate(result.noise_types):
        m, s = np.asarray(result.mean[i])[show], np.asarray(result.std[i])[show]
        line, = ax.plot(v[show], m, marker="o" if show.sum() < 15 else None, ms=3,
                        label=NOISE_LABELS.get(t, t))
        ax.fill_between(v[show], np.clip(m - n_std * s, 0, 1), np.clip(m + n_std * s, 0, 1),
                        color=line.get_color(), alpha=0.2, lw=0)
    if np.isfinite(result.clean_accuracy):
        ax.axhline(result.clean_accuracy, color="0.4", ls="--", lw=1, label="no noise")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("noise variance")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or f"accuracy under noise (mean $\\pm$ {n_std:g} std)", fontsize=9)
    fig.tight_layout()
    return fig


def figure_png_bytes(fig: Figure, *, dpi=None) -> bytes:
    """The figure as PNG bytes (checked to start with the PNG signature); ``dpi`` as
    matplotlib's ``savefig`` takes it (None: its default)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    if not data.startswith(_PNG_MAGIC):
        raise RuntimeError("figure_png_bytes: matplotlib did not produce a PNG")
    return data
