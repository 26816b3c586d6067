"""Semenova 2022, Sec. IV: the trained networks and the Fig. 5 / Fig. 6 scripts, on tiny settings.

Tiny nets (8-8 hidden), seeded synthetic blobs in place of MNIST / Fashion-MNIST, a short
generated Mackey-Glass series; no network access. Fixed seeds make every assertion
deterministic; the statistical bounds below are wide enough that, for K = 50 repeats, a correct
implementation would fail them with probability far below 1e-6 (median over >= 100 ratios of
chi-square(49)/49 variables, each with relative spread ~0.2).
"""
import numpy as np
import pytest

from refnet.reproduction.semenova import protocol as se
from refnet.reproduction.presets import Preset
from refnet.reproduction.registry import figure_module
from refnet.reproduction.results import load_results


@pytest.fixture(scope="module")
def tiny():
    return Preset("test", semenova_T=12, semenova_K=50, semenova_epochs=2,
                  extra={"semenova_setup": {"dataset": "synthetic", "hidden": (8, 8),
                                            "mg_points": 400, "batch_size": 32}})


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("val2")


def test_setups_follow_the_paper_and_the_preset(tiny):
    a, b, c = (se.setup_for(n, tiny) for n in "ABC")
    assert (a.train_biases, b.train_biases, c.train_biases) == (False, True, True)
    assert (a.output_activation, c.output_activation) == ("sigmoid", "identity")
    assert c.dataset == "mackey-glass" and a.dataset == "synthetic"  # C is never substituted
    assert a.epochs == 2 and a.hidden == (8, 8) and a.key() != b.key()
    with pytest.raises(ValueError, match="network: unknown 'D'"):
        se.setup_for("D", tiny)


def test_fig5_compute_plot_report(tiny, out):
    mod = figure_module("semenova_fig5")
    mod.compute(tiny, out, log=lambda *a: None)
    arrays, rec = load_results(out, "semenova_fig5")
    assert arrays["A/mean"].shape == (12, 10) and arrays["C/mean"].shape == (12, 1)
    assert rec["networks"]["A"]["inputs"]["class"] == 5
    assert rec["networks"]["B"]["inputs"]["class"] == 2
    for net in "ABC":
        assert np.all(arrays[f"{net}/variance"] > 0) and np.all(arrays[f"{net}/S"] > 0)
        a = mod.agreement(arrays, net)
        assert np.isfinite(a["sens_ratio"])  # the tight check: test_jacobian_variance_within_se
        assert np.isfinite(a["eq14_ratio"])
    assert mod.plot(out).stat().st_size > 10_000
    checks, figs = mod.report(out, tiny)
    # synthetic stand-ins for A and B: only C's printed number applies
    assert [c.quantity[:24] for c in checks] == ["network C: test accuracy"]
    err = rec["networks"]["C"]["errors"]["test"]
    assert checks[0].refnet == pytest.approx(100 * (1 - err["nrmse"]))
    # the envelope is the range over the four readings of "accuracy" on the same network
    lo, hi = checks[0].envelope
    assert lo <= checks[0].refnet <= hi and "persistence" in checks[0].envelope_cells
    persistence = err["persistence"]["accuracy"]
    assert f"persistence {persistence:.2f}" in checks[0].envelope_cells
    assert "Jacobian prediction inside the MC 95% variance interval" in figs[0].refnet_says


def test_networks_are_cached_and_a_keeps_its_constant_biases(tiny, out):
    mod = figure_module("semenova_fig5")
    mod.compute(tiny, out, log=lambda *a: None)  # no-op if the Fig. 5 test ran first
    models = sorted(p.name for p in (out / "models").glob("*.npz"))
    assert len(models) == 3 and not any("ckpt" in m for m in models)
    (out / "results" / "semenova_fig5.npz").unlink()
    mod.compute(tiny, out, log=lambda *a: None)  # recomputed from the cached networks
    setup_a = se.setup_for("A", tiny)
    data = se.load_data(setup_a)
    arch, params, meta = se.train_network(setup_a, data, out / "models", log=lambda *a: None)
    assert sorted(p.name for p in (out / "models").glob("*.npz")) == models
    start = se._initial_params(setup_a, arch)
    for b, b0 in zip(params.b, start.b):
        np.testing.assert_array_equal(b, b0)  # not optimised (Semenova 2022, Sec. IV)
        assert np.all(np.abs(b) <= setup_a.constant_bias_range)
    assert any(not np.array_equal(w, w0) for w, w0 in zip(params.W, start.W))
    setup_b = se.setup_for("B", tiny)
    _, params_b, _ = se.train_network(setup_b, se.load_data(setup_b), out / "models",
                                      log=lambda *a: None)
    assert any(np.any(b != 0) for b in params_b.b)


