"""First-order sensitivity report vs Monte-Carlo. Fixed seeds; z = 5 (false-positive rate ~6e-7
per comparison); the first-order error is made negligible by small noise variances (1e-5)."""
import numpy as np
import pytest

from refnet.model import Params, init_params, mlp
from refnet.noise import NOISE_TYPES, NoiseConfig, NoiseSpec, noise_config
from refnet.montecarlo.reference import monte_carlo_outputs
from refnet.propagation.sensitivity import output_variance_contributions
from refnet.propagation.sensitivity_report import (format_report, gaussian_argmax_probabilities,
                                                   sensitivity_report)


def _net(seed=1, sizes=(6, 8, 7, 4)):
    arch = mlp(sizes, "sigmoid", "identity")
    P = init_params(arch, "torch", rng=seed)
    return arch, Params(tuple(3 * w for w in P.W), P.b)


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
@pytest.mark.parametrize("preset,position", [("duque", "post"), ("semenova", "post"),
                                             ("semenova", "pre")])
def test_contributions_match_mc(noise_type, preset, position):
    arch, P = _net()
    X = np.random.default_rng(2).uniform(0, 1, (3, 6))
    base = noise_config(preset, NoiseSpec.single(noise_type, 1e-5), 3)
    cfg = NoiseConfig(base.spec, base.layers, position)
    _, contrib, cov, layers = output_variance_contributions(arch, P, X, cfg)
    assert np.all(contrib[:, [t for t in range(4) if NOISE_TYPES[t] != noise_type]] == 0)
    np.testing.assert_allclose(contrib.sum((0, 1)), np.einsum("bkk->bk", cov), rtol=1e-12)
    _, c_fast, none, _ = output_variance_contributions(arch, P, X, cfg, covariance=False)
    assert none is None
    np.testing.assert_allclose(c_fast, contrib, rtol=1e-12, atol=1e-30)
    Y = monte_carlo_outputs(arch, P, X, cfg, 20_000, rng=3)
    d = Y - Y.mean(0)
    n = Y.shape[0]
    var, se = Y.var(0, ddof=1), np.sqrt(((d ** 4).mean(0) - (d ** 2).mean(0) ** 2) / n)
    assert np.all(np.abs(var - contrib.sum((0, 1))) <= 5 * se)
    # off-diagonal covariance too (correlated noise makes outputs co-vary)
    c01 = (d[..., 0] * d[..., 1]).mean(0)
    se01 = (d[..., 0] * d[..., 1]).std(0) / np.sqrt(n)
    assert np.all(np.abs(c01 - cov[:, 0, 1]) <= 5 * se01)


def test_correlated_contribution_vanishes_with_zero_row_sums():
    arch, P = _net()
    W2 = P.W[1] - P.W[1].mean(axis=1, keepdims=True)  # Duque 2024, Eq. 3: rows sum to zero
    P0 = Params((P.W[0], W2, P.W[2]), P.b)
    X = np.random.default_rng(4).uniform(0, 1, (5, 6))
    cfg = noise_config("duque", NoiseSpec(add_cor=0.1, add_unc=0.1), 3)
    _, contrib, _, layers = output_variance_contributions(arch, P0, X, cfg)
    assert layers == (1, 2)
    assert np.max(np.abs(contrib[0, 1])) < 1e-25 and np.min(contrib[0, 0]) > 0
    _, c_full, _, _ = output_variance_contributions(arch, P, X, cfg)
    assert np.min(c_full[0, 1]) > 0


def test_zero_noise_zero_variance_and_linear_in_variance():
    arch, P = _net()
    X = np.random.default_rng(5).uniform(0, 1, (4, 6))
    _, c0, cov0, _ = output_variance_contributions(arch, P, X, noise_config("semenova", NoiseSpec(), 3))
    assert c0.size == 0 and np.all(cov0 == 0)
    _, c1, _, _ = output_variance_contributions(arch, P, X, noise_config("semenova", NoiseSpec(add_unc=1e-3), 3))
    _, c2, _, _ = output_variance_contributions(arch, P, X, noise_config("semenova", NoiseSpec(add_unc=3e-3), 3))
    np.testing.assert_allclose(c2, 3 * c1, rtol=1e-12)


def test_flip_probability_matches_mc():
    """Gaussian approximation of the argmax flip rate at moderate noise; both estimates are
    sampled (2000 draws, 2000 trials x 150 inputs): binomial se ~ 1e-3, tolerance 0.01."""
    arch, P = _net(sizes=(20, 30, 30, 5))
    X = np.random.default_rng(6).uniform(0, 1, (150, 20))
    r = sensitivity_report(arch, P, X, noise_config("duque", NoiseSpec(add_unc=0.1), 3),
                           n_trials=2000, rng=7)
    assert r.mc_flip > 0.01
    assert abs(r.predicted_flip - r.mc_flip) < 0.01


