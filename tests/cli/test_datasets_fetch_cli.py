"""The fetch command: summary table, second run from the cache, runs without numpy."""
import hashlib
import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from refnet.cli import main as refnet_main
from refnet.datasets import _registry as reg
from refnet.datasets.fetch import format_table, main
from refnet.datasets.idx import write_idx

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mirror(tmp_path, rng):
    """A mirror with synthetic "mnist" files and a 2-class QuickDraw folder; the real MNIST
    spec is swapped for one whose sha256s match these files."""
    m = tmp_path / "mirror"
    (m / "mnist").mkdir(parents=True)
    files = []
    for name, shape in (("train-images-idx3-ubyte", (8, 28, 28)), ("train-labels-idx1-ubyte", (8,)),
                        ("t10k-images-idx3-ubyte", (3, 28, 28)), ("t10k-labels-idx1-ubyte", (3,))):
        write_idx(m / "mnist" / name, rng.integers(0, 10, shape, dtype=np.uint8))
        files.append(reg.RemoteFile(name, hashlib.sha256((m / "mnist" / name).read_bytes()).hexdigest()))
    (m / "quickdraw").mkdir()
    classes = {}
    for name in ("cat", "dog"):
        buf = io.BytesIO()
        np.save(buf, rng.integers(0, 256, (6, 784), dtype=np.uint8))
        (m / "quickdraw" / f"{name}.npy").write_bytes(buf.getvalue())
        classes[name] = {"file": f"{name}.npy", "rows": 6,
                         "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}
    (m / "quickdraw/MANIFEST.json").write_text(json.dumps({"classes": classes}))
    spec = reg.IdxDatasetSpec("mnist", "MNIST", tuple(files), ("http://unreachable.invalid/",),
                              ())
    return m, spec


def test_format_table_aligns_columns():
    table = format_table([("mnist", "pip x", "1 train", "ok"), ("quickdraw", "mirror", "-", "FAILED")])
    lines = table.splitlines()
    assert lines[0].split() == ["dataset", "source", "used", "samples", "checksum"]
    assert lines[2] == "mnist      pip x        1 train  ok"  # "source used" sets the width
    assert lines[3] == "quickdraw  mirror       -        FAILED"


def test_summary_then_second_run_from_cache(mirror, tmp_path, monkeypatch, capsys):
    m, spec = mirror
    monkeypatch.setitem(reg.IDX_DATASETS, "mnist", spec)
    argv = ["mnist", "quickdraw", "--mirror", str(m), "--cache-dir", str(tmp_path / "c"),
            "--classes", "cat,dog", "--per-class", "5"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["dataset", "source"]
    assert out[2].split() == ["mnist", "mirror", str(m), "8", "train", "+", "3", "test", "ok",
                              "(4", "files,", "sha256)"]
    assert out[3].split() == ["quickdraw", "mirror", str(m / "quickdraw"), "2", "classes", "x",
                              "5", "rows", "ok", "(2", "manifest", "sha256)"]

    def forbidden(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    monkeypatch.setattr(subprocess, "run", forbidden)
    assert main(argv[:-4] + ["--classes", "cat,dog", "--per-class", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[1:4] == ["cache", "(from", "mirror"]
    assert out[3].split()[1:4] == ["cache", "(from", "mirror"]


def test_failure_is_a_row_and_exit_status_1(mirror, tmp_path, monkeypatch, capsys):
    m, _ = mirror
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("down")))
    status = refnet_main(["fetch", "quickdraw", "--mirror", str(m), "--cache-dir", str(tmp_path / "c"),
                          "--classes", "cat,sun", "--per-class", "5"])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out.splitlines()[2].split() == ["quickdraw", "none", "(see", "the", "error",
                                                    "above)", "-", "FAILED"]
    assert "sun: mirror: LookupError" in captured.err and '--classes "cat"' in captured.err


@pytest.mark.parametrize("argv, text", [
    (["mnits"], "argument DATASET: unknown dataset 'mnits'; fetchable: mnist"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["quickdraw", "--per-class", "0"], "argument --per-class: must be an integer from 1 to "),
    (["mnist", "--timeout", "nan"], "argument --timeout: must be a number of seconds > 0"),
    # a socket refuses 1e300 s (OverflowError), which the host source reported as a failure
    (["mnist", "--timeout", "1e300"], "argument --timeout: must be a number of seconds > 0 and "
                                      "at most 86400 (a day), got '1e300'"),
])
def test_script_usage_errors_are_one_line_and_exit_2(argv, text, capsys):
    """data/fetch.py (no numpy, so not refnet's CLI parser) printed argparse's usage block and,
    for an unknown dataset, an unprefixed line; now one line, as every refnet command."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("data/fetch.py: error: ") and text in err


def test_script_cache_dir_under_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    (tmp_path / "m.npz").write_bytes(b"x")
    assert main(["mnist", "--cache-dir", str(tmp_path / "m.npz" / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("data/fetch.py: error: --cache-dir")


def test_cache_dir_under_a_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    (tmp_path / "m.npz").write_bytes(b"x")
    assert refnet_main(["fetch", "mnist", "--cache-dir", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--cache-dir (cache_dir): the cache folder {tmp_path / 'm.npz'} is a file" in err


def test_script_runs_without_numpy(mirror, tmp_path):
    """data/fetch.py on a machine with only Python: numpy is made unimportable."""
    m, _ = mirror
    code = ("import sys, runpy; sys.modules['numpy'] = None; "
            f"sys.argv = ['data/fetch.py', 'quickdraw', '--mirror', {str(m)!r}, '--cache-dir', "
            f"{str(tmp_path / 'c')!r}, '--classes', 'cat,dog', '--per-class', '6']; "
            f"runpy.run_path({str(ROOT / 'data/fetch.py')!r}, run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "quickdraw  mirror" in p.stdout and "2 classes x 6 rows" in p.stdout


@pytest.mark.parametrize("argv, words", [
    (["quickdraw", "--classes", ",,"], ("--classes: an empty class name in ',,'",)),
    (["quickdraw", "--classes", "cat,,dog"], ("--classes: an empty class name in 'cat,,dog'",)),
    (["quickdraw", "--classes", " , "], ("--classes: an empty class name in ' , '",)),
    (["quickdraw", "--per-class", "99999999999"],
     ("argument --per-class: must be ", "1000000", "99999999999")),
    # QuickDraw's flags without quickdraw, and a dataset named twice, were ignored in silence
    (["mnist", "--per-class", "5"], ("--per-class: QuickDraw's, no effect on mnist; add "
                                     "quickdraw to the datasets, or leave out --per-class",)),
    (["mnist", "fashion-mnist", "--classes", "cat"],
     ("--classes: QuickDraw's, no effect on mnist, fashion-mnist",)),
    (["mnist", "--classes", " , ", "--per-class", "5"], ("--classes/--per-class: QuickDraw's",)),
    (["mnist", "quickdraw", "mnist"], ("DATASET: mnist given twice; name each dataset once",)),
])
@pytest.mark.parametrize("command", ["refnet fetch", "data/fetch.py"])
def test_bad_fetch_arguments_are_usage_errors_before_any_download(command, argv, words, tmp_path,
                                                                 monkeypatch, capsys):
    """Each is one line, exit 2, before any download, in refnet fetch and data/fetch.py alike:
    an empty class name (--classes ,, was a failed fetch, exit 1), a row count past the
    ceiling (--per-class 99999999999 tried the mirror and every host before failing),
    QuickDraw's --classes/--per-class without quickdraw, and a dataset named twice (both
    were ignored in silence)."""
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    argv = argv + ["--cache-dir", str(tmp_path / "c")]
    try:
        status = refnet_main(["fetch", *argv]) if command == "refnet fetch" else main(argv)
    except SystemExit as stop:  # the script's argparse exits
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"{command}: error: "), err
    assert all(w in err for w in words), err
    assert not (tmp_path / "c" / "quickdraw").exists()


def test_the_loaders_bound_the_rows_per_class_before_any_download(tmp_path, monkeypatch):
    from refnet.datasets import load_quickdraw
    from refnet.datasets._quickdraw_sources import MAX_PER_CLASS, fetch_quickdraw
    from refnet.errors import ConfigError

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    for load in (fetch_quickdraw, load_quickdraw):
        with pytest.raises(ConfigError, match=f"per_class: .*at most {MAX_PER_CLASS}"):
            load(classes="cat", per_class=MAX_PER_CLASS + 1, cache_dir=tmp_path / "c")
        with pytest.raises(ConfigError, match="classes: an empty class name in 'cat,'"):
            load(classes="cat,", per_class=5, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c" / "quickdraw").exists()
