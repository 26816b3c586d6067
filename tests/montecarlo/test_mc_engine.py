"""The Monte-Carlo engine against refnet.model.forward on the same draws, its shortcuts against
the straightforward path, the numba fallback, and the chunk seeding."""
import warnings

import numpy as np
import pytest
from scipy import stats

from refnet import _numba
from refnet import montecarlo as mc
from refnet.model import Architecture, forward, init_params, mlp
from refnet.noise import LayerNoise, NoiseConfig, NoiseSpec

ARCHS = {
    "2layer": Architecture((5, 4, 3), ("cubic", "identity")),
    "3layer": mlp((6, 5, 4, 3), "sigmoid", "identity"),
    "4layer": Architecture((6, 7, 5, 4, 2), ("shifted_sigmoid(alpha=4)", "sigmoid", "cubic",
                                             "identity")),
}
FULL = NoiseSpec(0.1, 0.2, 0.05, 0.03)
#: all four sources; correlated only (the row-sum shortcut's case); additive uncorrelated only
SPECS = (FULL, NoiseSpec(add_cor=0.2, mul_cor=0.05), NoiseSpec(add_unc=0.1))
LAYER_SETS = [(0,), (1,), (-2,), (-1,), (1, -2), (0, 1, 2, -1)]


def _net(name, seed=0):
    arch = ARCHS[name]
    return arch, init_params(arch, rng=seed)


def _run(engine, X, gen, keep=()):
    state = mc.clean_state(engine, X)
    draws = mc.draw_noise(engine, state, len(X), gen, keep)
    return mc.propagate(engine, state, np.arange(len(X)), draws, keep), draws


def _placements():
    """(network, noisy layers) with the layer sets that differ once resolved on that network
    (on the 2-layer net, -2 is layer 1: listed once)."""
    for name, arch in ARCHS.items():
        seen = set()
        for layers in LAYER_SETS:
            resolved = NoiseConfig(FULL, layers).resolved_layers(arch.n_layers)
            if resolved not in seen:
                seen.add(resolved)
                yield pytest.param(name, layers, id=f"{name}-{'.'.join(map(str, resolved))}")


def _check_same_draws(arch, p, cfg, backend):
    """The straightforward twin, and the exact (same-draws) shortcuts, equal ``forward`` on the
    draws they made, for every spec of :data:`SPECS`."""
    X = np.random.default_rng(1).normal(size=(9, arch.sizes[0]))
    for spec in SPECS:
        for short in ("none", ("clean_prefix", "row_sums")):
            eng = mc.prepare(arch, p, cfg.with_spec(spec), backend, short)
            (out, _), draws = _run(eng, X, np.random.default_rng(3))
            ref, _ = forward(arch, p, X, cfg.with_spec(spec), draws=draws)
            np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{spec}, shortcuts {short}")


@pytest.mark.parametrize("pos", ["pre", "post"])
@pytest.mark.parametrize("name, layers", list(_placements()))
def test_engine_equals_forward_on_same_draws(name, layers, pos):
    arch, p = _net(name)
    _check_same_draws(arch, p, NoiseConfig(FULL, layers, pos), "numba")


@pytest.mark.parametrize("backend", mc.BACKENDS)
def test_every_backend_equals_forward_on_same_draws(backend):
    """The kernels differ by backend only (each pinned to its twin in test_mc_kernels.py): one
    placement with every layer noisy, both positions."""
    arch, p = _net("4layer")
    for pos in ("pre", "post"):
        _check_same_draws(arch, p, NoiseConfig(FULL, (0, 1, 2, -1), pos), backend)


def test_numba_backends_fall_back_to_numpy_with_one_warning(monkeypatch):
    """Without numba (simulated here; a real run without it is in test_mc_sweep.py)."""
    monkeypatch.setattr(_numba, "HAVE_NUMBA", False)
    monkeypatch.setattr(_numba, "_warned", False)
    arch, p = _net("3layer")
    cfg = NoiseConfig(FULL, (1, 2))
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        assert mc.prepare(arch, p, cfg, "numba-parallel").backend == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mc.prepare(arch, p, cfg, "numba").backend == "numpy"   # said once only


def test_engine_reproduces_forward_random_stream_and_keeps_layers():
    arch, p = _net("3layer")
    cfg = NoiseConfig(FULL, (0, 1, 2, 3), "post")
    X = np.random.default_rng(1).normal(size=(9, 6))
    eng = mc.prepare(arch, p, cfg, "numba", "none")
    (out, kept), _ = _run(eng, X, np.random.default_rng(5), keep=(1, 2, 3))
    ref, cache = forward(arch, p, X, cfg, rng=np.random.default_rng(5))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    for l in (1, 2, 3):
        np.testing.assert_allclose(kept[l], cache.A[l], rtol=1e-12, atol=1e-12)


