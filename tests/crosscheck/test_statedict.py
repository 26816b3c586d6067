"""PyTorch-layout state dicts: key schemes, .safetensors and .npz files, torch round trips."""
import importlib.util
import io
import json
import os
import zipfile

import numpy as np
import pytest

import refnet as rn
from refnet.cli import main
from refnet.errors import ConfigError, ModelFileError
from refnet.io import save_model
from refnet.statedict import (from_state_dict, load_state_dict, load_tensors, metadata_path,
                              save_state_dict, save_tensors, to_state_dict)

#: safetensors is an optional extra: its cases skip cleanly where it is not installed
needs_safetensors = pytest.mark.skipif(importlib.util.find_spec("safetensors") is None,
                                       reason="the optional package safetensors is not installed")
FORMATS = (pytest.param(".safetensors", marks=needs_safetensors), ".npz")


@pytest.fixture
def model():
    arch = rn.mlp((6, 5, 4, 3))
    return arch, rn.init_params(arch, rng=7)


def _same(p, q):
    for a, b in zip(p.arrays(), q.arrays()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("naming, keys", [
    ("sequential", ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]),
    ("fc", ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]),
    ("h", ["h1.weight", "h1.bias", "h2.weight", "h2.bias", "h3.weight", "h3.bias"]),
])
def test_key_schemes_round_trip_and_auto_detect(model, naming, keys):
    arch, p = model
    sd = to_state_dict(arch, p, naming)
    assert list(sd) == keys
    _same(from_state_dict(sd, arch, naming)[1], p)
    a2, p2 = from_state_dict(dict(reversed(list(sd.items()))), naming="auto")
    assert a2 == arch
    _same(p2, p)


def test_auto_orders_numbers_not_strings(model):
    """An nn.Sequential with dropout in between (0, 3, ..., 12) and more than ten layers."""
    arch = rn.mlp((3,) * 12 + (2,))
    p = rn.init_params(arch, rng=1)
    prefixes = [f"net.{3 * i}" for i in range(arch.n_layers)]
    sd = to_state_dict(arch, p, prefixes)
    a2, p2 = from_state_dict(dict(sorted(sd.items())), naming="auto")
    assert a2 == arch
    _same(p2, p)


def test_explicit_mapping_and_errors(model):
    arch, p = model
    mapping = {f"{c}{l}": f"layer_{'abc'[l - 1]}.{'weight' if c == 'W' else 'bias'}"
               for l in (1, 2, 3) for c in "Wb"}
    sd = to_state_dict(arch, p, mapping)
    assert "layer_c.bias" in sd
    _same(from_state_dict(sd, arch, mapping)[1], p)
    with pytest.raises(ModelFileError, match="different stems|no number"):
        from_state_dict(sd, naming="auto")
    with pytest.raises(ConfigError, match="exactly the keys"):
        to_state_dict(arch, p, {"W1": "x"})
    bad = to_state_dict(arch, p)
    bad["2.weight"] = bad["2.weight"][:, :3]
    with pytest.raises(ModelFileError, match=r"W2 has shape \(4, 3\).*2\.weight"):
        from_state_dict(bad, arch)
    with pytest.raises(ModelFileError, match="3 weight layers, 2 layer prefixes"):
        from_state_dict({k: v for k, v in to_state_dict(arch, p).items() if k[0] != "4"},
                        arch, "auto")


@pytest.mark.parametrize("suffix", FORMATS)
def test_files_hold_tensors_only_and_round_trip(tmp_path, model, suffix):
    arch, p = model
    path = save_state_dict(tmp_path / f"w{suffix}", arch, p, "fc", {"note": "hi"})
    arrays, meta = load_tensors(path)
    assert sorted(arrays) == sorted(to_state_dict(arch, p, "fc"))  # no metadata entry
    assert meta["architecture"] == arch.as_dict() and meta["note"] == "hi"
    a2, p2, _ = load_state_dict(path)
    assert a2 == arch
    _same(p2, p)
    if suffix == ".npz":
        assert json.loads(metadata_path(path).read_text())["naming"] == "fc"
        with np.load(path, allow_pickle=False) as z:
            assert sorted(z.files) == sorted(arrays)
    else:
        assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not zip bytes