def test_report_prints(capsys):
    arch, P = _net()
    X = np.random.default_rng(8).uniform(0, 1, (20, 6))
    y = np.random.default_rng(9).integers(0, 4, 20)
    r = sensitivity_report(arch, P, X, noise_config("semenova", NoiseSpec(mul_cor=1e-3), 3),
                           labels=y, n_trials=50, rng=1)
    text = format_report(r)
    assert "dominant: layer" in text and "Monte-Carlo" in text and "accuracy clean" in text
    assert r.dominant[1] == "mul_cor"


def test_gaussian_argmax_probabilities_match_sampling():
    """The deterministic orthant integrals agree with many Gaussian draws (within 4 standard
    errors), for flips and for the label, on inputs where both are far from 0 and 1."""
    rng = np.random.default_rng(3)
    n, K = 20, 5
    mean = rng.normal(scale=0.7, size=(n, K))
    A = rng.normal(size=(n, K, K))
    cov = A @ A.transpose(0, 2, 1) / K
    labels = rng.integers(0, K, n)
    flip, correct = gaussian_argmax_probabilities(mean, cov, labels)
    draws = 200_000
    root = np.linalg.cholesky(cov).transpose(0, 2, 1)
    Y = mean[:, None, :] + rng.standard_normal((n, draws, K)) @ root
    arg = Y.argmax(-1)
    for got, hit in ((flip, arg != mean.argmax(-1)[:, None]), (correct, arg == labels[:, None])):
        p = hit.mean(-1)
        se = np.sqrt(p * (1 - p) / draws) + 1e-4
        assert np.all(np.abs(got - p) <= 4 * se), np.abs(got - p).max()
    assert 0.1 < flip.mean() < 0.9        # the case is not degenerate


def test_gaussian_argmax_singular_covariance():
    mean = np.array([[1.0, 0.0]])
    cov = np.array([[[0.0, 0.0], [0.0, 0.0]]])
    flip, correct = gaussian_argmax_probabilities(mean, cov, np.array([0]))
    assert flip[0] == 0 and correct[0] == 1


def test_cli_command_end_to_end(tmp_path, capsys):
    import argparse

    from refnet import io
    from refnet.cli import sensitivity as cmd
    arch, P = _net()
    io.save_model(tmp_path / "m.npz", arch, P)
    rng = np.random.default_rng(10)
    np.savez(tmp_path / "x.npz", X=rng.uniform(0, 1, (10, 6)), y=rng.integers(0, 4, 10))
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "m.npz"), "--inputs", str(tmp_path / "x.npz"),
                              "--mc-trials", "20", "--variance", "0.001"])
    assert cmd.run(args) == 0
    assert "dominant: layer" in capsys.readouterr().out


def _first_order_fingerprints() -> dict:
    """Hashes of the first-order outputs (both paths, all four noise types, both dtypes) of a
    784-300-300-10 net on 300 inputs: shapes at which the products are split in blocks."""
    import hashlib

    arch = mlp((784, 300, 300, 10), "sigmoid", "identity")
    X = np.random.default_rng(3).random((300, 784))
    out = {}
    for dt in (np.float32, np.float64):
        P = init_params(arch, "torch", rng=4).astype(dt)
        for t in NOISE_TYPES:
            cfg = noise_config("duque", NoiseSpec.single(t, 1e-2), 3)
            for cov in (True, False):
                h = hashlib.sha256()
                for a in output_variance_contributions(arch, P, X.astype(dt), cfg,
                                                       covariance=cov)[:3]:
                    if a is not None:
                        h.update(np.ascontiguousarray(a).tobytes())
                out[f"{t}/{cov}/{np.dtype(dt).name}"] = h.hexdigest()
    return out


@pytest.mark.slow
def test_first_order_bits_do_not_depend_on_blas_or_numba_threads():
    """The same bits on 1 and 2 BLAS and numba threads (child processes) and in this process
    after whatever ran before: every product in refnet._gemm's fixed blocks."""
    import os

    from refnet._blas import blas_controlled
    from refnet.testing import call_in_child

    if not blas_controlled():
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose thread count refnet can set")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: 1 and 2 threads cannot be told apart")
    runs = {(b, n): call_in_child(__file__, "_first_order_fingerprints", env={
        "OPENBLAS_NUM_THREADS": b, "OMP_NUM_THREADS": b, "NUMBA_NUM_THREADS": n})
        for b, n in ((1, 1), (2, 2), (2, 1))}
    first = runs[(1, 1)]
    assert len(first) == 16
    for key, fp in runs.items():
        assert fp == first, f"OPENBLAS/NUMBA threads {key} changed the first-order bits"
    assert _first_order_fingerprints() == first


def test_report_names_stay_importable_from_the_first_order_module():
    """The report moved to sensitivity_report; code that imported it from sensitivity works."""
    import refnet.propagation.sensitivity as first_order
    import refnet.propagation.sensitivity_report as report

    for name in ("sensitivity_report", "format_report", "gaussian_argmax_probabilities",
                 "SensitivityReport"):
        assert getattr(first_order, name) is getattr(report, name)
