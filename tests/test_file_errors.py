"""Every failure listed under "Why" in issue #12 (library side), one named test each: a clean
refnet error naming the file and the fix, never a traceback from a parser, never a silent
acceptance."""
import io
import json
import struct
import tracemalloc
import zipfile

import sys
from pathlib import Path

import numpy as np
import pytest

import refnet as rn
import refnet.npzfile as npzfile
from refnet.errors import (CheckpointError, ConfigError, DataError, ModelFileError, RefnetError,
                           ResultFileError, TrainingDiverged)
from refnet.io import load_model, save_model, save_npz_atomic
from refnet.train import TrainConfig, train

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
import fuzzkit  # noqa: E402  (the fuzz suite's file builders)


@pytest.fixture
def model():
    arch = rn.Architecture((5, 4, 3), ("sigmoid", "identity"))
    return arch, rn.init_params(arch, rng=0)


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _write(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data, method)
    return path


def _members(arch, params, meta=None, **replace):
    """The members of a model file, with ``replace[name] = bytes`` swapped in."""
    meta = meta or {"format": "refnet-model", "architecture": arch.as_dict(), "dtype": "float64"}
    out = [("metadata.npy", _npy(np.array(json.dumps(meta))))]
    for l, (w, b) in enumerate(zip(params.W, params.b), start=1):
        out += [(f"W{l}.npy", _npy(w)), (f"b{l}.npy", _npy(b))]
    return [(n, replace.get(n.removesuffix(".npy"), d)) for n, d in out]


def _refused(path, match, error=ModelFileError, loader=load_model):
    with pytest.raises(error) as e:
        loader(path)
    assert str(path) in str(e.value)
    assert e.match(match)
    return e.value


# --- crashes with a traceback today ----------------------------------------------------------

def test_corrupt_deflate_stream_zlib_error(tmp_path, model):
    path = _write(tmp_path / "m.npz", _members(*model), zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("W1.npy")
    start = info.header_offset + 30 + len(info.filename)
    data[start:start + 8] = b"\xff" * 8  # an invalid deflate block header
    path.write_bytes(bytes(data))
    _refused(path, "cannot be read .*truncated or corrupted")


def test_unknown_compression_method_not_implemented(tmp_path, model):
    path = _write(tmp_path / "m.npz", _members(*model))
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        i = data.find(sig)
        data[i + off:i + off + 2] = struct.pack("<H", 99)
    path.write_bytes(bytes(data))
    _refused(path, "compression method 99")


@pytest.mark.parametrize("text", ["5", "1.5", "true", '"x"', "[1, 2]", "null"])
def test_metadata_that_is_not_a_json_object_attribute_error(tmp_path, model, text):
    members = _members(*model, metadata=_npy(np.array(text)))
    _refused(_write(tmp_path / "m.npz", members), "metadata must be a JSON object")


@pytest.mark.parametrize("flag", [0x1, 0x20, 0x40])  # encrypted, patched data, strong encryption
def test_encrypted_or_patched_members_not_implemented(tmp_path, model, flag):
    path = _write(tmp_path / "m.npz", _members(*model))
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig)
        data[i + off:i + off + 2] = struct.pack("<H", flag)
    path.write_bytes(bytes(data))
    _refused(path, "cannot be read|encrypted")


def test_member_that_is_not_an_array(tmp_path, model):
    members = [("W1" if n == "W1.npy" else n, d) for n, d in _members(*model)]
    _refused(_write(tmp_path / "m.npz", members), "member 'W1' is not an .npy array")


@pytest.mark.parametrize("arch_json, match", [
    ([5, 4, 3], "'architecture' must be a JSON object"),
    (7, "'architecture' must be a JSON object"),
    ({"sizes": [5, 4, 3]}, "needs the keys"),
    ({"sizes": "543", "activations": ["sigmoid", "identity"]}, "'sizes' must be a list"),
    ({"sizes": [5, 4, 3], "activations": ["sigmoid", 3]}, "'activations' must be a list"),
    ({"sizes": [5, 4, 3], "activations": ["sigmoid", "identity"], "bias": 1}, "needs the keys"),
])
def test_architecture_metadata_of_wrong_shape_key_and_type_errors(tmp_path, model, arch_json, match):
    meta = {"format": "refnet-model", "architecture": arch_json}
    _refused(_write(tmp_path / "m.npz", _members(*model, meta=meta)), match)


