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
    # the same folder under another seed would mix results: refused
    capsys.readouterr()
    assert main(["reproduce", "--preset", "quick", "--seed", "1", "--only", "semenova_fig4",
                 "--out", str(out)]) == 2
    assert "holds results of preset 'quick', seed 0" in capsys.readouterr().err