@needs_safetensors
def test_file_errors_name_the_file(tmp_path, model):
    arch, p = model
    with pytest.raises(ConfigError, match=r"w\.pt: unknown weight file type"):
        save_state_dict(tmp_path / "w.pt", arch, p)
    with pytest.raises(ModelFileError, match="no such file"):
        load_state_dict(tmp_path / "absent.npz")
    path = save_state_dict(tmp_path / "w.safetensors", arch, p)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ModelFileError, match=r"w\.safetensors: truncated or not a safetensors"):
        load_state_dict(path)
    other = rn.mlp((6, 4, 3))
    save_tensors(tmp_path / "x.npz", to_state_dict(other, rn.init_params(other, rng=0)))
    with pytest.raises(ModelFileError, match=r"x\.npz: the architecture has 3 weight layers"):
        load_state_dict(tmp_path / "x.npz", arch)
    a2, _, meta = load_state_dict(tmp_path / "x.npz")  # no metadata: sizes from the shapes
    assert a2 == other and meta == {}


@needs_safetensors
@pytest.mark.parametrize("size, words", [
    (0, "the file is empty (0 bytes), not a safetensors file"),
    (5, "truncated: 5 bytes, shorter than the 8-byte header length"),
    (40, "truncated or not a safetensors file (its first 8 bytes give a header of "),
])
def test_empty_or_cut_safetensors_says_so(tmp_path, model, size, words):
    """An empty file was "its header length -1 does not fit the file's 0 bytes"."""
    path = save_state_dict(tmp_path / "w.safetensors", *model)
    path.write_bytes(path.read_bytes()[:size])
    with pytest.raises(ModelFileError) as e:
        load_state_dict(path)
    assert str(e.value).startswith(f"{path}: {words}") and "write it again" in str(e.value)
    assert "-1" not in str(e.value)[len(str(path)):]   # the tmp path may hold "-1" itself


