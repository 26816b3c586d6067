"""Figure modules duque_fig3, semenova_fig3 and semenova_fig4 on tiny configurations.

Statistical assertions use fixed seeds; each states its margin in standard errors (z >= 4,
two-sided false-positive rate below ~1e-4 per assertion under the normal approximation).
"""
import numpy as np
import pytest

from refnet.reproduction.duque import DuqueSetup
from refnet.reproduction.presets import Preset
from refnet.reproduction.registry import figure_module
from refnet.reproduction.results import load_results
from refnet.reproduction.semenova.symmetric import symmetric_network, symmetric_state_moments
from refnet.propagation.symmetric import symmetric_network_moments

QUIET = dict(log=lambda *a: None)


@pytest.fixture(scope="module")
def tiny():
    setup = DuqueSetup("synthetic", hidden=(8, 8), baseline_epochs=2, finetune_epochs=1,
                       batch_size=64, n_val=100)
    return Preset("test", duque=(setup,), n_levels=3, repetitions=2, semenova_T=12,
                  semenova_K=40)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("validation_val1")


# --- the symmetric-network helper ------------------------------------------------------------
def test_symmetric_network_layout():
    arch, p = symmetric_network(3.0, 5, 7)
    assert arch.sizes == (1, 7, 7, 7, 1) and arch.activations[-1] == "identity"
    assert all(np.allclose(W.sum(axis=1), 1.0) for W in p.W) and all(np.all(b == 0) for b in p.b)
    with pytest.raises(ValueError, match="n_layers"):
        symmetric_network(3.0, 2)


def test_symmetric_state_moments_match_gauss_hermite():
    # 4-layer alpha = 4 network, mixed noise, K = 4000: the Gaussian-state analytic variance is
    # far more accurate than the MC error; variance SE ~ sqrt(2/K) = 2.2 %, allow z = 5 (11 %).
    u = np.array([0.2, 0.5, 0.8])
    D = (1e-4, 0.0, 1e-3, 0.0)
    mc = symmetric_state_moments(u, 4.0, 4, D, 4000, rng=3)
    gh = symmetric_network_moments(u, "shifted_sigmoid(alpha=4)", 4, 200, *D, method="gauss_hermite")
    np.testing.assert_allclose(mc["var_state"], gh["var_state"][1:], rtol=0.11)
    np.testing.assert_allclose(mc["var_output"], gh["var_output"][-1], rtol=0.11)
    assert mc["seed"] == 3
    again = symmetric_state_moments(u, 4.0, 4, D, 4000, rng=3)
    np.testing.assert_array_equal(again["var_state"], mc["var_state"])  # seeded: reproducible


# --- Duque 2024, Fig. 3 ---------------------------------------------------------------------
def test_duque_fig3_panel_a_eq6_against_samples():
    mod = figure_module("duque_fig3")
    a = mod.panel_a((0.0, 2.0, 4.0), 0.2, 40_000, rng=1)
    np.testing.assert_allclose(np.trapezoid(a["pdf"], a["a"], axis=1), 1.0, atol=2e-3)
    # sampled variance: relative SE ~ sqrt(2 / n) = 0.7 % (Gaussian approx.); 5 % is > 5 SE
    np.testing.assert_allclose(a["var"], a["var_pdf"], rtol=0.05)
    assert np.all(np.diff(a["var"]) < 0)  # further from 0, smaller output variance (p. 4)
    w = np.diff(a["edges"])
    np.testing.assert_allclose((a["hist"] * w).sum(axis=1), 1.0)


def test_duque_fig3_compute_plot_report(tiny, out):
    mod = figure_module("duque_fig3")
    mod.compute(tiny, out, **QUIET)
    A, rec = load_results(out, "duque_fig3")
    assert rec["models"] == list(mod.MODES) and rec["n_test_images"] == 300
    for m in mod.MODES:
        for k in ("z2", "a2", "W3"):
            h, e = A[f"{m}/{k}"], A[f"edges/{k}"]
            assert h.shape == (len(e) - 1,)
            np.testing.assert_allclose((h * np.diff(e)).sum(), 1.0)
        s = rec["summary"][m]
        assert 0 <= s["saturated_a2"] <= 1 and s["mean_abs_W3"] > 0
    assert mod.plot(out).stat().st_size > 10_000
    checks, figs = mod.report(out, tiny)
    assert checks == []  # Fig. 3 prints no numbers
    assert "regularized (Eq. 7)" in figs[0].refnet_says and "within 0.05" in figs[0].refnet_says
    mod.compute(tiny, out, **QUIET)  # cached: no error, nothing recomputed


