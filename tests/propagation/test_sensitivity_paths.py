"""The variance-only path of the first-order sensitivity (Jacobian-vector products, the
triangular Gram factor) against the dense-Jacobian path, float64, small random networks."""
import numpy as np
import pytest

from refnet.model import Params, init_params, mlp
from refnet.noise import NOISE_TYPES, NoiseConfig, NoiseSpec
from refnet.propagation.sensitivity import _gram_factors, output_variance_contributions

# narrowing, widening and single-layer nets: the Gram factor is used only where n_l >= n_{l+1}
SIZES = [(5, 7, 4, 3), (6, 3, 8, 2), (4, 4)]
SPECS = [NoiseSpec.single(t, 0.1) for t in NOISE_TYPES] + [NoiseSpec(0.1, 0.2, 0.3, 0.4)]


def _net(sizes, seed=1):
    arch = mlp(sizes, "sigmoid", "cubic" if len(sizes) > 2 else "sigmoid")
    P = init_params(arch, "torch", rng=seed)
    return arch, Params(tuple(3 * w for w in P.W), P.b)


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("position", ["pre", "post"])
@pytest.mark.parametrize("spec", SPECS, ids=list(NOISE_TYPES) + ["all"])
def test_variance_path_matches_dense_jacobians(sizes, position, spec):
    arch, P = _net(sizes)
    X = np.random.default_rng(2).uniform(-1, 1, (9, sizes[0]))
    cfg = NoiseConfig(spec, tuple(range(arch.n_layers + 1)), position)
    mean, dense, cov, layers = output_variance_contributions(arch, P, X, cfg, chunk=4)
    mean_f, fast, none, layers_f = output_variance_contributions(arch, P, X, cfg,
                                                                covariance=False, chunk=4)
    assert none is None and layers_f == layers
    np.testing.assert_array_equal(mean_f, mean)
    assert np.all(dense[:, [t for t in range(4) if not getattr(spec, NOISE_TYPES[t])]] == 0)
    np.testing.assert_allclose(fast, dense, rtol=1e-12, atol=0)


def test_variance_path_per_layer_specs_and_chunks():
    """layer_specs give each layer its own terms; blocks of any size give the same result."""
    arch, P = _net((6, 8, 7, 4))
    X = np.random.default_rng(3).uniform(0, 1, (11, 6))
    cfg = NoiseConfig(NoiseSpec(add_unc=0.1), (0, 1, 2), "post",
                      layer_specs=((1, NoiseSpec(add_cor=0.2, mul_unc=0.05)),
                                   (2, NoiseSpec(add_unc=0.3, mul_cor=0.1))))
    _, dense, _, _ = output_variance_contributions(arch, P, X, cfg)
    for chunk in (1, 5, 256):
        _, fast, _, _ = output_variance_contributions(arch, P, X, cfg, covariance=False,
                                                      chunk=chunk)
        np.testing.assert_allclose(fast, dense, rtol=1e-12, atol=0)


