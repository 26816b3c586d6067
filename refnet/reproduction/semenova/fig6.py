"""Semenova 2022, Fig. 6: SNR in the hidden and output layers of network A, three choices of p*.

(a-c) SNR vs mean of every neuron of layers 2, 3, 4 (the paper's numbering: the two hidden
layers and the output; refnet's weight layers 1, 2, 3) for T images of digit 5, K repeats each
(Monte-Carlo), against the analytic prediction of Eqs. 14-15 with ``p*_n`` approximated as
uniform (red), normal (green) and by Eq. 29's ``g`` (black), all fitted to the clean internal
states ``x~_n`` of those inputs (refnet.propagation.trained). (d-f) Histograms of ``x~_n`` with
the three approximating densities.

Noise: as semenova_fig5 (Fig. 3's intensities, all four types, every layer's output including
the input); the paper does not state Fig. 6's noise.

    python validation/semenova_fig6.py [--preset quick|full] [--seed 0] [--out DIR]
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import protocol as se
from ..results import load_results, save_figure, save_results
from ..report import FigureEntry

NAME = "semenova_fig6"
#: Semenova intensities D (variance 2D): Fig. 3's values; Fig. 6 does not state its noise.
NOISE_INTENSITIES = {"D_A_U": 1e-4, "D_A_C": 1e-4, "D_M_U": 1e-3, "D_M_C": 1e-3}
#: p* approximations in the paper's colours (Fig. 6: red uniform, green normal, black g).
DENSITIES = {"uniform": "tab:red", "normal": "tab:green", "exp_quartic": "k"}
N_BINS = 60
MAX_POINTS = 20000  #: scatter points drawn per panel (all are used for the numbers)


def layer_variance_curve(y, S, D):
    """Output variance of a sigmoid layer vs its mean ``y`` (Semenova 2022, Eq. 5, p. 3) with
    Eq. 9's first-order ``F = f'(f^{-1}(y))^2 S`` and ``f'(f^{-1}(y)) = y (1 - y)`` for the
    logistic sigmoid. ``D`` = (D_A_U, D_A_C, D_M_U, D_M_C) intensities; y any shape."""
    from refnet.propagation.semenova import sigma_plus_squared, sigma_times_squared

    s_p, s_x = sigma_plus_squared(D[0], D[1]), sigma_times_squared(D[2], D[3])
    y = np.asarray(y, float)
    return s_p + s_x * y ** 2 + (1 + s_x) * (y * (1 - y)) ** 2 * S


def compute(preset, out, log=print) -> None:
    from refnet.model import forward
    from refnet.montecarlo import neuron_statistics
    from refnet.noise import NoiseSpec, noise_config
    from refnet.propagation.trained import state_density, trained_network_variances

    if load_results(out, NAME) is not None:
        log(f"{NAME}: cached")
        return
    setup = se.setup_for("A", preset)
    data = se.load_data(setup)
    arch, params, meta = se.train_network(setup, data, Path(out) / "models", log=log)
    if any(a != "sigmoid" for a in arch.activations):
        raise ValueError("network A must have logistic-sigmoid hidden and output neurons")
    X, inputs = se.figure5_inputs(setup, data, preset.semenova_T)
    L, D = arch.n_layers, tuple(NOISE_INTENSITIES.values())
    cfg = noise_config("semenova", NoiseSpec.from_intensities(*D), L)
    log(f"  {NAME}: Monte-Carlo, T = {len(X)} inputs x K = {preset.semenova_K}, layers 1..{L}")
    st = neuron_statistics(arch, params, X, cfg, K=preset.semenova_K, rng=preset.seed)
    Z = forward(arch, params, X)[1].Z
    arrays, failed = {}, []
    for kind in DENSITIES:
        try:
            arrays[f"S/{kind}"] = trained_network_variances(arch, params, X, *D, density=kind)["S"]
        except np.linalg.LinAlgError:  # Eq. 29's Newton fit can fail on heavy-tailed states
            arrays[f"S/{kind}"] = np.full(L, np.nan)
            failed.append(kind)
    for l in range(1, L + 1):
        arrays[f"{l}/mean"], arrays[f"{l}/variance"] = st.layers[l].mean, st.layers[l].variance
        z = Z[l - 1].ravel()
        arrays[f"{l}/hist"], arrays[f"{l}/edges"] = np.histogram(z, bins=N_BINS, density=True)
        for kind in DENSITIES:
            try:
                grid, p = state_density(z, kind)
            except np.linalg.LinAlgError:
                grid = p = np.zeros(0)
            arrays[f"{l}/grid/{kind}"], arrays[f"{l}/density/{kind}"] = grid, p
    save_results(out, NAME, arrays, {
        "preset": preset.name, "seed": preset.seed, "K": preset.semenova_K, "T": len(X),
        "noise_intensities": NOISE_INTENSITIES, "inputs": inputs, "setup": asdict(setup),
        "errors": meta["errors"], "data": data.provenance, "n_layers": L,
        "failed_fits": failed})


def agreement(arrays, L: int) -> dict:
    """``{(layer, kind): median over (input, neuron) of Var_MC / Var_predicted(mean_MC)}``."""
    res = {}
    for l in range(1, L + 1):
        m, v = arrays[f"{l}/mean"], arrays[f"{l}/variance"]
        for kind in DENSITIES:
            pred = layer_variance_curve(m, arrays[f"S/{kind}"][l - 1],
                                        tuple(NOISE_INTENSITIES.values()))
            res[(l, kind)] = float(np.median(v / pred))
    return res


def spread_ratio(arrays, L: int, kind: str = "exp_quartic") -> dict:
    """``{layer: (10th, 90th percentile)}`` of Var_MC / Var_predicted over (input, neuron)."""
    res = {}
    for l in range(1, L + 1):
        m, v = arrays[f"{l}/mean"], arrays[f"{l}/variance"]
        D = tuple(NOISE_INTENSITIES.values())
        r = v / layer_variance_curve(m, arrays[f"S/{kind}"][l - 1], D)
        res[l] = tuple(float(q) for q in np.nanpercentile(r, [10, 90]))
    return res


#: Legend names and line styles of the p* approximations (distinct, so none hides another).
PSTAR_LABEL = {"uniform": "uniform", "normal": "normal", "exp_quartic": "Eq. 29 (exp-quartic)"}
STYLE = {"uniform": dict(ls="--", lw=2.2, marker="s", markevery=40, ms=4),
         "normal": dict(ls=":", lw=2.2, marker="^", markevery=(20, 40), ms=4),
         "exp_quartic": dict(ls="-", lw=1.0)}


def plot(out) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays, rec = load_results(out, NAME)
    L = rec["n_layers"]
    D = tuple(NOISE_INTENSITIES.values())
    rng = np.random.default_rng(0)  # only picks which points are drawn
    fig, axes = plt.subplots(2, L, figsize=(5 * L, 8.5), squeeze=False)
    y = np.linspace(1e-3, 1 - 1e-3, 400)
    for l in range(1, L + 1):
        m, v = arrays[f"{l}/mean"].ravel(), arrays[f"{l}/variance"].ravel()
        pick = rng.permutation(m.size)[:MAX_POINTS]
        ax = axes[0, l - 1]
        ax.scatter(m[pick], m[pick] / np.sqrt(v[pick]), s=3, c="tab:orange", alpha=0.4,
                   label="numerical (Monte-Carlo, all four noise types)")
        for kind, colour in DENSITIES.items():
            S = arrays[f"S/{kind}"][l - 1]
            if not np.isfinite(S):
                continue
            # the three curves nearly coincide (p* enters only through S_n): distinct styles
            # and markers keep each visible
            ax.plot(y, y / np.sqrt(layer_variance_curve(y, S, D)), color=colour,
                    label=f"analytic, $p^*$ {PSTAR_LABEL[kind]}, $S_n$ = {S:.3g}", **STYLE[kind])
        ax.set_xlabel(f"output mean $E(y)$ of layer {l + 1} (dimensionless)")
        ax.set_ylabel(r"SNR $= E(y)\,/\,\sqrt{\mathrm{Var}(y)}$")
        ax.set_title(f"({'abc'[l - 1]}) layer {l + 1} ({'output' if l == L else 'hidden'}), "
                     f"{rec['preset']} preset", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        ax = axes[1, l - 1]
        e = arrays[f"{l}/edges"]
        ax.stairs(arrays[f"{l}/hist"], e, fill=True, color="0.8", label=r"$\tilde{x}$ of the clean network (histogram)")
        for kind, colour in DENSITIES.items():
            ax.plot(arrays[f"{l}/grid/{kind}"], arrays[f"{l}/density/{kind}"], color=colour,
                    label=f"$p^*$ {PSTAR_LABEL[kind]}", **STYLE[kind])
        ax.set_xlim(e[0] - 2 * (e[1] - e[0]), e[-1] + 2 * (e[1] - e[0]))
        ax.set_xlabel(f"pre-activation $\\tilde{{x}}$ of layer {l + 1} (dimensionless)")
        ax.set_ylabel(r"probability density $p(\tilde{x})$")
        ax.set_title(f"({'def'[l - 1]}) distribution of $\\tilde{{x}}$, layer {l + 1}", fontsize=10)
        ax.legend(fontsize=7)
    return save_figure(fig, out, NAME, dpi=100)


def report(out, preset):
    arrays, rec = load_results(out, NAME)
    L = rec["n_layers"]
    a = agreement(arrays, L)
    said = "; ".join(
        f"layer {l + 1}: " + ", ".join(f"{k.replace('_', '-')} {a[(l, k)]:.2f}" for k in DENSITIES)
        for l in range(1, L + 1))
    ok = [k for k in DENSITIES if k not in rec["failed_fits"]]
    S = np.array([arrays[f"S/{k}"] for k in ok])  # (n_ok, L)
    spread = float(np.max(np.ptp(S, axis=0) / S.mean(axis=0)))
    best = {l: min(ok, key=lambda k: abs(np.log(a[(l, k)]))) for l in range(1, L + 1)}
    return [], [FigureEntry(
        "Semenova 2022, Fig. 6", f"figures/{NAME}.png",
        "SNR in the hidden and output layers of network A (a-c): analytic predictions with p* "
        "uniform (red), normal (green) and g of Eq. 29 (black); g agrees best with the "
        "numerics, uniform and normal give similar behaviour but worse quantitative agreement. "
        "(d-f) distribution of x~ in layers 2, 3, 4 with the approximating curves.",
        f"Median over (input, neuron) of Monte-Carlo variance / predicted variance: {said}. "
        "Spread of that ratio (10th-90th percentile, exp-quartic): " + ", ".join(
            f"layer {l + 1} {lo:.2f}-{hi:.2f}" for l, (lo, hi) in spread_ratio(arrays, L).items()) +
        " (one S_n per layer cannot follow each neuron's own weights: the scatter is wide). "
        "Closest to 1 per layer: " + ", ".join(f"layer {l + 1} {best[l]}" for l in best) +
        ". Predicted S_n = Var(x~_n) for layers 2..4: " + "; ".join(
            f"{k.replace('_', '-')} " + ", ".join(f"{v:.3g}" for v in arrays[f"S/{k}"])
            for k in DENSITIES) +
        f"; the choice of p* changes S_n by at most {100 * spread:.1f}% (p* enters only "
        "through Eq. 15's averages of f, f^2 and f'^2 of the previous layer)" +
        (f". Eq. 29 fit failed for: {', '.join(rec['failed_fits'])}" if rec["failed_fits"]
         else "") + f". Network A test error {rec['errors']['test']['error']:.2f}%.",
        {"noise intensities D (variance 2D)": NOISE_INTENSITIES, "K": rec["K"], "T": rec["T"],
         "inputs": "digit-5 images (as Fig. 5a)", "epochs": rec["setup"]["epochs"]})]