# --- Semenova 2022, Fig. 3 ------------------------------------------------------------------
def test_semenova_fig3_single_neuron_snr():
    mod = figure_module("semenova_fig3")
    y = np.linspace(0.1, 1, 5)
    # multiplicative only: SNR = y / sqrt(2 D_M y^2) = 1 / sqrt(2 D_M) (constant, p. 4)
    np.testing.assert_allclose(mod.single_neuron_snr(y, (0, 0, 1e-3, 0)), 1 / np.sqrt(2e-3))
    # additive only: linear in y with slope 1 / sqrt(2 D_A)
    np.testing.assert_allclose(mod.single_neuron_snr(y, (1e-4, 0, 0, 0)), y / np.sqrt(2e-4))


def test_semenova_fig3_compute_plot_report(tiny, out):
    mod = figure_module("semenova_fig3")
    mod.compute(tiny, out, **QUIET)
    A, rec = load_results(out, "semenova_fig3")
    assert rec["settings"]["T"] == 12 and rec["settings"]["K"] == 40
    K = rec["settings"]["K"]
    se_point = 1 / np.sqrt(2 * (K - 1))  # relative SE of one Monte-Carlo SNR (Gaussian output)
    for key in mod.PANELS:
        assert A[f"{key}/mc_snr"].shape == (12,) and np.all(A[f"{key}/mc_snr"] > 0)
        mc, an = A[f"{key}/mc_snr"], A[f"{key}/first_order_snr"]
        ok = np.isfinite(mc) & np.isfinite(an) & (A[f"{key}/mc_mean"] > 0.01)
        # signed mean over the inputs (independent draws): SE = se_point / sqrt(n); allow the
        # first-order bias the full run measures (median |error| 3 % at K = 300) plus 4 SE
        bias = np.mean(an[ok] / mc[ok] - 1)
        assert abs(bias) < 0.05 + 4 * se_point / np.sqrt(ok.sum()), (key, bias)
    assert mod.plot(out).exists()
    checks, figs = mod.report(out, tiny)
    assert checks == [] and figs[0].refnet_says.count("median |SNR_analytic") == 6


# --- Semenova 2022, Fig. 4 ------------------------------------------------------------------
def test_semenova_fig4_taylor_divergence_is_isolated():
    mod = figure_module("semenova_fig4")
    u = np.array([0.0, 0.3, 0.5, 0.7, 1.0])
    mean, var = mod.analytic_state_moments(u, 3.0, "taylor")
    assert var.shape == (11, 5)
    assert np.all(np.isfinite(var[:, [0, 4]]))  # states near the focusing points: converges
    assert np.isnan(var[-1, 2]) and np.all(np.isfinite(var[:4, 2]))  # u = 0.5, deep: diverged
    _, fo = mod.analytic_state_moments(u, 3.0, "first_order")
    np.testing.assert_allclose(fo, symmetric_network_moments(
        u, "shifted_sigmoid(alpha=3.0)", 12, 200, 1e-4)["var_state"][1:])
    g = mod.input_grid(9)
    assert g[0] == 0 and g[-1] == 1 and g[4] == 0.5 and np.all(np.diff(g) > 0)


def test_semenova_fig4_compute_plot_report(tiny, out):
    mod = figure_module("semenova_fig4")
    mod.compute(tiny, out, **QUIET)
    A, rec = load_results(out, "semenova_fig4")
    assert A["2.0/mc"].shape == (11, 41) and A["err_taylor"].shape == (15, 11)
    # alpha = 1.5: S_n falls layer by layer; alpha = 4: grows (Sec. III A)
    assert A["1.5/S_mc"][-1] < 0.1 * A["1.5/S_mc"][0] and A["4.0/S_mc"][-1] > 100 * A["4.0/S_mc"][0]
    # Fig. 4d pairing at x~ = 0.5: orders 2k - 1 and 2k give the same value
    e = A["err_taylor"][:, 2]  # layer 4
    np.testing.assert_allclose(e[1::2], e[0:-1:2], rtol=1e-9)
    assert mod.plot(out).stat().st_size > 10_000
    checks, figs = mod.report(out, tiny)
    assert len(checks) == 2 and all(np.isfinite(c.refnet) for c in checks)
    assert checks[1].paper == 1e-3 and "diverges" in figs[0].refnet_says