def test_float32_engine_close_to_float64():
    """Same draws (float64 draws rounded to float32): outputs agree to float32 precision."""
    arch, p = _net("3layer")
    cfg = NoiseConfig(FULL, (1, 2), "post")
    X = np.random.default_rng(1).normal(size=(9, 6))
    (o64, _), draws = _run(mc.prepare(arch, p, cfg, "numba", "none"), X, np.random.default_rng(3))
    e32 = mc.prepare(arch, p, cfg, "numba", "none", dtype=np.float32)
    d32 = tuple(None if d is None else
                LayerNoise(*(None if x is None else x.astype(np.float32)
                             for x in (d.add_unc, d.add_cor, d.mul_unc, d.mul_cor)))
                for d in draws)
    o32, _ = mc.propagate(e32, mc.clean_state(e32, X), np.arange(9), d32)
    assert o32.dtype == np.float32
    d = mc.draw_noise(e32, mc.clean_state(e32, X), 2, np.random.default_rng(0))
    assert d[1].add_unc.dtype == np.float32
    np.testing.assert_array_equal(   # float32 engines round the float64 stream
        d[1].add_unc, np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32))
    np.testing.assert_allclose(o32, o64, rtol=1e-5, atol=1e-5)


def test_narrow_draws_have_the_exact_gaussian_law():
    """Additive uncorrelated noise (variance s2) on the last hidden layer only, linear output:
    ``out - clean = W xi ~ N(0, s2 W W^T)``. Whitened deviations must be iid N(0, 1): mean,
    variance and pairwise products checked at 5 standard errors (false-positive rate about 6e-7
    per check, 9 checks; fixed seed). Run for the narrow path and, as a check of the oracle,
    the straightforward path."""
    arch, p = _net("3layer")
    s2, n = 0.3, 20000
    cfg = NoiseConfig(NoiseSpec(add_unc=s2), (2,), "post")
    X = np.repeat(np.random.default_rng(1).normal(size=(1, 6)), n, axis=0)
    clean = forward(arch, p, X[:1])[0]
    Lc = np.linalg.cholesky(s2 * p.W[2] @ p.W[2].T)
    for short in ("all", "none"):
        eng = mc.prepare(arch, p, cfg, "numba", short)
        assert (eng.narrow_layers() == {2}) == (short == "all")
        (out, _), _ = _run(eng, X, np.random.default_rng(9))
        E = np.linalg.solve(Lc, (out - clean).T).T     # (n, 3), should be iid N(0, 1)
        se = 1 / np.sqrt(n)
        assert np.all(np.abs(E.mean(axis=0)) <= 5 * se)
        assert np.all(np.abs((E ** 2).mean(axis=0) - 1) <= 5 * np.sqrt(2) * se)
        for i, j in ((0, 1), (0, 2), (1, 2)):
            assert abs(np.mean(E[:, i] * E[:, j])) <= 5 * se


@pytest.mark.parametrize("layers, position, narrow", [((1, 2), "post", {1, 2}),
                                                      ((0, 2), "pre", {0})])
def test_narrow_and_row_sum_shortcuts_equal_in_distribution_through_nonlinearity(
        layers, position, narrow):
    """Two-sample Kolmogorov-Smirnov test per output neuron, all shortcuts vs none, with
    additive and correlated multiplicative noise on a 6-5-4-3 sigmoid net: on both hidden
    layers after the activation (narrow draws 5 -> 4 and 4 -> 3, row sums at layer 1), or on
    the input (narrow draws 6 -> 5) and before layer 2's activation. Pass if every p-value >
    1e-4: false-positive rate <= 3 x 1e-4 per case; fixed seeds."""
    arch, p = _net("3layer")
    cfg = NoiseConfig(NoiseSpec(add_unc=0.2, add_cor=0.1, mul_cor=0.05), layers, position)
    X = np.repeat(np.random.default_rng(1).normal(size=(1, 6)), 20000, axis=0)
    fast = mc.prepare(arch, p, cfg, "numba", "all")
    assert fast.narrow_layers() == narrow
    (a, _), _ = _run(fast, X, np.random.default_rng(10))
    (b, _), _ = _run(mc.prepare(arch, p, cfg, "numba", "none"), X, np.random.default_rng(11))
    for j in range(3):
        assert stats.ks_2samp(a[:, j], b[:, j]).pvalue > 1e-4


