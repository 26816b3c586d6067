"""The probabilistic-PCA Gram matrix of refnet.propagation.lowrank_cov and its total variation
bound, alone and inside the one-pass uncorrelated curve."""
import numpy as np
import pytest
from scipy.special import ndtr

from refnet.activations import get_activation
from refnet.propagation.lowrank_cov import (class_forms, class_projector,
                                            lowrank_kept_covariance, ppca_gram,
                                            total_variation_bound)
from refnet.propagation.moment_curve import uncorrelated_curve


def _trained_like(rng, n_out, n_in, k):
    """``k`` large singular directions on top of a small random rest, like a trained W2."""
    return (rng.normal(size=(n_out, k)) @ rng.normal(size=(k, n_in)) * 2.0
            + 0.3 * rng.normal(size=(n_out, n_in)))


def _direct(W, v2, d, y, S, s, gram):
    """The kept covariance and C_perp straight from the rows A = W3[y] - W3[k], B = A d."""
    A = W[y][:, None, :] - W[S]                                # (n, m, n2)
    B = A * d[:, None, :]
    P = np.eye(W.shape[1]) - gram.U_r @ gram.U_r.T
    Gr = (gram.U_r * gram.S_r ** 2) @ gram.U_r.T + gram.c * P
    cov = (A * v2[:, None, :]) @ A.transpose(0, 2, 1) + s * B @ Gr @ B.transpose(0, 2, 1)
    return cov, B @ P @ B.transpose(0, 2, 1)


@pytest.mark.parametrize("rank", [3, 12])
def test_kept_covariance_from_class_forms_is_the_direct_one(rank):
    """The K x K / K x r route gives the covariance formed from the m x n2 rows; at full rank
    it is the exact A diag(v2) A^T + s B W2 W2^T B^T."""
    rng = np.random.default_rng(31)
    K, n2, n1, n = 6, 12, 15, 40
    W2, W3 = rng.normal(size=(n2, n1)), rng.normal(size=(K, n2))
    v2, d = rng.uniform(0, 1, (n, n2)), rng.uniform(0, 0.25, (n, n2))
    y = rng.integers(0, K, n)
    S = np.array([np.sort(rng.choice([k for k in range(K) if k != c], 3, replace=False))
                  for c in y])
    gram = ppca_gram(W2, rank)
    R = (d @ class_projector(W3, gram.U_r)).reshape(n, K, -1)
    cov, C_perp = lowrank_kept_covariance(class_forms(v2, W3), class_forms(d * d, W3), R,
                                          0.7, gram, y, S)
    want, want_perp = _direct(W3, v2, d, y, S, 0.7, gram)
    np.testing.assert_allclose(cov, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(C_perp, want_perp, rtol=1e-9, atol=1e-10)
    if rank == 12:
        A = W3[y][:, None, :] - W3[S]
        B = A * d[:, None, :]
        exact = ((A * v2[:, None, :]) @ A.transpose(0, 2, 1)
                 + 0.7 * B @ W2 @ W2.T @ B.transpose(0, 2, 1))
        np.testing.assert_allclose(cov, exact, rtol=1e-10, atol=1e-10)
        assert gram.c == 0.0 and gram.eta == 0.0


def test_discarded_mean_and_spectral_norm():
    """c is the mean of the discarded eigenvalues of W W^T (zeros of a wide W's null space
    included) and eta the spectral norm of the exact minus the approximate Gram matrix."""
    rng = np.random.default_rng(32)
    W = _trained_like(rng, 10, 7, 2)                  # rank 7 < 10: three zero eigenvalues
    U, S, c, eta = ppca_gram(W, 3)
    lam = np.sort(np.linalg.eigvalsh(W @ W.T))[::-1]
    assert c == pytest.approx(lam[3:].mean(), rel=1e-10)
    Gr = (U * S * S) @ U.T + c * (np.eye(10) - U @ U.T)
    assert eta == pytest.approx(np.linalg.norm(W @ W.T - Gr, 2), rel=1e-9)


def _tv_1d(a, b):
    """Exact total variation distance between N(0, a) and N(0, b), a < b: the densities cross
    at +-x with x^2 = a b ln(b / a) / (b - a)."""
    x = np.sqrt(a * b * np.log(b / a) / (b - a))
    return 2.0 * (ndtr(x / np.sqrt(a)) - ndtr(x / np.sqrt(b)))


def test_bound_holds_against_the_exact_one_dimensional_distance():
    rng = np.random.default_rng(33)
    W = _trained_like(rng, 20, 25, 3)
    U, S, c, eta = ppca_gram(W, 3)
    B = rng.normal(size=(400, 1, 20)) * rng.uniform(0, 1, (400, 1, 20))
    s, base = 0.8, rng.uniform(0.05, 2.0, (400, 1, 1))
    P = np.eye(20) - U @ U.T
    C_perp = B @ P @ B.transpose(0, 2, 1)
    approx = base + s * (B @ ((U * S * S) @ U.T + c * P) @ B.transpose(0, 2, 1))
    exact = base + s * (B @ (W @ W.T) @ B.transpose(0, 2, 1))
    a, b = np.minimum(approx, exact).ravel(), np.maximum(approx, exact).ravel()
    tv = np.where(b > a, _tv_1d(a, np.where(b > a, b, 2 * a)), 0.0)
    bound = total_variation_bound(approx, C_perp, s, eta)
    assert np.all(tv <= bound + 1e-12)
    assert np.median(bound) < 1 and tv.max() > 1e-3     # informative, and a real change


@pytest.fixture(scope="module")
def blobs_net(make_blobs_net):
    return make_blobs_net(seed=21, d=16, k=4, n=1000, n_train=700, hidden=(24, 20),
                          scale=0.7, epochs=12)


def test_curve_with_a_low_rank_gram_within_its_bound(blobs_net):
    """Each input's probability moves by at most its total variation bound (plus the Sobol
    integration error on 2**12 points) when W2 W2^T is replaced by its rank-4 PPCA form."""
    arch, P, X, y = blobs_net
    a1 = get_activation(arch.activations[0]).f(X @ P.W[0].T + P.b[0])
    levels = np.array([1e-3, 0.1, 0.3, 1.0])
    exact, _ = uncorrelated_curve(arch, P, a1, y, "add_unc", levels, log2_points=12,
                                  gram_rank=None)
    low, info = uncorrelated_curve(arch, P, a1, y, "add_unc", levels, log2_points=12,
                                   gram_rank=4)
    gap = np.abs(low - exact).mean(axis=1)
    bound = np.array(info["lowrank_tv_bound"])
    assert np.all(gap <= bound + 2e-5)
    assert gap[-1] > 1e-6                                  # the replacement changed something
    mul, info = uncorrelated_curve(arch, P, a1, y, "mul_unc", levels, gram_rank=4)
    assert "lowrank_tv_bound" not in info                  # multiplicative: always exact
