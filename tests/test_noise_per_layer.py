"""Per-layer noise variances (``NoiseConfig.layer_specs``) in forward, backward, the Monte-Carlo
engine and the analytic sensitivity: each layer gets its own spec, nothing else changes."""
import numpy as np
import pytest

from refnet import montecarlo as mc
from refnet.activations import get_activation
from refnet.losses import cross_entropy
from refnet.model import backward, forward, init_params, mlp
from refnet.noise import NoiseConfig, NoiseSpec, apply_noise, draw_layer_noise
from refnet.propagation.sensitivity import output_variance_contributions
from refnet.testing import check_grad

ARCH = mlp((6, 5, 4, 3), "sigmoid", "identity")
S1 = NoiseSpec(0.1, 0.02, 0.05, 0.03)
S2 = NoiseSpec(add_unc=0.3, mul_cor=0.2)


def _cfg(pos="post"):
    return NoiseConfig(NoiseSpec(add_unc=0.01), (0, 1, 2), pos, {1: S1, -2: S2})


def test_config_resolution_serialisation_and_errors():
    cfg = _cfg()
    assert [cfg.spec_for(l, 3) for l in range(3)] == [NoiseSpec(add_unc=0.01), S1, S2]
    assert cfg.layer_specs == ((-2, S2), (1, S1))  # sorted, hashable
    assert NoiseConfig.from_dict(cfg.as_dict()) == cfg and hash(cfg)
    assert "layer_specs" not in NoiseConfig(S1, (1,)).as_dict()  # old files compare equal
    assert cfg.with_spec(S1).layer_specs == ()
    assert not NoiseConfig(NoiseSpec(), (1,), layer_specs={1: S1}).is_zero
    with pytest.raises(ValueError, match="layer_specs: layer 3 is not a noisy layer"):
        NoiseConfig(S1, (1,), layer_specs={3: S2}).resolved_layers(3)
    with pytest.raises(TypeError, match=r"layer_specs\[1\]: expected a NoiseSpec"):
        NoiseConfig(S1, (1,), layer_specs={1: 0.1})
    # -1 and 3 are one layer of a 3-layer net: spec_for took the first without a word
    with pytest.raises(ValueError, match="layers -1 and 3 are the same layer 3 of a network "
                                         "with 3 weight layers"):
        NoiseConfig(S1, (1, 3), layer_specs={3: S1, -1: S2}).resolved_layers(3)