def test_gram_factor_is_the_weight_gram_matrix():
    """R^T R = W W^T for the triangular factor of W_{l+1}^T, and only where it saves work."""
    arch, P = _net((6, 8, 7, 4))
    cfg = NoiseConfig(NoiseSpec(add_unc=0.1), (0, 1, 2, 3), "post")
    R = _gram_factors(arch, P, cfg)
    assert sorted(R) == [1, 2]  # W_1^T is 6 x 8 (n_0 < n_1): no factor; none at the output
    for l, r in R.items():
        assert np.allclose(np.tril(r, -1), 0)
        np.testing.assert_allclose(r.T @ r, P.W[l] @ P.W[l].T, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("position", ["pre", "post"])
def test_correlated_terms_equal_the_formed_jacobian_products(position):
    """Both paths take (G 1)^2 and (G x)^2 from forward-mode products (the multiplicative one
    starting from the clean pass's z - b): against G_l formed by output_jacobians. rtol 1e-9:
    G x cancels to ~1e-4 of its terms here, which two summation orders do not survive at 1e-12."""
    from refnet.activations import get_activation
    from refnet.model import forward
    from refnet.propagation.sensitivity import output_jacobians

    arch, P = _net((6, 8, 7, 4))
    X = np.random.default_rng(4).uniform(0, 1, (9, 6))
    cfg = NoiseConfig(NoiseSpec(add_cor=0.2, mul_cor=0.3), (0, 1, 2, 3), position)
    _, cache = forward(arch, P, X)
    jac = output_jacobians(arch, P, cache, 0)
    for covariance in (True, False):
        _, contrib, _, layers = output_variance_contributions(arch, P, X, cfg,
                                                              covariance=covariance)
        for k, l in enumerate(layers):
            G, x = jac[l], cache.A[l]
            if position == "pre" and l > 0:
                d = get_activation(arch.activations[l - 1]).d1(cache.Z[l - 1])
                G, x = G * d[:, None, :], cache.Z[l - 1]
            np.testing.assert_allclose(contrib[k, 1], 0.2 * G.sum(-1) ** 2, rtol=1e-9)
            np.testing.assert_allclose(contrib[k, 3], 0.3 * np.einsum("bij,bj->bi", G, x) ** 2,
                                       rtol=1e-9)


@pytest.mark.parametrize("sizes", [(5, 7, 4, 3), (6, 3, 8, 2), (9, 6, 5, 4, 3)])
@pytest.mark.parametrize("position", ["pre", "post"])
@pytest.mark.parametrize("spec", SPECS, ids=list(NOISE_TYPES) + ["all"])
def test_below_top_layer_kernel_matches_dense_jacobians(sizes, position, spec, monkeypatch):
    """Noise at layer L - 2 and above only (Duque's placement on a 3-layer net): layer
    L - 2's uncorrelated sums come from the block kernel (it is called exactly when they are
    asked for) and agree with the dense Jacobians to rounding."""
    from refnet.propagation import sensitivity

    calls = []
    kernel = sensitivity.below_top_sums_of_squares
    monkeypatch.setattr(sensitivity, "below_top_sums_of_squares",
                        lambda *a, **k: calls.append(k) or kernel(*a, **k))
    arch, P = _net(sizes)
    L = arch.n_layers
    X = np.random.default_rng(4).uniform(-1, 1, (21, sizes[0]))
    for layers in [(L - 2,), (L - 2, L - 1), (L - 2, L - 1, L)]:
        cfg = NoiseConfig(spec, layers, position)
        calls.clear()
        _, dense, _, _ = output_variance_contributions(arch, P, X, cfg, chunk=8)
        _, fast, _, _ = output_variance_contributions(arch, P, X, cfg, covariance=False, chunk=8)
        assert len(calls) == (3 if spec.add_unc or spec.mul_unc else 0)   # one per block
        np.testing.assert_allclose(fast, dense, rtol=1e-12, atol=0)


def test_gram_factor_is_kept_for_the_same_weights_only():
    """A weight matrix equal to a recent one gets the stored factor (read-only); a changed
    element, another dtype or another shape gets its own."""
    from refnet.propagation.sensitivity import _triangular_factor

    W = np.random.default_rng(5).standard_normal((4, 6))
    R = _triangular_factor(W)
    assert _triangular_factor(W.copy()) is R and not R.flags.writeable
    with pytest.raises(ValueError):
        R[0, 0] = 1.0
    W2 = W.copy()
    W2[3, 5] = np.nextafter(W2[3, 5], 1)
    R2 = _triangular_factor(W2)
    assert R2 is not R
    np.testing.assert_allclose(R2.T @ R2, W2 @ W2.T, rtol=1e-12, atol=1e-13)
    assert _triangular_factor(W.astype(np.float32)).dtype == np.float32
    assert _triangular_factor(W[:3]).shape == (3, 3)
    assert _triangular_factor(W) is R        # still kept after three others
