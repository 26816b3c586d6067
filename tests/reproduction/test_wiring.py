"""The experiment wiring, not the math: which noise each training mode gets, which penalty each
regularized mode gets, what the presets choose, and the envelope's bookkeeping. Each test would
fail on a swapped correlated/uncorrelated mode, a wrong Eq. 7 preset or a mis-keyed cache.

Statistical bounds: N = 4000 samples, the variance of a Gaussian estimated with relative
standard error sqrt(2 / (N - 1)) = 2.2 %; bounds at 5 standard errors (11 %)."""
from dataclasses import replace

import numpy as np
import pytest

from refnet.reproduction.duque import protocol as dq
from refnet.reproduction.duque import envelope as ev
from refnet.reproduction.presets import get_preset
from refnet.model import forward, init_params, mlp
from refnet.regularizers import regularizer_value_and_grad

N = 4000
REL_SE = np.sqrt(2 / (N - 1))


@pytest.fixture
def net():
    arch = mlp((5, 6, 7, 3), "sigmoid")
    return arch, init_params(arch, "torch", rng=0), np.random.default_rng(1).normal(size=(N, 5))


@pytest.mark.parametrize("kind", ["cor", "unc"])
def test_noise_aware_modes_get_their_noise_kind_after_each_hidden_layer(net, kind):
    arch, params, X = net
    setup = dq.DuqueSetup("synthetic", noise_aware_variance=0.3)
    cfg = dq.mode_config(setup, f"noise_aware_{kind}", arch.n_layers)
    assert not cfg.regularizers and cfg.noise is not None
    _, cache = forward(arch, params, X, cfg.noise, rng=2)
    for l in (1, 2):  # after the sigmoid of both hidden layers (Duque 2024, Sec. 2)
        delta = cache.A[l] - cache.F[l - 1]  # additive noise: the difference is the noise
        shared = np.ptp(delta, axis=1) < 1e-12
        if kind == "cor":  # one draw per (sample, layer), shared by every neuron
            assert np.all(shared)
        else:              # independent per neuron
            assert not np.any(shared)
        v = delta.var(axis=0, ddof=1)
        assert np.all(np.abs(v / 0.3 - 1) < 5 * REL_SE)
    np.testing.assert_array_equal(cache.A[0], X)          # no noise on the input
    np.testing.assert_array_equal(cache.A[3], cache.F[2])  # none on the logits


def test_standard_and_regularized_modes_train_without_noise():
    setup = dq.DuqueSetup("synthetic")
    for mode in ("standard", "regularized_cor", "regularized_unc"):
        cfg = dq.mode_config(setup, mode, 3)
        assert cfg.noise is None and cfg.shuffle is False and cfg.optimizer == "adagrad"
    assert dq.mode_config(setup, "standard", 3).regularizers == ()
    assert dq.mode_config(setup, "standard", 3).epochs == setup.baseline_epochs
    assert dq.mode_config(setup, "regularized_unc", 3).epochs == setup.finetune_epochs
    with pytest.raises(ValueError, match="mode: unknown"):
        dq.mode_config(setup, "regularised", 3)


def _penalty(arch, params, X, setup, mode):
    cfg = dq.mode_config(setup, mode, arch.n_layers)
    _, cache = forward(arch, params, X)
    return regularizer_value_and_grad(arch, params, cache, cfg.regularizers)[0], cache


def test_regularized_cor_is_eq4_on_the_row_sums_of_layers_2_and_up(net):
    arch, params, X = net
    setup = dq.DuqueSetup("synthetic", eq4_lambda=0.02)
    value, _ = _penalty(arch, params, X[:64], setup, "regularized_cor")
    want = 0.02 * sum(np.abs(W.sum(axis=1)).sum() for W in params.W[1:])  # (Duque 2024, Eq. 4)
    assert value == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("dataset, eq7, lam, c, power", [
    ("mnist", None, 6e-3, (0.01, 0.015, 3.0), 1),
    ("fashion-mnist", None, 1.2e-2, (0.1, 0.015, 2.0), 1),
    ("fashion-mnist", "addunc_sigm_sq_fashion", 1.2e-2, (0.1, 0.015, 2.0), 2),
    ("mnist", "addunc_sigm_sq", 6e-3, (0.01, 0.015, 3.0), 2),
    ("quickdraw", None, 6e-3, (0.01, 0.015, 3.0), 1)])