@pytest.mark.parametrize("sizes", ["[1e400, 4, 3]", "[100000000000000000000000000000, 4, 3]",
                                   "[5.0, 4, 3]", "[true, 4, 3]"])
def test_overflowing_or_non_integer_sizes_overflow_error(tmp_path, model, sizes):
    text = ('{"format": "refnet-model", "architecture": {"sizes": %s, '
            '"activations": ["sigmoid", "identity"]}}' % sizes)
    members = _members(*model, metadata=_npy(np.array(text)))
    _refused(_write(tmp_path / "m.npz", members), "'sizes' must be a list of 2..65 integers")


@pytest.mark.parametrize("depth", [40, 5000, 200000])
def test_deeply_nested_metadata_recursion_error(tmp_path, model, depth):
    text = '{"format": "refnet-model", "x": ' + "[" * depth + "]" * depth + "}"
    members = _members(*model, metadata=_npy(np.array(text)))
    _refused(_write(tmp_path / "m.npz", members), "nest")


def test_npy_header_claiming_1e12_elements_memory_error(tmp_path, model):
    fake = _npy(np.zeros(3)).replace(b"(3,)", b"(1000000000000,)")
    path = _write(tmp_path / "m.npz", _members(*model, W1=fake))
    tracemalloc.start()
    try:
        _refused(path, r"header declares shape \(1000000000000,\)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000  # refused from the header, nothing of that size was allocated


def test_plain_npy_where_npz_expected_type_error(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros((3, 3)))
    _refused(path, "a plain .npy array, not an .npz")


def test_missing_file_is_named(tmp_path):
    _refused(tmp_path / "missing.npz", "no such file")


# --- silently accepted today -----------------------------------------------------------------

@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, model, value):
    arch, p = model
    W = p.W[1].copy()
    W[1, 2] = value
    _refused(_write(tmp_path / "m.npz", _members(arch, p, W2=_npy(W))),
             r"W2 holds a non-finite value .* at index \(1, 2\)")


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.complex128, np.float16, np.bool_])
def test_non_float_weight_dtypes_are_refused(tmp_path, model, dtype):
    arch, p = model
    members = _members(arch, p, W1=_npy(p.W[0].astype(dtype)))
    _refused(_write(tmp_path / "m.npz", members), "weights must be float32 or float64")


def test_text_and_object_members_are_refused(tmp_path, model):
    arch, p = model
    _refused(_write(tmp_path / "a.npz", _members(arch, p, b1=_npy(np.array(["a", "b", "c", "d"])))),
             "weights must be float32 or float64")
    obj = _npy(np.zeros(4)).replace(b"'<f8'", b"'|O' ")
    _refused(_write(tmp_path / "b.npz", _members(arch, p, b1=obj)), "pickle")


def test_duplicate_members_are_refused(tmp_path, model):
    arch, p = model
    members = _members(arch, p) + [("W1.npy", _npy(np.ones_like(p.W[0])))]
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = _write(tmp_path / "m.npz", members)
    _refused(path, r"duplicate members \['W1.npy'\]")


@pytest.mark.parametrize("value", ['"no"', '"false"', "0", "1", "null"])
def test_train_biases_must_be_a_json_boolean(tmp_path, model, value):
    arch, p = model
    text = ('{"format": "refnet-model", "architecture": {"sizes": [5, 4, 3], "activations": '
            '["sigmoid", "identity"], "train_biases": %s}}' % value)
    _refused(_write(tmp_path / "m.npz", _members(arch, p, metadata=_npy(np.array(text)))),
             "'train_biases' must be true or false")
    with pytest.raises(ConfigError, match="train_biases"):
        rn.Architecture.from_dict(json.loads(text)["architecture"])


