"""The report's verdicts: agrees / differs (refnet) / paper inconsistent / outside the envelope,
the explanation printed beside each, and the summary line that counts them."""
import math

import pytest

from refnet.reproduction.report import VERDICTS, Check, render_markdown, verdict_summary


def check(refnet, paper=50.0, tol=2.0, **kw):
    return Check("Paper, Sec. 1", "q", paper, refnet, tol, unit="pp", reason="not recorded", **kw)


@pytest.mark.parametrize("refnet, verdict", [(50.0, "agrees"), (52.0, "agrees"), (48.0, "agrees"),
                                             (52.01, "differs (refnet)"), (47.9, "differs (refnet)"),
                                             (math.nan, "not computed")])
def test_tolerance_is_inclusive_and_two_sided(refnet, verdict):
    assert check(refnet).verdict == verdict


def test_envelope_decides_between_refnet_miss_and_unreachable_paper_value():
    # paper 50, tolerance 2: an envelope up to 47.9 cannot reach 50 - 2 = 48 -> outside
    assert check(40.0, envelope=(35.0, 47.9)).verdict == "outside the envelope"
    assert check(40.0, envelope=(52.1, 60.0)).verdict == "outside the envelope"
    # an envelope reaching within the tolerance means some setting gets there: refnet's miss
    assert check(40.0, envelope=(35.0, 48.0)).verdict == "differs (refnet)"
    assert check(40.0, envelope=(45.0, 55.0)).verdict == "differs (refnet)"
    # agreement wins over the envelope
    assert check(51.0, envelope=(10.0, 20.0)).verdict == "agrees"


def test_inconsistent_paper_and_the_explanations():
    c = check(20.0, inconsistent="caption: 2 x 1e-4 = 2e-4, text: 1e-3")
    assert c.verdict == "paper inconsistent" and c.explanation.startswith("caption: 2 x 1e-4")
    assert check(51.0, inconsistent="x").verdict == "agrees" and check(51.0).explanation == ""
    out = check(40.0, envelope=(35.0, 45.0), envelope_cells="epochs = 20: 35.00")
    assert "[35.00, 45.00] pp" in out.explanation and "lies outside" in out.explanation
    assert "epochs = 20: 35.00" in out.explanation and "not recorded" in out.explanation
    assert "lies inside" in check(40.0, envelope=(35.0, 49.0)).explanation
    assert check(40.0).explanation == "not recorded"


def test_fig4c_single_neuron_level_is_paper_inconsistent():
    from refnet.reproduction.semenova import fig4 as mod

    text = mod.single_neuron_arithmetic(1e-4, 2.03e-4)
    assert "2 D = 2 x 0.0001 = 0.0002, not 0.001" in text and "D = 0.0005" in text
    assert "1.015 x 2D" in text
    c = Check("Semenova 2022", "Fig. 4c", 1e-3, 2.015e-4, 5e-4, unit="", inconsistent=text)
    assert c.verdict == "paper inconsistent"


def test_summary_counts_every_verdict():
    checks = [check(50.0), check(51.0), check(40.0), check(40.0, inconsistent="a"),
              check(40.0, envelope=(1.0, 2.0)), check(math.nan)]
    line = verdict_summary(checks)
    assert line == ("2 of 6 agree; 1 differs (refnet), 1 paper inconsistent, "
                    "1 outside the envelope, 1 not computed.")
    assert verdict_summary(checks[:2]) == "2 of 2 agree."
    assert set(c.verdict for c in checks) == set(VERDICTS)
    md = render_markdown("T", checks, [], {})
    assert line in md and md.count("| paper inconsistent | a |") == 1


def test_a_setting_chosen_by_outcome_is_stated_whatever_the_verdict():
    note = "fashion-mnist baseline_epochs = 150"
    agree = check(51.0, chosen=note)
    assert agree.verdict == "agrees" and note in agree.explanation
    assert "chosen by outcome" in agree.explanation
    # the note never moves the verdict, and it rides along with every other explanation
    assert check(40.0, chosen=note).verdict == check(40.0).verdict == "differs (refnet)"
    assert check(40.0, chosen=note).explanation.startswith("not recorded") and \
        note in check(40.0, chosen=note).explanation
    out = check(40.0, envelope=(35.0, 45.0), chosen=note)
    assert out.verdict == "outside the envelope" and "lies outside" in out.explanation
    assert note in out.explanation
    inc = check(20.0, inconsistent="2 x 1e-4 = 2e-4", chosen=note)
    assert inc.verdict == "paper inconsistent" and note in inc.explanation
    md = render_markdown("T", [agree], [], {})
    assert f"| agrees | Setting chosen by outcome: {note}" in md
