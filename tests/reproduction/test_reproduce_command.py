"""refnet reproduce: folder bookkeeping, --only, and the report covering every computed script."""
import json

import pytest

from refnet.cli import main
from refnet.cli import reproduce


def test_list_and_unknown_names(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in reproduce.SCRIPTS)
    assert main(["reproduce", "--only", "fig99"]) == 2
    assert "--only: unknown ['fig99']" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [["--workers", "1"], []], ids=["in-process", "background"])
def test_only_adds_to_the_report_and_foreign_folders_are_refused(tmp_path, capsys, workers,
                                                                 monkeypatch):
    import refnet.cores
    monkeypatch.setattr(refnet.cores, "available_cores", lambda: 2)
    out = tmp_path / "r"
    assert main(["reproduce", "--preset", "quick", "--only", "semenova_fig4", "--out", str(out),
                 *workers]) == 0
    state = json.loads((out / "results" / "reproduce.json").read_text())
    assert list(state["scripts"]) == ["semenova_fig4"] and state["preset"] == "quick"
    md = (out / "report.md").read_text()
    assert "Semenova 2022, Fig. 4" in md and "not computed in this folder" in md
    assert (out / "figures" / "semenova_fig4.png").exists()
    printed = capsys.readouterr().out
    table = printed[printed.index("time per stage"):].splitlines()
    if workers:   # the figure drawn right after the compute, in this process
        assert [ln.split()[0] for ln in table[1:]] == ["semenova_fig4", "semenova_fig4", "report",
                                                       "total"]
        assert table[1].split()[1] == "compute" and table[2].split()[1] == "plot"
    else:         # drawn by a process of its own, waited for before the report
        assert [ln.split()[:2] for ln in table[1:4]] == [
            ["semenova_fig4", "compute"], ["figures:", "waiting"], ["semenova_fig4", "plot"]]
        assert "(worker time)" in table[3] and table[4].split()[0] == "report"
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


def test_a_stage_with_parts_lists_them_under_it_with_the_rest_as_other():
    from refnet.reproduction.stages import collecting, part

    with part("not collected"):   # outside a collection: nothing recorded, nothing raised
        pass
    with collecting() as parts:
        for name in ("training", "sweeps"):
            with part(name):
                pass
        with pytest.raises(KeyError), part("failed"):   # a part that raises is still timed
            raise KeyError
    assert [n for n, _ in parts] == ["training", "sweeps", "failed"]
    text = reproduce.format_stage_times([("a compute", 10.0, [("training", 6.0), ("sweeps", 3.0)]),
                                         ("a plot", 2.0), ("b compute", 4.0, [])])
    lines = text.strip().splitlines()[1:]
    assert [ln.split() for ln in lines] == [
        ["a", "compute", "10.0", "s", "62.5", "%"], ["training", "6.0", "s", "37.5", "%"],
        ["sweeps", "3.0", "s", "18.8", "%"], ["other", "1.0", "s", "6.2", "%"],
        ["a", "plot", "2.0", "s", "12.5", "%"], ["b", "compute", "4.0", "s", "25.0", "%"],
        ["total", "16.0", "s"]]
    assert lines[1].startswith("    training") and lines[0].startswith("  a compute")
    assert len({ln.index(" s ") for ln in lines[:-1]}) == 1   # one column for the seconds


def test_worker_time_is_shown_as_such_and_not_subtracted_from_its_stage():
    text = reproduce.format_stage_times([("a compute", 10.0, [("training, 2 workers", 14.0, "busy"),
                                                              ("sweeps, 2 workers", 4.0, "busy")]),
                                         ("a plot", 2.0)])
    lines = [ln.split() for ln in text.strip().splitlines()[1:]]
    assert lines == [["a", "compute", "10.0", "s", "83.3", "%"],
                     ["training,", "2", "workers", "(worker", "time)", "14.0", "s", "116.7", "%"],
                     ["sweeps,", "2", "workers", "(worker", "time)", "4.0", "s", "33.3", "%"],
                     ["a", "plot", "2.0", "s", "16.7", "%"], ["total", "12.0", "s"]]


def test_the_long_scripts_time_their_parts(tmp_path, monkeypatch):
    """duque_fig4 and semenova_fig5 say which part of their compute took what (the work
    itself replaced by stand-ins)."""
    from refnet.reproduction.duque import fig4
    from refnet.reproduction.stages import collecting

    from refnet.reproduction.duque import tasks

    ran = []

    def fake(task, log=print):   # each task "takes" 1 s (training) or 2 s (sweep)
        ran.append(task.name)
        return {"seconds": 1.0 if task.kind == "train" else 2.0, "accuracy": None,
                "clean_accuracy": None, "provenance": {}, "n_test": 0}

    monkeypatch.setattr(tasks, "run_task", fake)
    saved = []
    monkeypatch.setattr(fig4, "save_results", lambda out, name, *a, **k: saved.append(name))
    from refnet.reproduction.presets import get_preset
    preset = get_preset("quick", 0)
    with collecting() as parts:
        fig4.compute(preset, tmp_path, log=lambda *a: None, workers=1)
    assert parts == [x for s in preset.duque for x in ((f"{s.dataset}: data and training", 5.0),
                                                       (f"{s.dataset}: accuracy sweeps", 12.0))]
    assert saved == [f"duque_fig4_{s.dataset}" for s in preset.duque] and len(ran) == 11

    from refnet.reproduction.semenova import fig5
    se = fig5.se
    monkeypatch.setattr(fig5, "load_results", lambda *a: None)
    monkeypatch.setattr(se, "load_data", lambda setup: _NoData())
    monkeypatch.setattr(se, "train_network", lambda *a, **k: (_NoArch(), None, {"errors": {}}))
    monkeypatch.setattr(se, "figure5_inputs", lambda *a: ((), {}))
    monkeypatch.setattr(fig5, "analyse", lambda *a: {})
    monkeypatch.setattr(fig5, "split_agreement", lambda *a: {})
    monkeypatch.setattr(fig5, "save_results", lambda *a, **k: None)
    monkeypatch.setattr(fig5, "asdict", lambda setup: {})
    with collecting() as parts:
        fig5.compute(preset, tmp_path, log=lambda *a: None, workers=1)
    assert [n for n, _ in parts] == [f"network {net}: {what}" for net in se.NETWORKS
                                     for what in ("data and training", "Monte-Carlo and analytic")]


class _NoArch:
    def as_dict(self):
        return {}


class _NoData:
    X_test, y_test, provenance = None, (), {}
