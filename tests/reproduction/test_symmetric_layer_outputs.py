"""The symmetric network's Monte-Carlo reports every layer's noisy output (Semenova 2022, Sec. III)."""
import numpy as np

from refnet.reproduction.semenova.symmetric import symmetric_state_moments
from refnet.propagation.symmetric import symmetric_network_moments


def test_every_layers_output_moments_match_gauss_hermite():
    """Layers 1..N (refnet 0..L) against the analytic per-layer output moments. K = 4000:
    variance s.e. sqrt(2/K) = 2.2 %, allow 5 s.e. (11 %); mean to 5 s.e. of the mean."""
    u = np.array([0.2, 0.5, 0.8])
    D = (1e-4, 0.0, 1e-3, 0.0)
    K = 4000
    mc = symmetric_state_moments(u, 4.0, 4, D, K, rng=4)
    gh = symmetric_network_moments(u, "shifted_sigmoid(alpha=4)", 4, 200, *D,
                                   method="gauss_hermite")
    assert mc["var_layer"].shape == mc["mean_layer"].shape == (4, 3)
    np.testing.assert_allclose(mc["var_layer"], gh["var_output"], rtol=0.11)
    assert np.all(np.abs(mc["mean_layer"] - gh["mean_output"])
                  <= 5 * np.sqrt(gh["var_output"] / K))
    np.testing.assert_array_equal(mc["var_layer"][-1], mc["var_output"])  # the last is y
