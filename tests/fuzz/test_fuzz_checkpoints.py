"""Fuzzing checkpoints: a mutated checkpoint is either refused with CheckpointError naming the
file (and left untouched by training) or, its content hash matching, resumes exactly what was
saved (issue #12)."""
import numpy as np
import pytest

import refnet as rn
from refnet.checkpoint import load_checkpoint
from refnet.errors import CheckpointError
from refnet.train import TrainConfig, train

import fuzzkit as fk

N_CASES = 3000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 2, 40)
    arch = rn.mlp((4, 3, 2))
    params = rn.init_params(arch, rng=0)
    config = TrainConfig(epochs=2, batch_size=20, optimizer="adam", lr=0.01)
    ckpt = tmp_path_factory.mktemp("ckpt") / "run.ckpt.npz"
    train(arch, params, X, y, config, checkpoint=ckpt)
    saved = load_checkpoint(ckpt, arch, config, params.arrays())
    return arch, params, config, ckpt.read_bytes(), saved


def test_fuzz_checkpoints(run, tmp_path, monkeypatch):
    fk.small_ceiling(monkeypatch)  # so the zip bombs among the cases exceed it
    arch, params, config, data, (p0, opt0, epochs0, hist0) = run
    names = ["W1", "b1", "W2", "b2", "opt/step", "opt/exp_avg.0", "opt/exp_avg_sq.2"]
    failures, loaded = [], 0
    path = tmp_path / "fuzzed.ckpt.npz"
    cases = fk.seeds(2, N_CASES)
    for seed in cases:
        rng = np.random.default_rng(seed)
        path.write_bytes(fk.mutate_file(data, rng, names))
        out = fk.expect_clean_error(lambda: load_checkpoint(path, arch, config, params.arrays()),
                                    path, CheckpointError, seed, failures)
        if out is None:
            continue
        loaded += 1
        p, opt, epochs, hist = out
        same = (epochs == epochs0 and hist == hist0 and set(opt) == set(opt0)
                and all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(p.arrays(), p0.arrays()))
                and all(np.array_equal(opt[k], opt0[k]) and opt[k].dtype == opt0[k].dtype for k in opt0))
        if not same:
            failures.append((seed, "a checkpoint differing from the saved one was accepted"))
    assert not failures, fk.report(failures, len(cases), "checkpoint")
    assert loaded < len(cases) // 2


def test_refused_checkpoint_is_never_overwritten(run, tmp_path):
    """A sample of damaged checkpoints: train() refuses to start and leaves the bytes alone."""
    arch, params, config, data, _ = run
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 2, 40)
    path = tmp_path / "damaged.ckpt.npz"
    refused = 0
    for seed in fk.seeds(3, 60):
        damaged = fk.mutate_bytes(data, np.random.default_rng(seed))
        path.write_bytes(damaged)
        try:
            train(arch, params, X, y, TrainConfig(epochs=3, batch_size=20, optimizer="adam", lr=0.01),
                  checkpoint=path)
        except CheckpointError as e:
            refused += 1
            assert path.name in str(e) and "delete or move" in str(e), f"seed {seed}: {e}"
            assert path.read_bytes() == damaged, f"seed {seed}: refused checkpoint was rewritten"
    assert refused > 30