def test_shapes_not_matching_the_architecture_are_refused(tmp_path, model):
    arch, p = model
    _refused(_write(tmp_path / "m.npz", _members(arch, p, W1=_npy(p.W[0].T))),
             r"W1 has shape \(5, 4\), but the architecture \[5, 4, 3\] needs \(4, 5\)")


def test_duplicate_json_keys_and_wrong_types_of_refnet_keys(tmp_path, model):
    arch, p = model
    text = '{"format": "refnet-model", "format": "x", "architecture": %s}' % json.dumps(arch.as_dict())
    _refused(_write(tmp_path / "a.npz", _members(arch, p, metadata=_npy(np.array(text)))),
             "repeats the key 'format'")
    meta = {"format": "refnet-model", "architecture": arch.as_dict(), "dtype": 64}
    _refused(_write(tmp_path / "b.npz", _members(arch, p, meta=meta)), "'dtype' must be one of")


def test_user_metadata_keys_pass_through_unread(tmp_path, model):
    arch, p = model
    path = save_model(tmp_path / "m.npz", arch, p, {"anything": {"nested": [1, "x"]}})
    assert load_model(path)[2]["anything"] == {"nested": [1, "x"]}


# --- zip bombs -------------------------------------------------------------------------------

def test_zip_bomb_is_refused_before_decompressing(tmp_path, monkeypatch):
    monkeypatch.setattr(npzfile, "MAX_TOTAL_BYTES", 1 << 20)  # so a small bomb exceeds it
    path = tmp_path / "bomb.npz"
    path.write_bytes(fuzzkit.zip_bomb_member("W1.npy", 64 << 20, (8 << 20,)))
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        _refused(path, "more than the ceiling")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000


