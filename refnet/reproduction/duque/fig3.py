"""Duque 2024, Fig. 3: why saturation suppresses uncorrelated noise.

(a) PDF of a = sigmoid(z), z ~ N(mu, 0.2) (0.2 is a **variance**, as in the paper's notation
N(mu, sigma^2) and refnet's noise contract) for mu = 0..4, from Eq. 6
(refnet.propagation.duque.activation_pdf), over histograms of sampled activations.
(b)-(d) distributions of the hidden-layer-2 pre-activations z^(2), post-activations a^(2)
(clean forward pass over test images) and of the output weights W^(3), for the standard,
noise-aware (uncorrelated) and regularized (Eq. 7, uncorrelated) MNIST models of duque_fig4
(trained here if missing).

    python validation/duque_fig3.py [--preset quick|full] [--seed 0] [--out DIR]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import protocol as dq
from ..results import load_results, save_figure, save_results
from ..report import FigureEntry

NAME = "duque_fig3"
MODES = ("standard", "noise_aware_unc", "regularized_unc")
LABELS = {"standard": "standard training", "noise_aware_unc": "noise-aware (additive uncorrelated)",
          "regularized_unc": "regularized (Eq. 7)"}
COLORS = {"standard": "C0", "noise_aware_unc": "C2", "regularized_unc": "C3"}
MUS = (0.0, 1.0, 2.0, 3.0, 4.0)
Z_VARIANCE = 0.2  #: Fig. 3a: z ~ N(mu, 0.2), a variance
SAT = 0.05  #: "saturated": a within SAT of 0 or 1


def panel_a(mus, variance, n_samples, rng):
    """Eq. 6 PDF on a grid and histogram densities of sampled sigmoid(z), for each mu.

    Returns a dict: ``a`` (n_grid,), ``edges`` (n_bins + 1,), ``pdf``, ``hist``, ``var`` (the
    sampled Var(a)) and ``var_pdf`` (Var(a) integrated from the Eq. 6 PDF), stacked over ``mus``.
    """
    from scipy.special import expit

    from refnet.propagation.duque import activation_pdf

    rng = np.random.default_rng(rng)
    a = np.linspace(1e-4, 1 - 1e-4, 2000)
    edges = np.linspace(0, 1, 101)
    pdf, hist, var, var_pdf = [], [], [], []
    for mu in mus:
        p = activation_pdf(a, "sigmoid", mu, variance)
        m = np.trapezoid(a * p, a)
        pdf.append(p)
        var_pdf.append(np.trapezoid((a - m) ** 2 * p, a))
        s = expit(rng.normal(mu, np.sqrt(variance), n_samples))  # std = sqrt(variance)
        hist.append(np.histogram(s, edges, density=True)[0])
        var.append(s.var())
    return {"a": a, "edges": edges, "pdf": np.array(pdf), "hist": np.array(hist),
            "var": np.array(var), "var_pdf": np.array(var_pdf)}


def layer_distributions(arch, params, X, bins):
    """Histogram densities of z^(2), a^(2) (clean pass on X) and of W^(3), plus summaries."""
    from refnet.model import forward

    _, cache = forward(arch, params, X)
    z2, a2, W3 = cache.Z[1], cache.A[2], params.W[-1]
    a1 = cache.A[1]
    out = {"z2": np.histogram(np.clip(z2, bins["z2"][0], bins["z2"][-1]), bins["z2"], density=True)[0],
           "a2": np.histogram(a2, bins["a2"], density=True)[0],
           "W3": np.histogram(W3, bins["W3"], density=True)[0]}
    summary = {"saturated_a2": float(np.mean((a2 < SAT) | (a2 > 1 - SAT))),
               "saturated_a1": float(np.mean((a1 < SAT) | (a1 > 1 - SAT))),
               "mean_abs_z2": float(np.mean(np.abs(z2))),
               "mean_slope_z2": float(np.mean(a2 * (1 - a2))),  # sigmoid' = a (1 - a)
               "mean_abs_W3": float(np.mean(np.abs(W3))), "std_W3": float(W3.std()),
               "z2_clipped": float(np.mean(np.abs(z2) > bins["z2"][-1]))}
    return out, summary


def compute(preset, out, log=print) -> None:
    cached = load_results(out, NAME)
    if cached is not None and cached[1].get("setup_key") == preset.duque[0].key():
        log(f"{NAME}: cached")
        return
    quick = preset.name != "full"
    setup = preset.duque[0]  # MNIST in both presets
    a = panel_a(MUS, Z_VARIANCE, 20_000 if quick else 200_000, preset.seed)
    arrays = {f"a/{k}": v for k, v in a.items()}
    arrays["mus"] = np.array(MUS)
    data = dq.load_data(setup)
    models = dq.train_models(setup, data, Path(out) / "models", MODES, log=log)
    n_test = min(len(data.X_test), 2000 if quick else 10_000)
    X = data.X_test[:n_test]
    w_max = max(np.abs(models[m][1].W[-1]).max() for m in MODES)
    bins = {"z2": np.linspace(-12, 12, 97), "a2": np.linspace(0, 1, 51),
            "W3": np.linspace(-w_max, w_max, 81)}
    summaries = {}
    for mode in MODES:
        arch, params, _ = models[mode]
        hists, summaries[mode] = layer_distributions(arch, params, X, bins)
        for k, h in hists.items():
            arrays[f"{mode}/{k}"] = h
    for k, e in bins.items():
        arrays[f"edges/{k}"] = e
    save_results(out, NAME, arrays, {
        "preset": preset.name, "seed": setup.seed, "setup_key": setup.key(),
        "models": list(MODES), "summary": summaries, "n_test_images": int(n_test),
        "data": data.provenance,
        "settings": {"z_variance": Z_VARIANCE, "mus": list(MUS), "saturation_margin": SAT,
                     "panel_a_samples": 20_000 if quick else 200_000,
                     "distributions": "clean forward pass, hidden layer 2 and output weights"}})


def plot(out) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    A, rec = load_results(out, NAME)
    fig, ax = plt.subplots(1, 4, figsize=(18, 4.2))
    e = A["a/edges"]
    for i, mu in enumerate(A["mus"]):
        c = f"C{i}"
        ax[0].stairs(A["a/hist"][i], e, color=c, alpha=0.45, fill=True)
        ax[0].plot(A["a/a"], A["a/pdf"][i], color=c, label=f"$\\mu$ = {mu:g}")
    ax[0].set(title=r"(a) PDF of $a = \sigma(z)$, $z \sim N(\mu, 0.2)$ (0.2: variance)",
              xlabel="$a$ (dimensionless)", ylabel="probability density $p_a(a)$",
              ylim=(0, 1.1 * A["a/hist"].max()))
    ax[0].legend(fontsize=8)
    for k, axis, title, xl in (("z2", ax[1], "(b) pre-activations $z^{(2)}$", "$z^{(2)}$"),
                               ("a2", ax[2], "(c) post-activations $a^{(2)}$", "$a^{(2)}$"),
                               ("W3", ax[3], "(d) output weights $W^{(3)}$", "$W^{(3)}_{ij}$")):
        for mode in rec["models"]:
            axis.stairs(A[f"{mode}/{k}"], A[f"edges/{k}"], color=COLORS[mode], lw=1.3,
                        label=LABELS[mode])
        axis.set(title=title, xlabel=xl + " (dimensionless)", ylabel="probability density")
    ax[2].set_yscale("log")
    ax[3].legend(handles=ax[1].get_legend_handles_labels()[0], fontsize=7, loc="upper left")
    fig.suptitle(f"Duque 2024, Fig. 3 ({rec['preset']} preset): MNIST models, "
                 f"{rec['n_test_images']} test images, clean pass", fontsize=11)
    return save_figure(fig, out, NAME, dpi=90)


def report(out, preset):
    A, rec = load_results(out, NAME)
    S = rec["summary"]
    var = ", ".join(f"mu={mu:g}: {v:.3g} ({vp:.3g})"
                    for mu, v, vp in zip(A["mus"], A["a/var"], A["a/var_pdf"]))
    models = "; ".join(
        f"{LABELS[m]}: {100 * S[m]['saturated_a2']:.0f}% of hidden-2 activations within {SAT} of "
        f"0 or 1 (hidden 1: {100 * S[m]['saturated_a1']:.0f}%), mean |z2| {S[m]['mean_abs_z2']:.2f}, "
        f"mean sigmoid'(z2) {S[m]['mean_slope_z2']:.3f}, mean |W3| {S[m]['mean_abs_W3']:.3f}"
        + (f" ({100 * S[m]['z2_clipped']:.1f}% of z2 beyond the plotted range, counted in the "
           "edge bins)" if S[m]["z2_clipped"] > 0.001 else "")
        for m in rec["models"])
    quick = " Quick preset: models trained for a few epochs only." if rec["preset"] == "quick" else ""
    return [], [FigureEntry(
        "Duque 2024, Fig. 3", f"figures/{NAME}.png",
        "(a) PDF of z ~ N(mu, 0.2) after the sigmoid for several mu: the further mu is from the "
        "origin, the smaller the output variance. (b) pre-activation, (c) post-activation and "
        "(d) output-weight distributions for standard (blue), noise-aware and regularized (red) "
        "training: the regularized model is similar to the noise-aware one but shifted further "
        "into the saturated regions of the sigmoid, with smaller output weights.",
        f"(a) Eq. 6 curves over the sampled histograms; Var(a) sampled (from the Eq. 6 PDF): {var}: "
        f"the variance falls as mu moves away from 0. {models}.{quick} "
        "The paper prints no numbers for Fig. 3.",
        {"preset": preset.name, **rec["settings"], "n_test_images": rec["n_test_images"]})]

