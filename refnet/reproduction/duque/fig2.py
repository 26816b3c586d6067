"""Duque 2024, Fig. 2: per-row mean and std of each weight matrix, standard vs regularized (Eq. 4).

Rows (one neuron's incoming weights) sorted by ascending mean; solid line = row mean, band =
+- 1 row std. Uses the first dataset's models of duque_fig4 (MNIST in both presets) (trained if missing).

    python validation/duque_fig2.py [--preset quick|full] [--seed 0] [--out DIR]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import protocol as dq
from ..results import load_results, save_figure, save_results
from ..report import FigureEntry

NAME = "duque_fig2"
MODES = ("standard", "regularized_cor")


def row_statistics(W: np.ndarray):
    """Row means and stds of ``W`` (n_out, n_in), sorted by ascending mean: two (n_out,) arrays."""
    m, s = W.mean(axis=1), W.std(axis=1)
    order = np.argsort(m, kind="stable")
    return m[order], s[order]


def compute(preset, out, log=print) -> None:
    cached = load_results(out, NAME)
    if cached is not None and cached[1].get("setup_key") == preset.duque[0].key():
        log(f"{NAME}: cached")
        return
    setup = preset.duque[0]  # MNIST in both presets
    models = dq.train_models(setup, dq.load_data(setup), Path(out) / "models", MODES, log=log)
    arrays = {}
    for mode in MODES:
        for l, W in enumerate(models[mode][1].W, start=1):
            arrays[f"{mode}/W{l}/mean"], arrays[f"{mode}/W{l}/std"] = row_statistics(W)
            arrays[f"{mode}/W{l}/abs_row_sum"] = np.abs(W.sum(axis=1))
    save_results(out, NAME, arrays, {"preset": preset.name, "seed": setup.seed,
                                     "setup_key": setup.key(), "models": list(MODES)})


def plot(out) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays, rec = load_results(out, NAME)
    n_layers = sum(1 for k in arrays if k.startswith("standard/") and k.endswith("/mean"))
    fig, axes = plt.subplots(2, n_layers, figsize=(4.6 * n_layers, 6.4), squeeze=False)
    for r, mode in enumerate(MODES):
        for l in range(1, n_layers + 1):
            m, s = arrays[f"{mode}/W{l}/mean"], arrays[f"{mode}/W{l}/std"]
            ax = axes[r, l - 1]
            x = np.arange(len(m))
            ax.fill_between(x, m - s, m + s, alpha=0.3)
            ax.plot(x, m)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{'(a) standard' if r == 0 else '(b) regularized, Eq. 4'}: "
                         f"$W^{{({l})}}$", fontsize=10)
            ax.set_xlabel("row $i$ (a neuron's inputs), by mean")
            ax.set_ylabel(f"$W^{{({l})}}_{{ij}}$: row mean $\\pm$ std")
    return save_figure(fig, out, NAME, dpi=100)


def report(out, preset):
    arrays, rec = load_results(out, NAME)
    n_layers = sum(1 for k in arrays if k.startswith("standard/") and k.endswith("/mean"))
    said = "; ".join(
        f"W{l}: mean |row sum| {arrays[f'standard/W{l}/abs_row_sum'].mean():.3g} (standard) vs "
        f"{arrays[f'regularized_cor/W{l}/abs_row_sum'].mean():.3g} (regularized)"
        for l in range(1, n_layers + 1))
    return [], [FigureEntry(
        "Duque 2024, Fig. 2", f"figures/{NAME}.png",
        "Per-row mean (line) and std (band) of each weight matrix, rows ordered by mean, for "
        "(a) standard training and (b) the proposed regularization: all rows except those of "
        "the input matrix have their means driven toward zero.",
        "MNIST models of the Fig. 4 runs. " + said + ". Eq. 4 acts on W2 and W3 only.",
        {"preset": preset.name})]