def test_draw_shape_errors_name_the_argument():
    arch, p = _net("3layer")
    eng = mc.prepare(arch, p, NoiseConfig(FULL, (1,), "post"), "numba", "none")
    state = mc.clean_state(eng, np.zeros((2, 6)))
    with pytest.raises(ValueError, match="draws: layer 1 is noisy"):
        mc.propagate(eng, state, [0, 1], (None,) * 4)
    good = mc.draw_noise(eng, state, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="draws: layer 1 add_unc"):
        mc.propagate(eng, state, [0, 1], good)
    with pytest.raises(ValueError, match="idx"):
        mc.propagate(eng, state, [0, 2], good)
    with pytest.raises(ValueError, match="keep"):
        mc.propagate(eng, state, [0, 1], good, keep=(0,))
    with pytest.raises(ValueError, match="backend"):
        mc.prepare(arch, p, eng.config, "cuda")
    with pytest.raises(ValueError, match="shortcuts"):
        mc.prepare(arch, p, eng.config, "numba", ("fast",))


def test_chunk_generator_is_the_nested_spawn_child():
    """The docstring's claim: key (i, j) is child j of child i of SeedSequence(seed)."""
    direct = mc.chunk_generator(42, (3, 5)).standard_normal(4)
    nested = np.random.default_rng(np.random.SeedSequence(42).spawn(4)[3].spawn(6)[5])
    assert np.array_equal(direct, nested.standard_normal(4))
    assert mc.resolve_seed(7) == 7 and isinstance(mc.resolve_seed(None), int)
    with pytest.raises(TypeError, match="rng"):
        mc.resolve_seed("seven")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("layers", [(1, 2), (1, 2, 3), (0,)])
def test_count_correct_and_slices_equal_propagate_and_argmax(backend, layers):
    """``count_correct`` (fused output kernel when the output layer is clean; ``argmax`` when
    it is noisy) counts what ``propagate`` + ``argmax`` count on the same generator, and
    ``propagate`` over a slice of rows gives the bits of the same rows as an index array."""
    arch, p = _net("3layer")
    X = np.random.default_rng(1).normal(size=(30, 6))
    y = np.random.default_rng(2).integers(0, 3, size=30)
    for spec in SPECS:
        eng = mc.prepare(arch, p, NoiseConfig(spec, layers, "post"), backend)
        state = mc.clean_state(eng, X)
        rows = np.arange(7, 25)
        draws = mc.draw_noise(eng, state, len(rows), np.random.default_rng(5))
        out, _ = mc.propagate(eng, state, rows, draws)
        out_s, _ = mc.propagate(eng, state, slice(7, 25), draws)
        assert np.array_equal(out, out_s)
        want = int(np.count_nonzero(np.argmax(out, axis=1) == y[rows]))
        got = mc.count_correct(eng, state, slice(7, 25), y[rows], np.random.default_rng(5))
        assert got == want
        assert mc.count_correct(eng, state, slice(7, 25), np.argmax(out, axis=1),
                                np.random.default_rng(5)) == len(rows)
        # one workspace reused across chunks (other rows, then these): the same counts
        ws = mc.Workspace()
        mc.count_correct(eng, state, slice(0, 18), y[:18], np.random.default_rng(6), ws)
        assert mc.count_correct(eng, state, slice(7, 25), y[rows], np.random.default_rng(5),
                                ws) == want
    with pytest.raises(ValueError, match="step 1"):
        mc.propagate(eng, state, slice(0, 10, 2), draws)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("position", ["post", "pre"])
def test_clean_state_blocks_on_a_pool_give_the_same_bits(dtype, position):
    """The clean state is computed in blocks of CLEAN_BLOCK_ROWS rows: with a worker pool or
    without, the same bits (a row count that is not a multiple of the block, and one under
    it); and the values of the prefix through refnet.model.forward, to rounding."""
    from refnet.montecarlo.engine import CLEAN_BLOCK_ROWS

    arch = mlp((20, 9, 7, 3), "sigmoid", "identity")
    params = init_params(arch, rng=3)
    cfg = NoiseConfig(NoiseSpec(), (1, 2), position)
    eng = mc.prepare(arch, params, cfg, "numba", dtype=dtype).with_spec(NoiseSpec(add_cor=0.1))
    for n in (2 * CLEAN_BLOCK_ROWS + 17, CLEAN_BLOCK_ROWS - 1, 0):
        X = np.random.default_rng(n).standard_normal((n, 20))
        alone = mc.clean_state(eng, X)
        with mc.worker_pool(2, "numba") as pool:
            pooled = mc.clean_state(eng, X, pool=pool)
        for a, b in ((alone.P, pooled.P), (alone.U, pooled.U)):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == dtype and a.shape[0] == n
                np.testing.assert_array_equal(a, b)
        assert alone.kind == ("z" if position == "pre" else "a")
        z1 = X @ params.W[0].T + params.b[0]
        want = z1 if position == "pre" else 1 / (1 + np.exp(-z1))
        np.testing.assert_allclose(alone.P, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
        if alone.U is not None:
            np.testing.assert_allclose(alone.U, want @ params.W[1].T, rtol=1e-4, atol=1e-4)