def test_member_declaring_more_than_deflate_can_produce(tmp_path, model):
    path = _write(tmp_path / "m.npz", _members(*model), zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    i = data.find(b"PK\x01\x02")
    data[i + 24:i + 28] = struct.pack("<I", 2**31)  # uncompressed size in the directory
    path.write_bytes(bytes(data))
    _refused(path, "more than deflate can produce")


def test_member_hiding_more_data_than_declared(tmp_path, model):
    path = _write(tmp_path / "m.npz", _members(*model), zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # W... first member: metadata
        i = data.find(sig)
        (size,) = struct.unpack("<I", data[i + off:i + off + 4])
        data[i + off:i + off + 4] = struct.pack("<I", size - 16)
    path.write_bytes(bytes(data))
    _refused(path, "metadata")


# --- checkpoints -----------------------------------------------------------------------------

@pytest.fixture
def checkpointed(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(60, 5)), rng.integers(0, 3, 60)
    arch = rn.mlp((5, 4, 3))
    p = rn.init_params(arch, rng=0)
    ckpt = tmp_path / "run.ckpt.npz"
    train(arch, p, X, y, TrainConfig(epochs=1, batch_size=20), checkpoint=ckpt)
    return arch, p, X, y, ckpt


def _resume(arch, p, X, y, ckpt):
    return train(arch, p, X, y, TrainConfig(epochs=2, batch_size=20), checkpoint=ckpt)


def test_truncated_checkpoint_is_refused_and_kept(checkpointed):
    arch, p, X, y, ckpt = checkpointed
    ckpt.write_bytes(ckpt.read_bytes()[:-100])
    before = ckpt.read_bytes()
    with pytest.raises(CheckpointError, match=f"{ckpt}: .*delete or move"):
        _resume(arch, p, X, y, ckpt)
    assert ckpt.read_bytes() == before


def _edit_a_weight(ckpt):
    """Change W1[0, 0] of ``ckpt`` slightly, its content hash left as it was."""
    with zipfile.ZipFile(ckpt) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    W = np.load(io.BytesIO(dict(members)["W1.npy"]))
    W[0, 0] += 1e-9  # a plausible, finite edit: only the hash can tell
    _write(ckpt, [(n, _npy(W) if n == "W1.npy" else d) for n, d in members])
    return ckpt.read_bytes()


def test_edited_checkpoint_fails_its_content_hash(checkpointed):
    arch, p, X, y, ckpt = checkpointed
    before = _edit_a_weight(ckpt)
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        _resume(arch, p, X, y, ckpt)
    assert ckpt.read_bytes() == before


def test_edited_checkpoint_resumed_on_other_data_is_damaged_not_other_data(checkpointed):
    """The recorded data fingerprint was compared before the content hash was verified, so
    an edited checkpoint resumed on other data was blamed on the data."""
    arch, p, X, y, ckpt = checkpointed
    before = _edit_a_weight(ckpt)
    with pytest.raises(CheckpointError, match="does not match its sha256") as e:
        _resume(arch, p, X[::-1].copy(), y, ckpt)
    assert "other data" not in str(e.value) and ckpt.read_bytes() == before


def test_checkpoint_without_content_hash_is_refused(checkpointed):
    arch, p, X, y, ckpt = checkpointed
    from refnet.io import load_npz
    arrays, meta = load_npz(ckpt)
    del meta["sha256"]
    save_npz_atomic(ckpt, arrays, meta)
    with pytest.raises(CheckpointError, match="metadata lacks \\['sha256'\\]"):
        _resume(arch, p, X, y, ckpt)


def test_checkpoint_with_nan_optimizer_state_is_refused(checkpointed):
    arch, p, X, y, ckpt = checkpointed
    from refnet.io import load_npz
    arrays, meta = load_npz(ckpt)
    arrays["opt/sum.0"][0, 0] = np.nan
    save_npz_atomic(ckpt, arrays, {k: v for k, v in meta.items() if k != "sha256"}, sha256=True)
    with pytest.raises(CheckpointError, match="opt/sum.0 holds NaN or inf"):
        _resume(arch, p, X, y, ckpt)


# --- divergence ------------------------------------------------------------------------------

def test_sgd_with_huge_learning_rate_stops(rng):
    X, y = rng.normal(size=(2000, 20)), rng.integers(0, 3, 2000)
    arch = rn.mlp((20, 16, 3))
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(TrainingDiverged, match=r"at epoch 1, batch \d+; no checkpoint") as e:
        train(arch, rn.init_params(arch, rng=1), X, y, TrainConfig(epochs=3, optimizer="sgd", lr=1e305))
    assert e.value.epoch == 1 and e.value.batch >= 1


# adagrad: the fused update counts non-finite values; sgd, adam: the trainer's own reduction
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
def test_non_finite_gradient_stops_with_parameters_named_and_checkpoint_kept(rng, tmp_path,
                                                                            monkeypatch,
                                                                            optimizer):
    import refnet.step as rt   # the training step's backward pass
    X, y = rng.normal(size=(100, 4)), rng.integers(0, 2, 100)
    arch = rn.mlp((4, 3, 2))
    p = rn.init_params(arch, rng=0)
    ckpt = tmp_path / "c.npz"
    train(arch, p, X, y, TrainConfig(epochs=1, batch_size=25, optimizer=optimizer, lr=0.1),
          checkpoint=ckpt)
    saved = ckpt.read_bytes()
    calls = []

    def backward_with_inf_at_third_call(*args, **kw):  # a gradient overflowing in batch 3
        g = rt.backward.__wrapped__(*args, **kw)
        calls.append(1)
        if len(calls) == 3:
            g.W[0][0, 0] = np.inf
        return g

    backward_with_inf_at_third_call.__wrapped__ = rt.backward
    monkeypatch.setattr(rt, "backward", backward_with_inf_at_third_call)
    with np.errstate(invalid="ignore"), \
            pytest.raises(TrainingDiverged, match=r"parameters became non-finite .* at epoch 2, "
                                                  r"batch 3; the last good checkpoint"):
        # (adam divides the infinite moments: inf / inf, a NaN, which is the point)
        train(arch, p, X, y, TrainConfig(epochs=2, batch_size=25, optimizer=optimizer, lr=0.1),
              checkpoint=ckpt)
    assert ckpt.read_bytes() == saved


# --- result files, configs, datasets ---------------------------------------------------------

def test_result_file_edited_or_without_hash_is_refused(tmp_path):
    from refnet.reproduction.results import read_results, save_results
    path = save_results(tmp_path, "r", {"a": np.arange(3.0)}, {"seed": 0})
    assert read_results(path)[1]["seed"] == 0
    save_npz_atomic(path, {"a": np.arange(3.0)}, {"format": "refnet-results", "refnet_version": "0"})
    _refused(path, "lacks \\['sha256'\\]", ResultFileError, read_results)
    save_npz_atomic(path, {"a": np.arange(3) + 1j}, {"format": "refnet-results",
                                                      "refnet_version": "0"}, sha256=True)
    _refused(path, "results are real numbers or text", ResultFileError, read_results)


def test_run_record_of_wrong_types_is_refused(tmp_path):
    from refnet.reproduction.results import read_run_state
    path = tmp_path / "reproduce.json"
    path.write_text('{"preset": "quick", "seed": "0", "scripts": {}}')
    _refused(path, "'seed' must be an integer", ResultFileError, read_run_state)
    path.write_text('{"preset": "quick", "seed": 0, "scripts": {"a": {"seconds": "NaN"}}}')
    _refused(path, "'seconds' must be a finite number", ResultFileError, read_run_state)


@pytest.mark.parametrize("seconds", ["1" + "0" * 400, "-1" + "0" * 400])
def test_run_record_with_a_huge_integer_is_out_of_range_not_unreadable(tmp_path, seconds):
    """want_number passed a JSON integer past a float's range to math.isfinite, whose
    OverflowError made the message "cannot be read (OverflowError ...)"."""
    from refnet.reproduction.results import read_run_state
    path = tmp_path / "reproduce.json"
    path.write_text('{"preset": "quick", "seed": 0, "scripts": {"a": {"seconds": %s}}}' % seconds)
    error = _refused(path, "'seconds' must be a finite number in \\[0, 1e\\+09\\]",
                     ResultFileError, read_run_state)
    assert "OverflowError" not in str(error)
    assert npzfile.want_number(0, 10.0).ok(10) and not npzfile.want_number(0, 10.0).ok(11)


def test_training_config_is_strict():
    with pytest.raises(ConfigError, match="'shuffle' must be true or false"):
        TrainConfig.from_dict({"shuffle": "no"})
    with pytest.raises(ConfigError, match="'epochs' must be an integer"):
        TrainConfig.from_dict({"epochs": 2.5})
    with pytest.raises(ConfigError, match="unknown keys \\['epoch'\\]"):
        TrainConfig.from_dict({"epoch": 2})


def test_dataset_errors_are_data_errors(tmp_path):
    from refnet.datasets._quickdraw_sources import QuickDrawError, _manifest
    from refnet.datasets.idx import IdxError, read_labels
    bad = tmp_path / "labels.idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")
    with pytest.raises(IdxError, match="labels.idx") as e:
        read_labels(bad)
    assert isinstance(e.value, DataError) and isinstance(e.value, RefnetError)
    (tmp_path / "MANIFEST.json").write_text('{"classes": [1, 2]}')
    with pytest.raises(QuickDrawError, match="MANIFEST.json: not a valid mirror manifest") as e:
        _manifest(tmp_path)
    assert isinstance(e.value, DataError)


def test_old_exception_names_are_the_new_families():
    import refnet.io
    import refnet.train
    assert refnet.io.ModelFileError is ModelFileError and issubclass(ModelFileError, ValueError)
    assert refnet.train.TrainingDiverged is TrainingDiverged
    assert issubclass(TrainingDiverged, FloatingPointError)


def test_user_data_arrays_are_read_with_the_same_checks(tmp_path):
    from refnet.npzfile import read_arrays
    path = tmp_path / "data.npz"
    np.savez(path, X=np.ones((4, 2)), y=np.arange(4), note=np.array("text"))
    out = read_arrays(path, ["X", "y"], error=DataError, fix="write X and y with np.savez")
    assert out["X"].shape == (4, 2) and out["y"].dtype == np.int64 and "note" not in out
    with pytest.raises(DataError, match=r"data.npz: needs arrays \['X', 'y', 'z'\], lacks \['z'\]"):
        read_arrays(path, ["X", "y", "z"], error=DataError, fix="x")
    with pytest.raises(DataError, match="array note has dtype <U4, expected real numbers"):
        read_arrays(path, ["note"], error=DataError, fix="x")
    np.save(tmp_path / "plain.npy", np.ones(3))
    with pytest.raises(DataError, match="plain.npy: a plain .npy array"):
        read_arrays(tmp_path / "plain.npy", ["X"], error=DataError, fix="x")


def test_checkpoint_of_another_dtype_is_refused(checkpointed):
    arch, p, X, y, ckpt = checkpointed
    with pytest.raises(CheckpointError, match="holds float64 parameters, this run trains float32"):
        _resume(arch, p.astype(np.float32), X, y, ckpt)


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b'{"a": "\xe9"}'])
def test_json_file_that_is_not_utf8_is_bad_content(tmp_path, content):
    """read_json_file (run records, tensor metadata) let a UnicodeDecodeError escape."""
    path = tmp_path / "record.json"
    path.write_bytes(content)
    with pytest.raises(npzfile.BadContent, match="not UTF-8 text"):
        npzfile.read_json_file(path, "the run record")


