"""Fuzzing refnet.io.load_model: every mutated model file loads to a valid, finite model or
raises ModelFileError naming the file; nothing else escapes (issue #12)."""
import json

import numpy as np
import pytest

import refnet as rn
from refnet.errors import ModelFileError
from refnet.io import load_model, save_model, save_npz_atomic

import fuzzkit as fk

N_CASES = 4000


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    arch = rn.Architecture((4, 3, 2), ("shifted_sigmoid(alpha=4)", "identity"), train_biases=False)
    params = rn.init_params(arch, rng=0)
    folder = tmp_path_factory.mktemp("orig")
    path = save_model(folder / "model.npz", arch, params,
                      {"seed": 3, "history": [{"epoch": 1, "train_loss": 0.5}]})
    # as another program (or an older refnet) writes it: no content hash, so the content
    # checks themselves (dtypes, shapes, finiteness, metadata types) must catch the damage
    meta = {"format": "refnet-model", "architecture": arch.as_dict(), "dtype": "float64"}
    plain = save_npz_atomic(folder / "plain.npz", {"W1": params.W[0], "b1": params.b[0],
                                                   "W2": params.W[1], "b2": params.b[1]}, meta)
    return arch, params, path.read_bytes(), plain.read_bytes()


def _check_loaded(loaded, arch, params, seed, failures):
    a2, p2, meta = loaded
    if not isinstance(a2, rn.Architecture) or type(a2.train_biases) is not bool:
        failures.append((seed, f"loaded a malformed architecture {a2!r}"))
        return
    for l, (w, b) in enumerate(zip(p2.W, p2.b), start=1):
        for name, x, shape in ((f"W{l}", w, (a2.sizes[l], a2.sizes[l - 1])), (f"b{l}", b, (a2.sizes[l],))):
            if x.dtype not in (np.float32, np.float64) or x.shape != shape or not np.isfinite(x).all():
                failures.append((seed, f"silently accepted {name}: {x.dtype} {x.shape}"))
                return
    if meta.get("sha256") and (a2 != arch or not all(
            np.array_equal(x, y) for x, y in zip(p2.arrays(), params.arrays()))):
        failures.append((seed, "content differs from the hashed original but was accepted"))


def test_fuzz_model_files(original, tmp_path, monkeypatch):
    fk.small_ceiling(monkeypatch)  # so the zip bombs among the cases exceed it
    arch, params, hashed, plain = original
    failures, loaded = [], 0
    path = tmp_path / "fuzzed_model.npz"
    cases = fk.seeds(1, N_CASES)
    for seed in cases:
        rng = np.random.default_rng(seed)
        data = hashed if seed % 2 else plain
        path.write_bytes(fk.mutate_file(data, rng, ["W1", "b1", "W2", "b2"]))
        out = fk.expect_clean_error(lambda: load_model(path), path, ModelFileError, seed, failures)
        if out is not None:
            loaded += 1
            _check_loaded(out, arch, params, seed, failures)
    assert not failures, fk.report(failures, len(cases), "model-file")
    # the mutations must mostly break files, and some (e.g. zip timestamps) leave them loadable
    assert loaded < len(cases) // 2


def test_hypothesis_model_metadata(original, tmp_path):
    """Arbitrary JSON metadata objects (Hypothesis) in an otherwise valid model file."""
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies
    arch, params, hashed, plain = original
    members = fk.read_members(plain)
    scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
    keys = st.sampled_from(["format", "architecture", "dtype", "saved", "refnet_version", "sha256",
                            "sizes", "activations", "train_biases", "x"])
    values = st.recursive(scalars | st.sampled_from(["refnet-model", "float64", "sigmoid"]),
                          lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(keys, inner, max_size=4), max_leaves=10)
    path = tmp_path / "hyp_model.npz"
    failures = []

    @hyp.settings(max_examples=int(400 * fk.SCALE), derandomize=True, deadline=None)
    @hyp.given(st.dictionaries(keys, values, max_size=6))
    def check(meta):
        text = json.dumps(meta)
        path.write_bytes(fk.write_zip(fk.with_member(members, "metadata.npy", fk.metadata_member(text))))
        out = fk.expect_clean_error(lambda: load_model(path), path, ModelFileError, -1, failures)
        if out is not None:
            _check_loaded(out, arch, params, -1, failures)

    check()
    assert not failures, fk.report(failures, 400, "hypothesis model-metadata")