def test_regularized_unc_is_the_named_eq7_variant(net, dataset, eq7, lam, c, power):
    arch, params, X = net
    Xb = X[:64]
    setup = dq.DuqueSetup(dataset, eq7_preset=eq7)
    value, cache = _penalty(arch, params, Xb, setup, "regularized_unc")
    s = 1 / (1 + np.exp(-cache.Z[1]))  # sigma(z2), z2 the pre-activation of hidden layer 2
    d = s * (1 - s)
    want = lam * (c[0] * (d ** power).sum() + c[1] * (params.W[1] ** 2).sum()
                  + c[2] * (params.W[2] ** 2).sum())  # the authors' code form of Eq. 7
    assert value == pytest.approx(want, rel=1e-12)
    over, _ = _penalty(arch, params, Xb, replace(setup, eq7_lambda=2 * lam), "regularized_unc")
    assert over == pytest.approx(2 * want, rel=1e-12)


def test_full_preset_choices_and_the_shared_baseline():
    full = get_preset("full")
    by = {s.dataset: s for s in full.duque}
    assert by["fashion-mnist"].eq7 == "addunc_sigm_sq_fashion" and by["mnist"].eq7 == "addunc_sigm_mnist"
    assert by["quickdraw"].quickdraw_per_class is None
    assert all(not s.shuffle and s.n_train is None for s in full.duque)
    assert get_preset("envelope").duque == full.duque
    s = by["mnist"]
    for finetune_only in ({"eq7_preset": "addunc_sigm_sq"}, {"eq4_lambda": 1e-2},
                          {"noise_aware_variance": 0.2}, {"finetune_epochs": 5}):
        t = replace(s, **finetune_only)
        assert t.baseline_key() == s.baseline_key() and t.key() != s.key()
    for baseline in ({"baseline_epochs": 20}, {"seed": 1}, {"n_train": 100}, {"shuffle": True}):
        assert replace(s, **baseline).baseline_key() != s.baseline_key()


def test_envelope_cells_move_one_setting_each():
    base = get_preset("full").setup("quickdraw")
    cells = ev.cells(base)
    names = [c.name for c in cells]
    assert len(names) == len(set(names))
    for c in cells:
        moved = {k for k in base.__dataclass_fields__ if getattr(c.setup, k) != getattr(base, k)}
        assert moved <= {c.setting}
        assert getattr(c.setup, c.setting) == c.value or (c.setup == base and c.setting == "eq7_lambda")
    assert {c.value for c in cells if c.setting == "eq7_preset"} == {"addunc_sigm_mnist",
                                                                     "addunc_sigm_sq"}
    assert {c.value for c in cells if c.setting == "quickdraw_per_class"} == {1000, None}
    assert not [c for c in ev.cells(get_preset("full").setup("mnist"))
                if c.setting == "quickdraw_per_class"]
    fash = {c.value for c in ev.cells(get_preset("full").setup("fashion-mnist"))
            if c.setting == "eq7_preset"}
    assert fash == {"addunc_sigm_fashion", "addunc_sigm_sq_fashion"}
    assert ev.Cell("mnist", "eq4_lambda", 0.1, base).modes == ("regularized_cor",)
    # the code set's own lambda is the preset's run itself (same models, same key)
    lam = {c.value: c.setup for c in ev.cells(get_preset("full").setup("fashion-mnist"))
           if c.setting == "eq7_lambda"}
    assert lam[1.2e-2] == get_preset("full").setup("fashion-mnist")
    assert lam[6e-3].eq7_lambda == 6e-3


def test_envelope_ranges_and_the_summary_verdict_inputs():
    base = dq.DuqueSetup("mnist", baseline_epochs=50)
    results = [{"dataset": "mnist", "setting": "baseline_epochs", "value": e,
                "setup": dict(vars(replace(base, baseline_epochs=e)), hidden=[300, 300]),
                "outcomes": {"std_clean": c, "std_drop": d}}
               for e, c, d in ((20, 97.0, 30.0), (50, 98.0, 38.0), (100, 98.5, 44.0))]
    r = ev.envelope_ranges(results, [base])
    assert r[("mnist", "std_clean")]["lo"] == 97.0 and r[("mnist", "std_clean")]["hi"] == 98.5
    assert r[("mnist", "std_drop")]["preset"] == 38.0  # the cell at the preset's own value
    assert len(r[("mnist", "std_drop")]["cells"]) == 3