def test_checkpoint_of_other_training_data_is_refused_and_kept(checkpointed):
    arch, p, X, y, ckpt = checkpointed
    before = ckpt.read_bytes()
    with pytest.raises(CheckpointError, match="was written while training on other data"):
        _resume(arch, p, X[::-1].copy(), y, ckpt)
    assert ckpt.read_bytes() == before
    assert _resume(arch, p, X, y, ckpt).resumed_from == 1  # the same data resumes


def _with_data_sha256(ckpt, value):
    """Rewrite ``ckpt`` with ``data_sha256`` set to ``value`` (content hash recomputed)."""
    from refnet.io import load_npz, save_npz_atomic
    arrays, meta = load_npz(ckpt, error=CheckpointError)
    meta["data_sha256"] = value
    save_npz_atomic(ckpt, arrays, meta, sha256=True)
    return ckpt.read_bytes()


#: Values of a sha256 field that are no sha256 (hashlib writes 64 lowercase hex digits).
MALFORMED_SHA256 = ["ab" * 31, "AB" * 32, "zz" * 32, "ab" * 32 + "\n", "", 7]


@pytest.mark.parametrize("bad", MALFORMED_SHA256)
def test_checkpoint_with_malformed_data_fingerprint_is_damaged_not_other_data(checkpointed, bad):
    """A data_sha256 that is no sha256 was compared with the run's before its form was
    checked, and blamed on the training data; it is a damaged checkpoint's metadata."""
    arch, p, X, y, ckpt = checkpointed
    before = _with_data_sha256(ckpt, bad)
    with pytest.raises(CheckpointError) as e:
        _resume(arch, p, X, y, ckpt)  # the data it was written with
    message = str(e.value)
    assert str(ckpt) in message and "delete or move" in message
    assert "'data_sha256' must be a sha256 (64 lowercase hexadecimal digits)" in message
    assert "other data" not in message
    assert ckpt.read_bytes() == before


