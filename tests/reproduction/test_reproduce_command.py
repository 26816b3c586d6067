"""refnet reproduce: folder bookkeeping, --only, and the report covering every computed script."""
import json

from refnet.cli import main
from refnet.cli import reproduce


def test_list_and_unknown_names(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in reproduce.SCRIPTS)
    assert main(["reproduce", "--only", "fig99"]) == 2
    assert "--only: unknown ['fig99']" in capsys.readouterr().err


def test_only_adds_to_the_report_and_foreign_folders_are_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "--preset", "quick", "--only", "semenova_fig4", "--out", str(out)]) == 0
    state = json.loads((out / "results" / "reproduce.json").read_text())
    assert list(state["scripts"]) == ["semenova_fig4"] and state["preset"] == "quick"
    md = (out / "report.md").read_text()
    assert "Semenova 2022, Fig. 4" in md and "not computed in this folder" in md
    assert (out / "figures" / "semenova_fig4.png").exists()
    printed = capsys.readouterr().out
    table = printed[printed.index("time per stage"):].splitlines()
    assert [ln.split()[0] for ln in table[1:]] == ["semenova_fig4", "semenova_fig4", "report",
                                                   "total"]
    assert table[1].split()[1] == "compute" and table[2].split()[1] == "plot"
    # the same folder under another seed would mix results: refused
    capsys.readouterr()
    assert main(["reproduce", "--preset", "quick", "--seed", "1", "--only", "semenova_fig4",
                 "--out", str(out)]) == 2
    assert "holds results of preset 'quick', seed 0" in capsys.readouterr().err


def test_stage_times_table_adds_up():
    text = reproduce.format_stage_times([("a compute", 3.0), ("a plot", 1.0)])
    rows = [ln.split() for ln in text.strip().splitlines()[1:]]
    assert rows[0] == ["a", "compute", "3.0", "s", "75.0", "%"]
    assert rows[1] == ["a", "plot", "1.0", "s", "25.0", "%"]
    assert rows[2] == ["total", "4.0", "s"]
