"""refnet.paths.check_output_path: the one check of an output path, for the commands' --out and
for state dict files (statedict.check_destination), before any work."""
import os

import numpy as np
import pytest

import refnet.paths
from refnet.cli import main
from refnet.errors import ConfigError
from refnet.paths import check_output_path
from refnet.statedict import check_destination


@pytest.fixture
def place(tmp_path):
    (tmp_path / "file.npz").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    return tmp_path


def _refused(match, *args, **kw):
    with pytest.raises(ConfigError) as e:
        check_output_path(*args, **kw)
    assert match in str(e.value), str(e.value)
    return str(e.value)


def test_files_and_folders_in_their_places_pass(place):
    assert check_output_path(str(place / "new.npz"), "--out") == place / "new.npz"
    assert check_output_path(place / "file.npz") == place / "file.npz"  # replaced on writing
    assert check_output_path(place / "a" / "b" / "c.npz", "--out") == place / "a" / "b" / "c.npz"
    assert check_output_path(place / "dir", "--out", folder=True) == place / "dir"
    assert check_output_path(place / "new" / "deeper", "--out", folder=True)


def test_the_wrong_kind_of_thing_is_refused_with_flag_path_and_fix(place):
    _refused(f"--out: {place / 'dir'} is a folder; give a file name", place / "dir", "--out")
    _refused(f"--out: {place / 'file.npz'} is a file; give a folder (created if missing)",
             place / "file.npz", "--out", folder=True)
    for folder in (False, True):
        target = place / "file.npz" / "x" / "y"
        message = _refused(f"--o: {target} lies under the file {place / 'file.npz'}: file.npz "
                           "is a file, not a folder", target, "--o", folder=folder)
        assert message.endswith("give another path")
    assert _refused("is a folder", place / "dir").startswith(f"{place / 'dir'} is")  # no flag


def test_a_device_or_pipe_is_not_a_file_to_write(place):
    pipe = place / "pipe"
    os.mkfifo(pipe)
    _refused(f"--out: {pipe} exists and is not a regular file; give another file name", pipe,
             "--out")


def test_files_written_beside_are_checked_too(place):
    (place / "w.npz.json").mkdir()
    _refused(f"{place / 'w.npz.json'} (the metadata file written beside w.npz) is a folder",
             place / "w.npz", "-o", beside={place / "w.npz.json": "the metadata file"})


def test_a_folder_without_write_permission_is_refused(place, monkeypatch):
    monkeypatch.setattr(refnet.paths.os, "access", lambda p, mode: False)  # root may write anyway
    _refused(f"--out: {place / 'new.npz'}: cannot write in the folder {place} (permission "
             "denied); give a writable path", place / "new.npz", "--out")
    _refused(f"cannot write in the folder {place / 'dir'}", place / "dir", "--out", folder=True)


def test_state_dicts_and_commands_share_the_check(place, capsys):
    """check_destination adds the suffix check and the .npz's metadata file, nothing else."""
    target = place / "file.npz" / "w.npz"
    with pytest.raises(ConfigError) as e:
        check_destination(target, "--export-state-dict")
    with pytest.raises(ConfigError) as same:
        check_output_path(target, "--export-state-dict")
    assert str(e.value) == str(same.value)
    with pytest.raises(ConfigError, match=r"-o: .*w\.txt: unknown weight file type '\.txt'"):
        check_destination(place / "w.txt", "-o")
    (place / "d.npz.json").mkdir()
    with pytest.raises(ConfigError, match=r"d\.npz\.json \(the metadata file written beside "
                                          r"d\.npz\) is a folder"):
        check_destination(place / "d.npz")
    os.mkfifo(place / "fifo.npz")
    data = place / "train.npz"
    X = np.random.default_rng(0).normal(size=(20, 3))
    np.savez(data, X_train=X, y_train=np.arange(20) % 2, X_test=X[:4], y_test=np.arange(4) % 2)
    assert main(["train", "--data-npz", str(data), "--out", str(place / "fifo.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--out: {place / 'fifo.npz'} exists and is not a regular" in err[0]


@pytest.mark.parametrize("where, folder", [("name", False), ("name", True), ("under", False),
                                           ("under", True), ("beside", False)])
def test_a_path_the_system_refuses_is_a_config_error_showing_it_shortened(place, where, folder):
    """exists()/is_dir() raised OSError (a name longer than the file system takes) out of the
    check, not a ConfigError; the command line printed all 3000 characters."""
    long = "x" * 3000
    target = {"name": place / long, "under": place / long / "m.npz",
              "beside": place / "m.npz"}[where]
    beside = {place / f"m.npz.{long}": "the metadata file"} if where == "beside" else None
    message = _refused("cannot be used (", target, "--out", folder=folder, beside=beside)
    assert message.startswith(f"--out: {str(place)[:20]}") and message.endswith(
        "; give another path") and "\n" not in message
    assert len(message) < 300 and "x" * 60 not in message, message


def test_an_output_that_is_one_of_the_inputs_is_refused(place):
    """``train --data-npz d.npz --out d.npz`` replaced the training data with the model, and
    ``info M --export-state-dict M`` the model with its state dict, without a word."""
    data = place / "file.npz"
    _refused(f"--out: {data} is also the --data-npz file, which this command reads: writing it "
             "would replace it; give another path", data, "--out",
             inputs={data: "--data-npz", None: "--init-from"})
    os.symlink(data, place / "link.npz")      # another name of the same file
    _refused("is also the model file", place / "link.npz", inputs={data: "model"})
    # two outputs neither of which exists yet (--out and --checkpoint)
    _refused("is also the --checkpoint file", place / "new.npz", "--out",
             inputs={place / "sub" / ".." / "new.npz": "--checkpoint"})
    # a file written beside it (an .npz state dict's metadata file)
    (place / "w.npz.json").write_bytes(b"{}")
    with pytest.raises(ConfigError, match=r"w\.npz\.json is also the model file"):
        check_destination(place / "w.npz", "-o", inputs={place / "w.npz.json": "model"})
    # other files and folders pass
    assert check_output_path(place / "new.npz", "--out", inputs={data: "--data-npz", None: "x"})
    assert check_output_path(place, "--out", folder=True, inputs={data: "--data"})


def test_a_nul_character_is_refused_by_name(place):
    """pathlib's exists() says False for such a path: the checks passed, and the write after
    all the work failed with Python's "embedded null byte", naming no flag or file."""
    from refnet.paths import file_problem

    _refused("--out: '" + str(place / "a\x00b.npz").replace("\x00", "\\x00")
             + "' cannot be used (a NUL character in the name); give another path",
             place / "a\x00b.npz", "--out")
    _refused("a NUL character", place / "d", "--out", folder=True,
             beside={place / "d\x00.json": "the metadata file"})
    _refused("a NUL character", place / "new\x00", folder=True)
    assert file_problem(place / "a\x00b") == "cannot be used (a NUL character in the name)"