def test_checkpoint_with_well_formed_other_data_fingerprint_is_other_data(checkpointed):
    import hashlib
    arch, p, X, y, ckpt = checkpointed
    before = _with_data_sha256(ckpt, hashlib.sha256(b"other training data").hexdigest())
    with pytest.raises(CheckpointError, match="was written while training on other data") as e:
        _resume(arch, p, X, y, ckpt)
    assert str(ckpt) in str(e.value) and "must be a sha256" not in str(e.value)
    assert ckpt.read_bytes() == before


def test_checkpoint_without_data_fingerprint_still_resumes(checkpointed):
    from refnet.io import load_npz, save_npz_atomic
    arch, p, X, y, ckpt = checkpointed
    arrays, meta = load_npz(ckpt, error=CheckpointError)
    del meta["data_sha256"], meta["sha256"]  # as written before the fingerprint existed
    save_npz_atomic(ckpt, arrays, meta, sha256=True)
    assert _resume(arch, p, X, y, ckpt).resumed_from == 1


def test_checkpoint_of_other_starting_parameters_is_refused_and_kept(checkpointed):
    """The checkpoint recorded nothing of where its run started: one of fine-tuning model A
    was resumed when fine-tuning model B."""
    arch, p, X, y, ckpt = checkpointed
    before = ckpt.read_bytes()
    other = rn.init_params(arch, rng=1)
    with pytest.raises(CheckpointError, match="was started from other parameters") as e:
        train(arch, other, X, y, TrainConfig(epochs=2, batch_size=20), checkpoint=ckpt,
              start_from="--init-from b.npz")
    assert f"{ckpt}: " in str(e.value) and "--init-from b.npz" in str(e.value)
    assert ckpt.read_bytes() == before
    assert _resume(arch, p, X, y, ckpt).resumed_from == 1  # the same start resumes


