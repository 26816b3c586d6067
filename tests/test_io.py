import json
import os
import signal
import sys
import zipfile

import numpy as np
import pytest

import refnet as rn
from refnet.io import (ModelFileError, from_state_dict, load_model, load_npz, save_model,
                       save_npz_atomic, to_state_dict)


@pytest.fixture
def model():
    arch = rn.Architecture((5, 4, 3), ("shifted_sigmoid(alpha=4)", "identity"), train_biases=False)
    return arch, rn.init_params(arch, rng=0)


def test_roundtrip_keeps_arrays_architecture_and_metadata(tmp_path, model):
    arch, p = model
    path = save_model(tmp_path / "m.npz", arch, p, {"seed": 7, "noise": {"add_unc": 0.1}})
    a2, p2, meta = load_model(path)
    assert a2 == arch
    for x, y in zip(p.arrays(), p2.arrays()):
        np.testing.assert_array_equal(x, y)
    assert meta["seed"] == 7 and meta["refnet_version"] == rn.__version__
    assert meta["architecture"]["activations"] == ["shifted_sigmoid(alpha=4.0)", "identity"]
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_files_contain_no_pickle(tmp_path, model):
    path = save_model(tmp_path / "m.npz", *model)
    with np.load(path, allow_pickle=False) as z:  # would raise on an object array
        assert sorted(z.files) == ["W1", "W2", "b1", "b2", "metadata"]
        assert all(z[k].dtype != object for k in z.files)


def test_truncated_file_is_a_clear_error(tmp_path, model):
    path = save_model(tmp_path / "m.npz", *model)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="m.npz: cannot be read .*truncated or corrupted"):
        load_model(path)


def test_corrupted_member_is_detected_by_its_crc(tmp_path, model):
    path = save_model(tmp_path / "m.npz", *model)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("W1.npy")
    pos = info.header_offset + 30 + len(info.filename) + 200  # inside W1's data
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="m.npz"):
        load_model(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "nope.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a refnet file"):
        load_model(tmp_path / "plain.npz")
    save_npz_atomic(tmp_path / "other.npz", {"a": np.zeros(2)}, {"format": "something"})
    with pytest.raises(ModelFileError, match="not a refnet model"):
        load_model(tmp_path / "other.npz")
    arrays, meta = load_npz(tmp_path / "other.npz")
    assert meta == {"format": "something"} and list(arrays) == ["a"]


def test_state_dict_key_schemes(model):
    arch, p = model
    sd = to_state_dict(arch, p)
    assert sorted(sd) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert sorted(to_state_dict(arch, p, "fc")) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    a2, p2 = from_state_dict(sd, arch)
    np.testing.assert_array_equal(p2.W[1], p.W[1])
    a3, _ = from_state_dict(to_state_dict(arch, p, ["enc", "dec"]), naming=["enc", "dec"])
    assert a3.sizes == arch.sizes and a3.activations == ("sigmoid", "identity")
    with pytest.raises(ValueError, match="state: missing key '2.weight'"):
        from_state_dict({"0.weight": p.W[0], "0.bias": p.b[0]}, arch)
    with pytest.raises(ValueError, match="naming: unknown 'keras'"):
        to_state_dict(arch, p, "keras")


def test_metadata_is_json(tmp_path, model):
    path = save_model(tmp_path / "m.npz", *model, metadata={"history": [{"epoch": 1}]})
    with np.load(path, allow_pickle=False) as z:
        assert json.loads(str(z["metadata"]))["history"] == [{"epoch": 1}]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_non_finite_metadata_is_refused_naming_its_key(tmp_path, model, bad):
    """Written as NaN/Infinity, which is not JSON: `refnet info --json` printed no JSON."""
    from refnet.errors import ConfigError
    with pytest.raises(ConfigError, match=r"metadata: history\[1\]\.val_loss is -?(nan|inf), "
                                          "which JSON cannot hold; store a finite number"):
        save_model(tmp_path / "m.npz", *model, {"history": [{"val_loss": 1.0},
                                                            {"val_loss": bad}]})
    assert not (tmp_path / "m.npz").exists()


