"""The refnet command line: every subcommand has --help, and errors name the argument."""
import re
import subprocess
import sys

import numpy as np
import pytest

from refnet.cli import COMMANDS, main


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert "usage: refnet " + name in capsys.readouterr().out


def test_top_level_help_and_a_missing_command_load_no_command_module():
    """`refnet --help` took 1.4 s: every command module was imported to build the parser,
    and they take constants from the numerical modules (numpy, scipy, numba). Now only the
    command a line names is loaded."""
    code = ("import sys\nfrom refnet.cli import main\n"
            "for argv in (['--help'], ['--debug', '--help'], [], ['bogus']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "heavy = {'numpy', 'scipy', 'numba'} & set(sys.modules)\n"
            "commands = [m for m in sys.modules if m.startswith('refnet.cli.')]\n"
            "print(sorted(heavy), sorted(commands), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stderr.strip().splitlines()[-1] == "[] ['refnet.cli._status']"


def test_a_command_line_builds_only_its_own_command():
    from refnet.cli import build_parser

    parser = build_parser("info")
    sub = next(a for a in parser._actions if a.dest == "command").choices
    assert list(sub) == list(COMMANDS)
    assert sub["info"].get_default("_run") is not None
    assert all(sub[name].get_default("_run") is None for name in COMMANDS if name != "info")
    for name, line in COMMANDS.items():
        assert sub[name].description == line


def test_the_fetch_command_and_the_fetch_script_say_the_same():
    from refnet.datasets.fetch import HELP

    assert COMMANDS["fetch"] == HELP


def test_console_script_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "refnet.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("refnet ")


def test_train_then_info_on_a_small_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    c = rng.normal(scale=3, size=(3, 8))
    y = rng.integers(0, 3, 500)
    X = c[y] + rng.normal(size=(500, 8))
    data = tmp_path / "d.npz"
    np.savez(data, X_train=X[:400], y_train=y[:400], X_test=X[400:], y_test=y[400:])
    model = tmp_path / "m.npz"
    assert main(["train", "--data-npz", str(data), "--hidden", "16", "--epochs", "3",
                 "--batch-size", "32", "--lr", "0.1", "--out", str(model), "--quiet",
                 "--regularizer", "eq4", "--lam", "1e-3"]) == 0
    out = capsys.readouterr().out
    acc = float(out.split("clean test accuracy: ")[1].split()[0])
    assert acc > 0.9 and "add_cor noise of variance 0.5" in out
    assert main(["info", str(model), "--export-state-dict", str(tmp_path / "sd.npz")]) == 0
    assert "layers 8-16-3" in capsys.readouterr().out
    with np.load(tmp_path / "sd.npz", allow_pickle=False) as z:
        assert "0.weight" in z.files and z["0.weight"].shape == (16, 8)


def test_info_json_is_strict_json_and_refuses_a_saved_nan(tmp_path, capsys):
    """A model saved with a NaN in its metadata (refnet accepted it until save_model checked)
    made `info --json` print NaN, which is not JSON."""
    import json
    from refnet.io import load_npz, save_model, save_npz_atomic
    from refnet.model import init_params, mlp
    arch = mlp((3, 2, 2))
    model = save_model(tmp_path / "m.npz", arch, init_params(arch, rng=0), {"acc": 0.5})
    assert main(["info", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out, parse_constant=pytest.fail)["acc"] == 0.5
    arrays, meta = load_npz(model)
    meta["noisy"] = {"add_unc": float("nan")}
    del meta["sha256"]
    save_npz_atomic(model, arrays, meta, sha256=True)  # as an older refnet wrote it
    assert main(["info", str(model), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert (f"{model}: metadata noisy.add_unc is nan, which JSON cannot hold, so --json cannot "
            "print it; run refnet info without --json") in err
    assert main(["info", str(model)]) == 0


def test_train_with_the_expected_loss_objective(tmp_path, capsys):
    from refnet.io import load_model

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, 6)), rng.integers(0, 3, 300)
    data = tmp_path / "d.npz"
    np.savez(data, X_train=X[:240], y_train=y[:240], X_test=X[240:], y_test=y[240:])
    model = tmp_path / "m.npz"
    assert main(["train", "--data-npz", str(data), "--hidden", "8,8", "--epochs", "1",
                 "--out", str(model), "--quiet", "--expected-loss", "--noise-type", "add_unc",
                 "--noise-variance", "0.2"]) == 0
    cfg = load_model(model)[2]["train_config"]
    assert cfg["noise"] is None
    assert cfg["regularizers"][0]["kind"] == "expected_loss"
    assert cfg["regularizers"][0]["noise"]["spec"]["add_unc"] == 0.2
    capsys.readouterr()
    assert main(["train", "--data-npz", str(data), "--expected-loss"]) == 2
    assert "--expected-loss needs" in capsys.readouterr().err


def test_train_missing_array_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, X_train=np.zeros((3, 2)))
    assert main(["train", "--data-npz", str(bad)]) == 2
    assert re.search(r"--data-npz: .* lacks \['y_train', 'X_test', 'y_test'\]",
                     capsys.readouterr().err)


def test_sensitivity_labels_from_y_or_y_key_and_a_note_without(tmp_path, capsys):
    """Labels: the array named by --y-key (an error if missing: tested in test_cli_errors),
    else y if the file has it; a file without labels gives the report without accuracy and a
    note on stderr saying why."""
    from refnet.io import save_model
    from refnet.model import init_params, mlp

    arch = mlp((6, 8, 3))
    model = tmp_path / "m.npz"
    save_model(model, arch, init_params(arch, rng=0))
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
    np.savez(tmp_path / "y.npz", X=X, y=y)
    np.savez(tmp_path / "labels.npz", X=X, labels=y)
    np.savez(tmp_path / "none.npz", X=X)
    run = ["sensitivity", str(model), "--mc-trials", "0", "--inputs"]
    outs = {}
    for name, extra in (("y", []), ("labels", ["--y-key", "labels"]), ("none", [])):
        assert main([*run, str(tmp_path / f"{name}.npz"), *extra]) == 0
        outs[name] = capsys.readouterr()
    assert "accuracy clean" in outs["y"].out and "note:" not in outs["y"].err
    assert outs["labels"].out.split("\n", 1)[1] == outs["y"].out.split("\n", 1)[1]
    assert "accuracy clean" not in outs["none"].out
    assert "has no labels (no array 'y')" in outs["none"].err and "--y-key" in outs["none"].err
    # inputs stored as y: not also the labels (they were, and refused as rows without labels)
    np.savez(tmp_path / "as_y.npz", y=X, labels=y)
    assert main([*run, str(tmp_path / "as_y.npz"), "--x-key", "y"]) == 0
    as_y = capsys.readouterr()
    assert "accuracy clean" not in as_y.out and "('y' is the input array here)" in as_y.err
    assert main([*run, str(tmp_path / "as_y.npz"), "--x-key", "y", "--y-key", "labels"]) == 0
    assert capsys.readouterr().out.split("\n", 1)[1] == outs["y"].out.split("\n", 1)[1]