@needs_safetensors
@pytest.mark.parametrize("dtype", ["BF16", "F8_E4M3"])
def test_bfloat16_safetensors_says_how_to_convert(tmp_path, dtype):
    """PyTorch's bfloat16 (and float8) have no NumPy dtype: the reader's "KeyError: 'BF16'"
    named neither the tensor nor the fix."""
    import struct

    size = 2 if dtype == "BF16" else 1
    header = json.dumps({"0.weight": {"dtype": dtype, "shape": [4, 6],
                                      "data_offsets": [0, 24 * size]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(24 * size))
    with pytest.raises(ModelFileError) as e:
        load_state_dict(path)
    assert str(e.value) == (f"{path}: tensor '0.weight' has dtype {dtype}, which NumPy cannot "
                            "hold; convert the tensors to float32 or float64 before saving "
                            "(PyTorch: {k: v.float() for k, v in sd.items()})")


def test_integer_weights_say_how_to_convert(model):
    """"expected floats" named no way out."""
    state = {k: v.astype(np.int64) for k, v in to_state_dict(*model).items()}
    with pytest.raises(ModelFileError, match=r"^sd\.npz: '0\.weight' has dtype int64, expected "
                                             r"floats; convert the weights to float32 or "
                                             r"float64 before saving \(PyTorch: "):
        from_state_dict(state, source="sd.npz")


def test_missing_safetensors_package_is_a_clear_error(tmp_path, model, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ConfigError, match=r"refnet\[safetensors\]"):
        save_state_dict(tmp_path / "w.safetensors", *model)


@pytest.mark.parametrize("suffix", FORMATS)
def test_info_exports_real_files(tmp_path, model, suffix, capsys):
    arch, p = model
    save_model(tmp_path / "m.npz", arch, p)
    out = tmp_path / f"sd{suffix}"
    assert main(["info", str(tmp_path / "m.npz"), "--export-state-dict", str(out)]) == 0
    a2, p2, meta = load_state_dict(out)
    assert a2 == arch and meta["source_model"].endswith("m.npz")
    _same(p2, p)


def _torch_net(torch, arch):
    layers = []
    for l, (n_in, n_out) in enumerate(zip(arch.sizes[:-1], arch.sizes[1:]), start=1):
        layers.append(torch.nn.Linear(n_in, n_out))
        if l < arch.n_layers:
            layers.append(torch.nn.Sigmoid())
    return torch.nn.Sequential(*layers).double()


@pytest.mark.torch
@pytest.mark.parametrize("suffix", FORMATS)
def test_refnet_to_torch_strict_and_back(tmp_path, model, suffix):
    """refnet -> file -> torch load_state_dict(strict=True) -> same outputs -> torch trains a
    step -> file -> refnet -> same outputs as torch. The weights cross bit for bit; outputs
    agree to float64 rounding (the two sum the matrix products in different orders)."""
    torch = pytest.importorskip("torch")
    arch, p = model
    X = np.random.default_rng(3).normal(size=(9, 6))
    path = save_state_dict(tmp_path / f"a{suffix}", arch, p)
    arrays, _ = load_tensors(path)
    net = _torch_net(torch, arch)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=True)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), arrays[k])
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(X)).numpy(), rn.forward(arch, p, X)[0],
                                   rtol=1e-13, atol=1e-15)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(torch.from_numpy(X)).square().sum().backward()
    opt.step()
    back = tmp_path / f"b{suffix}"
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file  # the file a torch user would write
        save_file(net.state_dict(), str(back))
    else:
        np.savez(back, **sd)
    a2, p2, meta = load_state_dict(back)
    assert a2 == arch and meta == {}
    assert not np.array_equal(p2.W[0], p.W[0])  # the step moved the weights
    for l, (w, b) in enumerate(zip(p2.W, p2.b)):
        np.testing.assert_array_equal(w, sd[f"{2 * l}.weight"])
        np.testing.assert_array_equal(b, sd[f"{2 * l}.bias"])
    with torch.no_grad():
        np.testing.assert_allclose(rn.forward(a2, p2, X)[0], net(torch.from_numpy(X)).numpy(),
                                   rtol=1e-13, atol=1e-15)


# --- bad files: refnet's own errors, sizes checked before allocation, pairs written together --

def _npz_with_sidecar(path, arrays, sidecar_text=None):
    np.savez(path, **arrays)
    if sidecar_text is not None:
        metadata_path(path).write_text(sidecar_text)
    return path


@pytest.mark.parametrize("arrays, sidecar, naming, message", [
    ({"0.weight": np.ones((2, 3)), "0.bias": np.zeros(2)}, "5", "auto", "must be a JSON object"),
    ({"0.weight": np.ones((2, 3)), "0.bias": np.zeros(2)}, "[" * 5000 + "]" * 5000, "auto",
     "nests deeper"),
    ({"0.weight": np.array(1.0), "0.bias": np.zeros(1)}, None, "sequential", r"has shape \(\)"),
    ({"0.weight": np.ones((0, 3)), "0.bias": np.zeros(0)}, None, "auto", r"shape \(0, 3\)"),
    ({"0.weight": np.full((2, 3), np.nan), "0.bias": np.zeros(2)}, None, "auto", "non-finite"),
    ({"0.weight": np.ones((2, 3), complex), "0.bias": np.zeros(2)}, None, "auto", "complex128"),
])
def test_load_state_dict_bad_files_are_model_file_errors(tmp_path, arrays, sidecar, naming,
                                                         message):
    path = _npz_with_sidecar(tmp_path / "w.npz", arrays, sidecar)
    with pytest.raises(ModelFileError, match=message) as e:
        load_state_dict(path, naming=naming)
    assert str(path) in str(e.value)