@pytest.mark.parametrize("pos", ["pre", "post"])
def test_forward_applies_each_layers_own_variances(pos):
    """Against Eq. 3 written out layer by layer with the same draws."""
    p = init_params(ARCH, rng=0)
    X = np.random.default_rng(1).normal(size=(7, 6))
    cfg = _cfg(pos)
    rng = np.random.default_rng(2)
    specs = [cfg.spec_for(l, 3) for l in range(3)]
    draws = [draw_layer_noise(specs[l], 7, ARCH.sizes[l], rng) for l in range(3)] + [None]
    out, cache = forward(ARCH, p, X, cfg, draws=draws)
    a = apply_noise(X, specs[0], draws[0])
    for l in (1, 2, 3):
        z = a @ p.W[l - 1].T + p.b[l - 1]
        f = get_activation(ARCH.activations[l - 1]).f
        if l == 3:
            a = f(z)
        elif pos == "pre":
            a = f(apply_noise(z, specs[l], draws[l]))
        else:
            a = apply_noise(f(z), specs[l], draws[l])
    np.testing.assert_allclose(out, a, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("pos", ["pre", "post"])
def test_backward_is_the_gradient_with_per_layer_variances(pos):
    p = init_params(ARCH, rng=3)
    X = np.random.default_rng(4).normal(size=(5, 6))
    y = np.array([0, 1, 2, 1, 0])
    cfg = _cfg(pos)
    _, cache = forward(ARCH, p, X, cfg, rng=5)
    draws = list(cache.noise)

    def loss(arrays):
        from refnet.model import Params
        return cross_entropy(forward(ARCH, Params.from_arrays(arrays), X, cfg, draws=draws)[0], y)[0]

    out, cache = forward(ARCH, p, X, cfg, draws=draws)
    g = backward(ARCH, p, cache, cross_entropy(out, y)[1])
    check_grad(loss, p.arrays(), 0, g.arrays(), name="per-layer noisy loss")


@pytest.mark.parametrize("backend", mc.BACKENDS)
@pytest.mark.parametrize("pos", ["pre", "post"])
def test_engine_equals_forward_with_per_layer_variances(backend, pos):
    p = init_params(ARCH, rng=6)
    X = np.random.default_rng(7).normal(size=(9, 6))
    cfg = _cfg(pos)
    for short in ("none", ("clean_prefix", "row_sums")):
        eng = mc.prepare(ARCH, p, cfg, backend, short)
        state = mc.clean_state(eng, X)
        draws = mc.draw_noise(eng, state, 9, np.random.default_rng(8))
        out, _ = mc.propagate(eng, state, np.arange(9), draws)
        ref, _ = forward(ARCH, p, X, cfg, draws=draws)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_engine_shortcuts_per_layer_variance_matches_analytic_first_order():
    """All shortcuts (narrow draws on layer 1: 5 -> 4; row sums) with per-layer additive noise:
    the output variance of a nearly linear regime (small noise) agrees with the first-order
    sensitivity, which also honours layer_specs; the uniform spec gives less than half."""
    p = init_params(ARCH, rng=9)
    cfg = NoiseConfig(NoiseSpec(add_unc=1e-5), (1, 2), "post", {1: NoiseSpec(add_unc=1e-3)})
    x = np.random.default_rng(10).normal(size=(1, 6))
    eng = mc.prepare(ARCH, p, cfg, "numba", "all")
    assert 1 in eng.narrow_layers()
    X = np.repeat(x, 40000, axis=0)
    state = mc.clean_state(eng, X)
    out, _ = mc.propagate(eng, state, np.arange(len(X)), mc.draw_noise(eng, state, len(X), np.random.default_rng(11)))
    _, contrib, _, _ = output_variance_contributions(ARCH, p, x, cfg)
    predicted = contrib.sum(axis=(0, 1))[0]
    uniform = output_variance_contributions(ARCH, p, x, cfg.with_spec(NoiseSpec(add_unc=1e-5)))[1]
    assert np.all(uniform.sum(axis=(0, 1))[0] < 0.5 * predicted)
    var = out.var(axis=0, ddof=1)
    # sample variance of 40000 near-Gaussian draws: relative s.e. sqrt(2/n) = 0.7 %; 5 s.e.
    # plus 1 % for the first-order (linearisation) error at this noise level
    np.testing.assert_allclose(var, predicted, rtol=5 * np.sqrt(2 / len(X)) + 0.01)


def test_moment_propagation_honours_per_layer_variances():
    from refnet.propagation.moments import layer_moments

    p = init_params(ARCH, rng=12)
    X = np.random.default_rng(13).random((4, 6))
    spec = NoiseSpec(add_unc=0.01, mul_cor=0.02)
    uniform = NoiseConfig(spec, (1, 2), "post")
    spelled = NoiseConfig(NoiseSpec(), (1, 2), "post", {1: spec, 2: spec})
    a, b = layer_moments(ARCH, p, X, uniform), layer_moments(ARCH, p, X, spelled)
    for l in range(4):
        np.testing.assert_array_equal(a.variances[l], b.variances[l])
    own = layer_moments(ARCH, p, X, NoiseConfig(NoiseSpec(add_unc=0.01), (1, 2), "post",
                                                {1: NoiseSpec(add_unc=0.3)}))
    # layer 1 is the first noisy layer: its signal's variance is exactly its own add_unc
    np.testing.assert_allclose(own.variances[1], 0.3, rtol=1e-12)
    assert np.all(own.variances[2] > layer_moments(ARCH, p, X, NoiseConfig(
        NoiseSpec(add_unc=0.01), (1, 2), "post")).variances[2])