def test_apply_envelope_sets_the_range_only_for_its_quantity():
    from refnet.cli.reproduce import apply_envelope
    from refnet.reproduction.report import Check

    env = {"mnist/std_drop": {"lo": 30.0, "hi": 44.0, "cells": [["baseline_epochs", 20, 30.0]]}}
    c = Check("Duque 2024", "drop", 53.86, 38.0, 5.0, unit="pp", envelope_key="mnist/std_drop")
    got = apply_envelope(c, env)
    assert got.envelope == (30.0, 44.0) and got.verdict == "outside the envelope"
    assert "baseline_epochs = 20: 30.00" in got.explanation
    other = Check("Duque 2024", "clean", 98.0, 90.0, 1.0, envelope_key="mnist/std_clean")
    assert apply_envelope(other, env).envelope is None
    assert apply_envelope(other, None) is other


def test_mode_keys_share_models_only_between_equal_settings():
    s = dq.DuqueSetup("mnist")
    named = replace(s, eq7_preset="addunc_sigm_mnist")  # the default, spelled out
    assert named.mode_key("regularized_unc") == s.mode_key("regularized_unc")
    sq = replace(s, eq7_preset="addunc_sigm_sq")
    assert sq.mode_key("regularized_unc") != s.mode_key("regularized_unc")
    for mode in ("noise_aware_cor", "noise_aware_unc", "regularized_cor", "standard"):
        assert sq.mode_key(mode) == s.mode_key(mode)  # the Eq. 7 variant moves only its model
    assert replace(s, eq4_lambda=0.1).mode_key("regularized_cor") != s.mode_key("regularized_cor")
    assert replace(s, finetune_epochs=3).mode_key("noise_aware_unc") != s.mode_key("noise_aware_unc")
    assert replace(s, baseline_epochs=3).mode_key("regularized_unc") != s.mode_key("regularized_unc")
    assert s.mode_key("standard") == s.baseline_key()


def test_settings_chosen_by_outcome_lie_inside_their_envelope_grid():
    """A setting chosen by its outcome must be measured with neighbours on both sides: its
    value is a cell of the envelope's grid and neither end of it."""
    full = get_preset("full")
    assert full.chosen_by_outcome, "the full preset states its outcome-chosen settings"
    for ds, setting, reason in full.chosen_by_outcome:
        assert setting in ev.SETTINGS and reason
        value = getattr(full.setup(ds), setting)
        grid = [c.value for c in ev.cells(full.setup(ds), (setting,))]
        assert value in grid and min(grid) < value < max(grid)
    assert get_preset("quick").chosen_by_outcome == ()
    assert get_preset("envelope").duque == full.duque
    assert get_preset("envelope").chosen_by_outcome == full.chosen_by_outcome


def test_chosen_by_outcome_marks_only_the_quantities_its_setting_moves():
    from dataclasses import replace as dc_replace

    from refnet.cli.reproduce import apply_envelope, report_header
    from refnet.reproduction.presets import chosen_by_outcome_lines, chosen_setting
    from refnet.reproduction.report import Check

    p = dc_replace(get_preset("full"), chosen_by_outcome=(("mnist", "baseline_epochs", "why"),))
    assert chosen_setting(p, "mnist/std_drop")[1] == "baseline_epochs"
    assert chosen_setting(p, "mnist/std_clean") is not None
    assert chosen_setting(p, "mnist/reg_clean") is None      # Eq. 7 model: fine-tuning settings
    assert chosen_setting(p, "fashion-mnist/std_drop") is None  # another dataset
    env = {"mnist/std_drop": {"lo": 30.0, "hi": 44.0, "cells": [
        ["baseline_epochs", 100, 44.0], ["baseline_epochs", 20, 30.0], ["baseline_epochs", 50, 38.0],
        ["eq7_preset", "addunc_sigm_sq", 1.0]]}}
    c = apply_envelope(Check("Duque 2024", "drop", 41.52, 38.0, 5.0, unit="pp",
                             envelope_key="mnist/std_drop"), env, p)
    assert c.chosen == "mnist baseline_epochs = 50" and c.verdict == "agrees"
    assert "mnist baseline_epochs = 50" in c.explanation
    other = Check("Duque 2024", "reg", 95.62, 96.0, 1.5, envelope_key="mnist/reg_clean")
    assert apply_envelope(other, env, p).chosen == ""
    line, = chosen_by_outcome_lines(p, env)
    # the range over that setting's cells only (not the Eq. 7 cell), the value's own outcome
    assert line.startswith("mnist baseline_epochs = 50: why. Envelope:")
    assert "30.00-44.00 pp over baseline_epochs = 20, 50, 100 (at 50: 38.00 pp)" in line
    assert "clean accuracy, standard training: not measured" in line
    header = report_header(p, {"scripts": {}}, 1.0, {**env, "_path": "e.json"}, ())
    assert header["chosen by outcome"] == line
    assert "chosen by outcome" not in report_header(get_preset("quick"), {"scripts": {}}, 1.0,
                                                    None, ())


