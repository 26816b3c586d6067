"""Duque 2024 Figs. 2 and 4, the presets and the report writer on a tiny synthetic configuration."""
import math

import numpy as np
import pytest

from refnet.io import load_model
from refnet.reproduction import duque as dq
from refnet.reproduction.duque import DuqueSetup
from refnet.reproduction.presets import Preset, get_preset
from refnet.reproduction.registry import figure_module
from refnet.reproduction.results import load_results
from refnet.reproduction.report import Check, FigureEntry, render_html, render_markdown, write_report


@pytest.fixture(scope="module")
def tiny():
    setup = DuqueSetup("synthetic", hidden=(8, 8), baseline_epochs=2, finetune_epochs=1,
                       batch_size=64, n_val=100)
    return Preset("test", duque=(setup,), n_levels=3, repetitions=2)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("validation")


def test_duque_fig4_compute_plot_report(tiny, out):
    mod = figure_module("duque_fig4")
    mod.compute(tiny, out, log=lambda *a: None)
    arrays, rec = load_results(out, "duque_fig4_synthetic")
    assert arrays["unc/standard"].shape == (3, 2) and np.all((0 <= arrays["unc/standard"]) &
                                                            (arrays["unc/standard"] <= 1))
    np.testing.assert_allclose(arrays["variances"], [1e-3, 10 ** -1.5, 1.0])
    assert rec["seed"] == 0 and rec["data"]["train"]["source"] == "generated"
    assert set(rec["clean_accuracy"]) == {"standard", "noise_aware_cor", "noise_aware_unc",
                                          "regularized_cor", "regularized_unc"}
    assert mod.plot(out).stat().st_size > 10_000
    checks, figures = mod.report(out, tiny)
    assert checks == [] and figures[0].figure == "Duque 2024, Fig. 4a-c"  # no paper numbers for synthetic data
    models = sorted(p.name for p in (out / "models").glob("*.npz"))
    assert len(models) == 5 and not any("ckpt" in m for m in models)
    mod.compute(tiny, out, log=lambda *a: None)  # cached: nothing retrained
    assert sorted(p.name for p in (out / "models").glob("*.npz")) == models
    # a damaged cached model is kept aside as .damaged and trained again, to the same bits
    victim = next(p for p in (out / "models").glob("*.npz") if "-standard-" in p.name)
    before = load_model(victim)[1]
    victim.write_bytes(victim.read_bytes()[:100])
    lines, setup = [], tiny.duque[0]
    models = dq.train_models(setup, dq.load_data(setup), out / "models", log=lines.append,
                             progress=None)
    for a, b in zip(models["standard"][1].arrays(), before.arrays()):
        np.testing.assert_array_equal(a, b)
    assert (out / "models" / (victim.name + ".damaged")).stat().st_size == 100
    assert any("unusable" in ln and victim.name in ln for ln in lines)
    assert sum(": training " in ln for ln in lines) == 1   # only the damaged one


def test_duque_fig2_uses_the_same_models(tiny, out):
    mod = figure_module("duque_fig2")
    mod.compute(tiny, out, log=lambda *a: None)
    arrays, _ = load_results(out, "duque_fig2")
    m = arrays["standard/W2/mean"]
    assert m.shape == (8,) and np.all(np.diff(m) >= 0)  # sorted by mean
    assert mod.plot(out).exists()
    _, figs = mod.report(out, tiny)
    assert "mean |row sum|" in figs[0].refnet_says


def test_report_generator_on_synthetic_results(tmp_path):
    checks = [Check("Paper A, Sec. 1", "accuracy", 98.0, 97.5, 1.0, reason="fewer epochs"),
              Check("Paper A, Sec. 1", "drop", 40.0, 20.0, 5.0, unit="pp", reason="not recorded"),
              Check("Paper B, Fig. 2", "SNR", 10.0, math.nan, 1.0, unit="")]
    assert [c.verdict for c in checks] == ["agrees", "differs (refnet)", "not computed"]
    assert checks[1].difference == -20.0
    figs = [FigureEntry("Paper A, Fig. 1", "figures/a.png", "a <curve>", "ours", {"n": 3})]
    md = render_markdown("T", checks, figs, {"preset": "test"})
    assert "1 of 3 agree; 1 differs (refnet), 1 not computed." in md
    assert "| -20.00 |" in md and "not recorded" in md
    assert "fewer epochs" not in md  # reasons are shown only where refnet differs
    html = render_html("T", checks, figs, {"preset": "test"})
    assert "a &lt;curve&gt;" in html and "<img src='figures/a.png'" in html
    paths = write_report(tmp_path, checks, figs, {"preset": "test"})
    assert all(p.exists() for p in paths)


def test_presets_and_errors():
    q = get_preset("quick", seed=3)
    assert q.seed == 3 and q.duque[0].seed == 3 and q.duque[0].dataset == "mnist"
    assert get_preset("full").variances.shape == (100,)
    with pytest.raises(ValueError, match="preset: unknown 'medium'"):
        get_preset("medium")
    with pytest.raises(ValueError, match="figure 'nope': unknown"):
        figure_module("nope")


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    """save_figure let matplotlib write the PNG in place: an interrupted run left a truncated
    figure under its final name, which the report showed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import refnet.io
    from refnet.reproduction.results import figure_path, save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert save_figure(fig, tmp_path, "ok").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    def interrupted(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(refnet.io.os, "replace", interrupted)
    fig, ax = plt.subplots()
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, tmp_path, "cut")
    assert not figure_path(tmp_path, "cut").exists()
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["ok.png"]