def test_save_model_never_writes_what_load_model_refuses(tmp_path):
    from refnet.errors import ConfigError
    from refnet.io import check_savable
    from refnet.model import MAX_LAYERS, MAX_WIDTH, init_params, mlp
    arch = mlp((1,) * (MAX_LAYERS + 2))  # one weight layer more than a file may hold
    with pytest.raises(ConfigError, match=f"{MAX_LAYERS + 1} weight layers, more than the {MAX_LAYERS}"):
        save_model(tmp_path / "deep.npz", arch, init_params(arch, rng=0))
    assert not (tmp_path / "deep.npz").exists()
    with pytest.raises(ConfigError, match=f"--hidden: a layer of width {MAX_WIDTH + 1}"):
        check_savable((2, MAX_WIDTH + 1, 2), what="--hidden")
    with pytest.raises(ConfigError, match="GiB as float32, more than"):
        check_savable((784, 200_000, 784), "float32")
    check_savable((784, 300, 300, 10))
    check_savable((1, MAX_WIDTH, 2))


@pytest.mark.parametrize("step", ["write", "read-back"])
def test_atomic_write_files_changes_no_target_when_one_fails(step, tmp_path, monkeypatch):
    """Files written one after another left the first new beside the others old when the
    second failed; the set is staged in full (and read back) before any rename."""
    import os

    from refnet import io as rio

    old = {tmp_path / name: f"old {name}".encode() for name in ("a.csv", "b.png", "c.json")}
    for path, data in old.items():
        path.write_bytes(data)
    new = {path: b"new " + data for path, data in old.items()}
    real_fsync, real_read = os.fsync, type(tmp_path).read_bytes
    if step == "write":
        calls = []

        def fsync(fd):  # the disk fills up while the third file is written
            calls.append(fd)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        match = "No space left"
    else:
        def read_bytes(self):  # the second file reads back other bytes than were written
            data = real_read(self)
            return data[:-1] if self.name.startswith(".b.png.") else data

        monkeypatch.setattr(type(tmp_path), "read_bytes", read_bytes)
        match = "b.png: read-back differs"
    with pytest.raises(OSError, match=match):
        rio.atomic_write_files(new, verify=True)
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == old  # no temporaries either
    assert rio.atomic_write_files(new, verify=True) == list(new)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == new


def test_npz_bytes_are_savez_bytes():
    import io as _io

    from refnet.io import npz_bytes

    arrays = {"W1": np.arange(12.0).reshape(3, 4), "b1": np.float32([1, 2]),
              "metadata": np.array('{"a": 1}')}
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    assert npz_bytes(arrays) == buf.getvalue()
    with pytest.raises(ValueError, match="x: an object array would be written as a pickle"):
        npz_bytes({"x": np.array([object()])})


def test_npz_bytes_raises_what_the_helper_thread_raised(monkeypatch):
    from refnet.io import npz_bytes

    def failing(*args, **kwargs):
        raise OSError("no space left")

    monkeypatch.setattr(np.lib.format, "write_array", failing)
    with pytest.raises(OSError, match="no space left"):
        npz_bytes({"W1": np.ones(3)})


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="needs POSIX signal masks")
def test_ctrl_c_while_an_archive_member_opens_leaves_no_broken_archive(monkeypatch):
    """SIGINT right after zipfile opened a member for writing and before its handle exists:
    in the main thread that left an archive that refused to close (a ValueError instead of the
    KeyboardInterrupt, then "Exception ignored in: ZipFile.__del__" at garbage collection, seen
    in CI). npz_bytes builds the archive on a helper thread: the interrupt lands in the wait."""
    import gc
    import threading
    import zipfile

    from refnet.io import npz_bytes

    opening, go_on = threading.Event(), threading.Event()
    real_init = zipfile._ZipWriteFile.__init__

    def slow_init(self, *args, **kwargs):      # the window: _writing is set, no handle yet
        opening.set()
        go_on.wait(10)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(zipfile._ZipWriteFile, "__init__", slow_init)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    def press_ctrl_c():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        assert opening.wait(10)
        os.kill(os.getpid(), signal.SIGINT)   # process-directed: the main thread takes it

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            npz_bytes({"W1": np.ones((3, 4))})
    finally:
        go_on.set()
        presser.join()
    for t in threading.enumerate():   # the helper finishes its archive on its own
        if t.name == "refnet-npz-bytes":
            t.join(10)
    gc.collect()
    assert not unraisable, [u.exc_value for u in unraisable]