def test_a_setting_whose_grid_holds_null_reads_and_heads_the_report(tmp_path):
    """quickdraw_per_class's grid is 1000 and null (every mirror row): a file holding both is
    read, and the header sorts the cells with null last instead of raising TypeError;
    null among baseline_epochs' numbers is refused when the file is read."""
    import json
    from dataclasses import replace as dc_replace

    from refnet.cli.reproduce import read_envelope
    from refnet.errors import ConfigError
    from refnet.reproduction.presets import chosen_by_outcome_lines

    cells = [["quickdraw_per_class", None, 60.0], ["quickdraw_per_class", 1000, 50.0]]
    path = tmp_path / "envelope.json"
    path.write_text(json.dumps({"quickdraw/std_clean": {"lo": 50.0, "hi": 60.0, "cells": cells}}))
    env = read_envelope(path, "e.json", "--envelope")
    p = dc_replace(get_preset("full"),
                   chosen_by_outcome=(("quickdraw", "quickdraw_per_class", "why"),))
    line, = chosen_by_outcome_lines(p, env)
    assert "50.00-60.00 % over quickdraw_per_class = 1000, None (at None: 60.00 %)" in line
    cells[1][0] = cells[0][0] = "baseline_epochs"
    path.write_text(json.dumps({"quickdraw/std_clean": {"lo": 50.0, "hi": 60.0, "cells": cells}}))
    with pytest.raises(ConfigError, match="cell 0 gives the setting baseline_epochs the value "
                                          "None"):
        read_envelope(path, "e.json", "--envelope")


def test_the_committed_envelope_summary_reads():
    from refnet.cli.reproduce import DEFAULT_ENVELOPE, read_envelope

    assert DEFAULT_ENVELOPE.is_file()
    env = read_envelope(DEFAULT_ENVELOPE, "envelope.json", "--envelope")
    assert any(c[1] is None for e in env.values() if isinstance(e, dict) for c in e["cells"])


def test_quickdraw_note_reads_classes_and_rows_from_the_run():
    from refnet.reproduction.duque.fig4 import quickdraw_data_note

    rec = {"setup": {"quickdraw_per_class": None},
           "data": {"train": {"classes": list("abc")}, "test": {"n_samples": 60},
                    "n_train_used": 200, "n_val": 40}}
    note = quickdraw_data_note(rec)
    assert "mirror's 3 classes" in note and "300 rows, ~100 per class" in note
    assert "20 classes" in note  # the paper's count, for comparison
    rec["setup"]["quickdraw_per_class"] = 1000
    assert "1000 rows per class" in quickdraw_data_note(rec)


def test_envelope_figure_and_text_mark_the_choice_by_outcome(tmp_path):
    import json

    from refnet.reproduction.duque import fig_envelope

    cells = [["baseline_epochs", e, v] for e, v in ((20, 29.0), (150, 50.0), (200, 52.0))]
    summary = {"fashion-mnist/std_drop": {"lo": 29.0, "hi": 52.0, "preset": 50.0, "paper": 53.86,
                                          "tolerance": 5.0, "inside": True, "cells": cells}}
    (tmp_path / "envelope.json").write_text(json.dumps(summary))
    assert fig_envelope._full_choice("fashion-mnist", "baseline_epochs") == (
        get_preset("full").setup("fashion-mnist").baseline_epochs, True)
    assert fig_envelope._full_choice("mnist", "baseline_epochs")[1] is False
    assert fig_envelope._full_choice("synthetic", "baseline_epochs") is None
    assert fig_envelope.plot(tmp_path).exists()
    _, (fig,) = fig_envelope.report(tmp_path, get_preset("envelope"))
    assert "Chosen by outcome: fashion-mnist baseline_epochs" in fig.refnet_says
    assert "[29.00, 52.00] pp" in fig.refnet_says