def test_load_tensors_reads_with_the_npz_checks(tmp_path, monkeypatch):
    text = tmp_path / "t.npz"
    text.write_text("not an archive\n")
    with pytest.raises(ModelFileError, match=r"t\.npz: not an \.npz") as e:
        load_tensors(text)
    assert "pickle" not in str(e.value)
    lying = tmp_path / "lying.npz"  # a header claiming 10^10 elements over 8 bytes of data
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100000, 100000)})
    with zipfile.ZipFile(lying, "w") as z:
        z.writestr("0.weight.npy", header.getvalue() + bytes(8))
    with pytest.raises(ModelFileError, match=r"lying\.npz: member 0\.weight\.npy: header declares"):
        load_tensors(lying)
    import refnet.npzfile
    big = tmp_path / "big.npz"
    np.savez_compressed(big, w=np.zeros(4096))  # 32 KiB deflated to a few hundred bytes
    monkeypatch.setattr(refnet.npzfile, "MAX_TOTAL_BYTES", 16384)
    with pytest.raises(ModelFileError, match="ceiling"):
        load_tensors(big)


def test_npz_pair_is_all_or_nothing(tmp_path, model, monkeypatch, capsys):
    arch, p = model
    side = tmp_path / "ex.npz.json"
    side.mkdir()  # the metadata's destination is a folder: refused before anything is written
    with pytest.raises(ConfigError, match=r"ex\.npz\.json .*is a folder"):
        save_state_dict(tmp_path / "ex.npz", arch, p)
    assert not (tmp_path / "ex.npz").exists()
    save_model(tmp_path / "m.npz", arch, p)
    assert main(["info", str(tmp_path / "m.npz"), "--export-state-dict",
                 str(tmp_path / "ex.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--export-state-dict" in err[0] and "ex.npz.json" in err[0]
    assert not (tmp_path / "ex.npz").exists()
    side.rmdir()
    # an interruption between the two renames: new metadata beside the old tensors is refused
    path = save_state_dict(tmp_path / "ex.npz", arch, p, metadata={"v": 1})
    q = rn.init_params(arch, rng=8)
    real_replace = os.replace

    def interrupted(src, dst):
        if os.fspath(dst) == os.fspath(path):
            raise KeyboardInterrupt
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_state_dict(path, arch, q, metadata={"v": 2})
    monkeypatch.undo()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["ex.npz", "ex.npz.json", "m.npz"]
    with pytest.raises(ModelFileError, match=r"ex\.npz\.json belongs to another version"):
        load_state_dict(path)
    save_state_dict(path, arch, q, metadata={"v": 2})  # written again: a consistent pair
    _same(load_state_dict(path)[1], q)
    np.savez(path, **to_state_dict(arch, p))  # the tensors replaced on their own
    with pytest.raises(ModelFileError, match="not written together"):
        load_tensors(path)


@pytest.mark.parametrize("digest", [None, "", "ab" * 31, "AB" * 32, 7, ["ab" * 32]])
def test_npz_digest_null_or_not_a_sha256_is_refused_a_missing_one_read(tmp_path, model, digest):
    """'"tensors_sha256": null' turned the pair check off: the tensors were read unchecked."""
    arch, p = model
    path = save_state_dict(tmp_path / "w.npz", arch, p)
    side = metadata_path(path)
    meta = json.loads(side.read_text())
    meta["tensors_sha256"] = digest
    side.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError) as e:
        load_state_dict(path)
    message = str(e.value)
    assert str(path) in message and f"{side}: 'tensors_sha256' must be a sha256" in message
    assert "delete w.npz.json" in message
    del meta["tensors_sha256"]  # no key: an .npz.json of an older refnet, or written by hand
    side.write_text(json.dumps(meta))
    a2, p2, meta2 = load_state_dict(path)
    assert a2 == arch and "tensors_sha256" not in meta2 and meta2["format"] == "refnet-state-dict"
    _same(p2, p)


@pytest.mark.parametrize("dest, message", [("m.npz/x.npz", "m.npz is a file, not a folder"),
                                           ("d.npz", "d.npz is a folder")])
def test_export_destination_checked_before_work(tmp_path, model, capsys, dest, message):
    arch, p = model
    save_model(tmp_path / "m.npz", arch, p)
    (tmp_path / "d.npz").mkdir()
    assert main(["info", str(tmp_path / "m.npz"), "--export-state-dict",
                 str(tmp_path / dest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--export-state-dict" in err[0] and message in err[0]
    assert "Errno" not in err[0]