def test_fig6_compute_plot_report(tiny, out):
    mod = figure_module("semenova_fig6")
    mod.compute(tiny, out, log=lambda *a: None)
    arrays, rec = load_results(out, "semenova_fig6")
    assert rec["n_layers"] == 3 and arrays["2/mean"].shape == (12, 8)
    for l in (1, 2, 3):
        for kind in mod.DENSITIES:  # every approximating density is normalised on its grid
            g, p = arrays[f"{l}/grid/{kind}"], arrays[f"{l}/density/{kind}"]
            assert np.trapezoid(p, g) == pytest.approx(1.0, abs=0.02)
    a = mod.agreement(arrays, 3)
    assert all(np.isfinite(v) and v > 0 for v in a.values())
    assert mod.plot(out).stat().st_size > 10_000
    checks, figs = mod.report(out, tiny)
    assert checks == [] and figs[0].figure == "Semenova 2022, Fig. 6"


def test_fig6_variance_curve_matches_eq5_by_hand():
    mod = figure_module("semenova_fig6")
    D = (1e-4, 2e-4, 1e-3, 3e-3)
    s_p = 2 * D[0] + 2 * D[1]
    s_x = 2 * D[2] + 2 * D[3] + 4 * D[2] * D[3]
    y, S = 0.3, 0.05
    want = s_p + s_x * y ** 2 + (1 + s_x) * (y * (1 - y)) ** 2 * S
    assert mod.layer_variance_curve(y, S, D) == pytest.approx(want, rel=1e-14)


def test_fig5_falls_back_to_normal_when_the_eq29_fit_fails(monkeypatch):
    import refnet.propagation.trained as tr
    from refnet.model import init_params, mlp

    real = tr.trained_network_variances

    def fail_on_eq29(*args, density, **kw):
        if density == "exp_quartic":
            raise np.linalg.LinAlgError("Singular matrix")
        return real(*args, density=density, **kw)

    monkeypatch.setattr(tr, "trained_network_variances", fail_on_eq29)
    mod = figure_module("semenova_fig5")
    arch = mlp((4, 6, 6, 2), "sigmoid", "sigmoid")
    params = init_params(arch, rng=0)
    X = np.random.default_rng(1).uniform(size=(30, 4))
    res = mod.eq14(arch, params, X)
    want = real(arch, params, X, 1e-4, 1e-4, 1e-3, 1e-3, density="normal")
    assert res["density"] == "normal"
    np.testing.assert_allclose(res["S"], want["S"])


def test_jacobian_variance_within_se_of_monte_carlo():
    """Per (input, output neuron), the first-order Jacobian variance against Monte-Carlo with
    K = 2000 repeats: relative SE of a variance sqrt(2 / (K - 1)) = 3.2 %; every one of the
    80 points within 5 SE (two-sided false-positive rate < 1e-4 for all of them together);
    the noise (Fig. 3's intensities) is small enough that the first-order bias is far below."""
    from refnet.model import init_params, mlp
    from refnet.montecarlo import neuron_statistics
    from refnet.propagation.sensitivity import output_variance_contributions

    mod = figure_module("semenova_fig5")
    arch = mlp((6, 8, 8, 4), "sigmoid", "sigmoid")
    params = init_params(arch, "torch", rng=3)
    X = np.random.default_rng(4).uniform(size=(20, 6))
    K = 2000
    cfg = mod.noise_config(arch.n_layers)
    st = neuron_statistics(arch, params, X, cfg, K=K, rng=5, layers=(3,)).layers[3]
    _, contrib, _, _ = output_variance_contributions(arch, params, X, cfg, covariance=False)
    ratio = st.variance / contrib.sum(axis=(0, 1))
    se = np.sqrt(2 / (K - 1))
    assert np.all(np.abs(ratio - 1) < 5 * se), np.abs(ratio - 1).max()
    assert abs(np.mean(ratio) - 1) < 5 * se / np.sqrt(ratio.shape[0])  # inputs independent


def test_fig5_on_two_workers_gives_the_bits_of_one_process(tiny, tmp_path):
    """The three networks trained and analysed on worker processes (one thread each, or both
    cores for the last one alone) give the result file of one process, array for array."""
    from refnet.reproduction.stages import collecting

    mod = figure_module("semenova_fig5")
    mod.compute(tiny, tmp_path / "one", log=lambda *a: None, workers=1)
    with collecting() as parts:
        mod.compute(tiny, tmp_path / "two", log=lambda *a: None, workers=2)
    assert [p[0] for p in parts][:2] == ["network A: data and training, 2 workers",
                                         "network A: Monte-Carlo and analytic, 2 workers"]
    assert len(parts) == 6 and all(p[2] == "busy" for p in parts)
    a, rec_a = load_results(tmp_path / "one", "semenova_fig5")
    b, rec_b = load_results(tmp_path / "two", "semenova_fig5")
    assert list(a) == list(b) and len(a) > 30
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k
    assert rec_a["networks"] == rec_b["networks"]