def test_checkpoint_without_start_fingerprint_still_resumes(checkpointed):
    """Checkpoints of older refnet versions record no starting parameters: taken as they
    are, like those without a data fingerprint (their run cannot be told apart)."""
    from refnet.io import load_npz, save_npz_atomic
    arch, p, X, y, ckpt = checkpointed
    arrays, meta = load_npz(ckpt, error=CheckpointError)
    del meta["start_sha256"], meta["sha256"]
    save_npz_atomic(ckpt, arrays, meta, sha256=True)
    other = rn.init_params(arch, rng=1)
    res = train(arch, other, X, y, TrainConfig(epochs=2, batch_size=20), checkpoint=ckpt)
    assert res.resumed_from == 1


def test_json_integer_past_pythons_digit_limit_is_bad_content():
    """json.loads raises a plain ValueError (not JSONDecodeError) for an integer of more than
    4300 digits: it escaped parse_json, the reader of every file's metadata."""
    with pytest.raises(npzfile.BadContent, match="metadata is not valid JSON .*digits"):
        npzfile.parse_json('{"a": ' + "1" * 5000 + "}", "metadata")


def _with_content_hash(path, value):
    """Rewrite ``path`` with its content hash ``sha256`` replaced by ``value``."""
    from refnet.io import load_npz
    arrays, meta = load_npz(path, error=RefnetError)
    save_npz_atomic(path, arrays, {**meta, "sha256": value})
    return path


def _malformed_not_mismatched(error):
    assert "'sha256' must be a sha256 (64 lowercase hexadecimal digits)" in str(error)
    assert "does not match" not in str(error)


@pytest.mark.parametrize("bad", MALFORMED_SHA256 + ["its own hash in upper case"])
def test_model_or_result_with_malformed_content_hash_is_malformed_metadata(tmp_path, model, bad):
    """A content hash that is no sha256 (declared as any string of up to 64 characters) was
    compared with the content and reported as a damaged or edited file."""
    from refnet.reproduction.results import read_results, save_results
    path = save_model(tmp_path / "m.npz", *model)
    if bad == "its own hash in upper case":
        bad = load_model(path)[2]["sha256"].upper()
    _malformed_not_mismatched(_refused(_with_content_hash(path, bad), "'sha256'"))
    path = save_results(tmp_path, "r", {"a": np.arange(3.0)}, {"seed": 0})
    _malformed_not_mismatched(_refused(_with_content_hash(path, bad), "'sha256'",
                                       ResultFileError, read_results))


@pytest.mark.parametrize("bad", MALFORMED_SHA256)
def test_checkpoint_with_malformed_content_hash_is_malformed_metadata(checkpointed, bad):
    arch, p, X, y, ckpt = checkpointed
    before = _with_content_hash(ckpt, bad).read_bytes()
    with pytest.raises(CheckpointError) as e:
        _resume(arch, p, X, y, ckpt)
    _malformed_not_mismatched(e.value)
    assert str(ckpt) in str(e.value) and ckpt.read_bytes() == before
