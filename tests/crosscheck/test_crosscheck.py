"""refnet crosscheck: the bundle's contents, the check table and its tolerances, the statistical
mode's power and false-alarm rate, and the command line."""
import importlib.util
import re

import numpy as np
import pytest

import refnet as rn
from refnet.cli import main
from refnet.crosscheck import (TOLERANCES, bundle_draws, bundle_model, bundle_noise,
                               check_results, compare_samples, format_table, holm, make_bundle,
                               merge_results, read_bundle, write_bundle)
from refnet.errors import ConfigError, ModelFileError
from refnet.io import save_model
from refnet.model import forward
from refnet.montecarlo import layer_samples
from refnet.noise import NoiseConfig, NoiseSpec
from refnet.regularizers import regularizer_preset, regularizer_value

ARCH = rn.mlp((6, 8, 8, 3))
NOISE = NoiseConfig(NoiseSpec(add_unc=0.02, mul_cor=0.01), (1, 2), "post",
                    {2: NoiseSpec(add_unc=0.05, add_cor=0.01)})


@pytest.fixture
def bundle():
    p = rn.init_params(ARCH, rng=0)
    g = np.random.default_rng(1)
    X, y = g.random((12, 6)), g.integers(0, 3, 12)
    return p, make_bundle(ARCH, p, X, y, noise=NOISE, seed=5)


def _results_from_expected(arrays, dtype=np.float64):
    return {**arrays, **{"result." + k[9:]: v.astype(dtype) for k, v in arrays.items()
                         if k.startswith("expected.")}}


#: safetensors is an optional extra: the tests writing .safetensors bundles skip without it
needs_safetensors = pytest.mark.skipif(importlib.util.find_spec("safetensors") is None,
                                       reason="the optional package safetensors is not installed")


@needs_safetensors
def test_bundle_contents_agree_with_independent_paths(bundle, tmp_path):
    p, (arrays, meta) = bundle
    path = write_bundle(tmp_path / "b.safetensors", arrays, meta)
    arrays, meta = read_bundle(path)
    arch, q = bundle_model(arrays, meta)
    assert arch == ARCH and all(np.array_equal(a, b) for a, b in zip(q.arrays(), p.arrays()))
    assert bundle_noise(meta) == NOISE
    assert meta["noise"]["specs"]["2"]["add_cor"] == 0.01 and set(meta["regularizers"]) == {
        "eq4", "eq4_code", "eq7", "eq7_code", "eq7_code_sq"}
    assert meta["regularizers"]["eq4_code"]["lambdas"] == {"2": 0.01, "3": 0.3}  # factor 30
    draws = bundle_draws(arrays, meta)
    assert draws[0] is None and draws[2].add_cor.shape == (12, 1) and draws[2].mul_cor is None
    out, cache = forward(ARCH, p, arrays["input"], NOISE, draws=draws)
    for l in range(4):
        np.testing.assert_array_equal(arrays[f"expected.layer.{l}"], cache.A[l])
    for name, preset in (("eq4", "eq4"), ("eq7", "eq7"), ("eq7_code_sq", "addunc_sigm_sq")):
        reg = regularizer_preset(preset, 0.01 if name in ("eq4", "eq7") else None)
        assert float(arrays[f"expected.penalty.{name}"]) == pytest.approx(
            regularizer_value(ARCH, p, cache, reg), rel=1e-14)
    # the step: SGD on loss + eq7 (the default), written out here
    g = arrays["expected.grad.loss.0.weight"] + arrays["expected.grad.eq7.0.weight"]
    np.testing.assert_allclose(arrays["expected.step.0.weight"], p.W[0] - 0.1 * g, rtol=1e-15)


@pytest.mark.parametrize("drop, missing", [
    (("architecture",), "['architecture']"), (("param_keys",), "['param_keys']"),
    (("noise",), "['noise']"), (("noise", "layers"), "['noise']['layers']"),
    (("noise", "config"), "['noise']['config']")])
def test_bundle_readers_name_what_metadata_not_from_read_bundle_lacks(bundle, drop, missing):
    """bundle_model, bundle_noise and bundle_draws raised KeyError on metadata that did not
    come through read_bundle (written by hand, or a bundle's metadata edited)."""
    _, (arrays, meta) = bundle
    meta = {**meta, "noise": dict(meta["noise"])}
    (meta if len(drop) == 1 else meta[drop[0]]).pop(drop[-1])
    calls = {"architecture": [bundle_model, bundle_draws], "param_keys": [bundle_model],
             "noise": [bundle_noise, bundle_draws], "layers": [bundle_draws],
             "config": [bundle_noise]}[drop[-1]]
    for call in calls:
        args = (meta,) if call is bundle_noise else (arrays, meta)
        with pytest.raises(ConfigError, match=re.escape(f"{call.__name__}: the metadata lacks "
                                                        f"{missing}") + ".*read_bundle"):
            call(*args)


def test_check_passes_rounding_and_flags_real_errors(bundle):
    _, (arrays, _) = bundle
    rows = check_results(_results_from_expected(arrays))
    assert rows and all(r.status == "pass" and r.max_abs == 0 for r in rows)
    f32 = check_results(_results_from_expected(arrays, np.float32))
    assert all(r.status == "pass" and r.dtype == "float32" for r in f32)
    assert max(r.max_rel for r in f32) > 1e-9  # float32 rounding is visible ...
    assert any(r.status == "FAIL" for r in check_results(_results_from_expected(arrays, np.float32),
                                                         dtype="float64"))  # ... to float64 eyes
    bad = _results_from_expected(arrays)
    bad["result.grad.eq7.2.weight"] = bad["result.grad.eq7.2.weight"] * (1 + 1e-3)
    del bad["result.step.4.bias"]
    rows = {r.name: r for r in check_results(bad)}
    assert rows["grad.eq7.2.weight"].status == "FAIL"
    assert rows["grad.eq7.2.weight"].max_rel == pytest.approx(1e-3, rel=1e-6)
    assert rows["step.4.bias"].status == "missing" and rows["loss"].status == "pass"
    assert TOLERANCES["float32"][0] > TOLERANCES["float64"][0]


def test_holm_matches_the_definition():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # sorted 0.01, 0.03, 0.04, 0.2 -> 4*0.01, max(.04, 3*.03), max(.09, 2*.04), max(.09, .2)
    np.testing.assert_allclose(holm(p), [0.04, 0.09, 0.09, 0.2])


def _stat_case(scale, fw_seed, ref_seed, K=400, T=30):
    p = rn.init_params(ARCH, rng=3)
    X = np.random.default_rng(4).random((T, 6))
    labels = np.random.default_rng(5).integers(0, 3, T)
    fw_noise = NoiseConfig(NoiseSpec(add_unc=0.02 * scale), (1, 2), "post",
                           {2: NoiseSpec(add_unc=0.05 * scale)})
    ref_noise = NoiseConfig(NoiseSpec(add_unc=0.02), (1, 2), "post", {2: NoiseSpec(add_unc=0.05)})
    # the "framework": refnet's own forward pass with another generator (numpy's, not the engine's)
    Xk = np.tile(X, (K, 1))
    _, cache = forward(ARCH, p, Xk, fw_noise, rng=np.random.default_rng(fw_seed))
    samples = {l: cache.A[l].reshape(K, T, -1) for l in (1, 2, 3)}
    return compare_samples(ARCH, p, X, ref_noise, samples, labels=labels, rng=ref_seed)


def test_stat_flags_a_10_percent_variance_error():
    res = _stat_case(1.1, fw_seed=11, ref_seed=12)
    assert res.verdict == "differ"
    assert any("pooled variance ratio" in r for r in res.rejected)
    for c in res.layers.values():  # the ratio is measured, with a CI that excludes 1
        assert c.variance_ratio_ci[0] > 1.03 and c.variance_ratio_ci[0] < 1.1 < c.variance_ratio_ci[1] + 0.03


def test_stat_passes_the_correct_distribution_and_false_alarms_are_rare():
    """Holm at alpha = 0.01 bounds the false-alarm probability of one comparison by 1 %:
    over 6 seeded comparisons of equal distributions, no alarm is expected (P(>= 2) < 0.2 %)."""
    results = [_stat_case(1.0, fw_seed=20 + s, ref_seed=40 + s) for s in range(6)]
    alarms = sum(r.verdict == "differ" for r in results)
    assert alarms <= 1
    assert results[0].verdict == "consistent"
    # the pooled variance ratio's 95 % intervals cover the true 1: of 18 (6 seeds x 3 layers)
    # about 1 misses; 5 or more would happen with probability 0.2 % if the intervals were right
    misses = sum(not c.variance_ratio_ci[0] < 1.0 < c.variance_ratio_ci[1]
                 for r in results for c in r.layers.values())
    assert misses <= 4
    assert results[0].accuracy_se > 0 and abs(results[0].accuracy_diff) < 4 * results[0].accuracy_se


def test_layer_samples_are_the_engine_and_forward_draws():
    p = rn.init_params(ARCH, rng=3)
    X = np.random.default_rng(4).random((5, 6))
    S, seed = layer_samples(ARCH, p, X, NOISE, K=3, rng=8, layers=(0, 2, -1), repeat_block=3)
    assert seed == 8 and S[0].shape == (3, 5, 6) and S[3].shape == (3, 5, 3)
    np.testing.assert_array_equal(S[0][1], X)  # layer 0 is clean here
    from refnet.montecarlo import chunk_generator
    _, cache = forward(ARCH, p, np.tile(X, (3, 1)), NOISE, rng=chunk_generator(8, (0,)))
    np.testing.assert_allclose(S[2], cache.A[2].reshape(3, 5, -1), rtol=1e-12, atol=1e-12)


@needs_safetensors
def test_cli_make_check_stat_exit_codes(tmp_path, capsys):
    p = rn.init_params(ARCH, rng=0)
    save_model(tmp_path / "m.npz", ARCH, p)
    b = tmp_path / "b.npz"
    assert main(["crosscheck", "make", str(tmp_path / "m.npz"), "-o", str(b), "--batch", "8",
                 "--variances", "add_unc=0.02", "--layer-variances", "2:add_unc=0.05"]) == 0
    arrays, meta = read_bundle(b)
    assert arrays["input"].shape == (8, 6) and meta["noise"]["specs"]["2"]["add_unc"] == 0.05
    assert main(["crosscheck", "check", str(b)]) == 2  # nothing filled in: nothing to check
    write_bundle(tmp_path / "r.safetensors", {k[9:]: v.astype(np.float32) for k, v in arrays.items()
                                              if k.startswith("expected.")}, {})
    assert main(["crosscheck", "check", str(b), "--results", str(tmp_path / "r.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "grad.eq7_code.2.weight" in out and "52 tensors within tolerance, 0 outside" in out
    assert main(["crosscheck", "check", str(b), "--results", str(tmp_path / "r.safetensors"),
                 "--dtype", "float64"]) == 1
    # stat: the "framework" is refnet's forward with its own generator, K = 200, T = 8
    noise = bundle_noise(meta)
    _, cache = forward(ARCH, p, np.tile(arrays["input"], (200, 1)), noise, rng=1)
    write_bundle(tmp_path / "s.npz", {"samples.output": cache.A[3].reshape(200, 8, 3)}, {})
    assert main(["crosscheck", "stat", str(b), "--samples", str(tmp_path / "s.npz")]) == 0
    assert "verdict: consistent" in capsys.readouterr().out
    for argv in (["make", str(tmp_path / "m.npz"), "-o", str(tmp_path / "x.pt")],
                 ["make", str(tmp_path / "m.npz"), "-o", str(b), "--variances", "add_unc=-1"],
                 ["check", str(tmp_path / "m.npz")],
                 ["stat", str(b), "--samples", str(b)]):
        assert main(["crosscheck", *argv]) == 2
    err = capsys.readouterr().err
    assert "x.pt: unknown bundle file type" in err and "not a refnet cross-check bundle" in err
    assert "no samples.layer" in err and "--variances" in err


def test_cli_make_takes_a_short_data_file_whole_without_batch(tmp_path, capsys):
    """Without --batch a --data file of fewer rows than the default batch is used whole, its
    rows in order; an explicit --batch larger than the file is refused (exit 2, no bundle)."""
    from refnet.cli.crosscheck import DEFAULT_BUNDLE_BATCH

    save_model(tmp_path / "m.npz", ARCH, rn.init_params(ARCH, rng=0))
    g = np.random.default_rng(3)
    n = DEFAULT_BUNDLE_BATCH - 7
    X, y = g.random((n, 6)), g.integers(0, 3, n)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    b = tmp_path / "b.npz"
    assert main(["crosscheck", "make", str(tmp_path / "m.npz"), "-o", str(b), "--data",
                 str(tmp_path / "d.npz")]) == 0
    arrays, _ = read_bundle(b)
    np.testing.assert_array_equal(arrays["input"], X)
    np.testing.assert_array_equal(arrays["label"], y)
    b.unlink()
    assert main(["crosscheck", "make", str(tmp_path / "m.npz"), "-o", str(b), "--data",
                 str(tmp_path / "d.npz"), "--batch", str(n + 1)]) == 2
    assert f"has only {n} rows" in capsys.readouterr().err and not b.exists()


def test_cli_make_activation_flags_apply_to_a_bare_state_dict_only(tmp_path, capsys):
    """--hidden/--output were ignored in silence for a model that records its activations."""
    from refnet.statedict import save_state_dict, to_state_dict
    p = rn.init_params(ARCH, rng=0)
    np.savez(tmp_path / "bare.npz", **to_state_dict(ARCH, p))  # weights, no metadata
    b = tmp_path / "b.npz"
    assert main(["crosscheck", "make", str(tmp_path / "bare.npz"), "-o", str(b),
                 "--hidden", "cubic", "--output", "sigmoid"]) == 0
    assert bundle_model(*read_bundle(b))[0].activations == ("cubic", "cubic", "sigmoid")
    b.unlink()
    save_state_dict(tmp_path / "sd.npz", ARCH, p)  # records refnet's architecture
    assert main(["crosscheck", "make", str(tmp_path / "sd.npz"), "-o", str(b),
                 "--output", "sigmoid"]) == 2
    err = capsys.readouterr().err
    assert "--output: no effect: " in err and "refnet's architecture in its metadata" in err
    assert not b.exists()


@pytest.mark.parametrize("flag", ["--hidden", "--output"])
def test_cli_make_unknown_activation_names_its_flag_and_the_choices(flag, tmp_path, capsys):
    """It said "hidden/output: activation: unknown activation 'tanh'", naming neither flag."""
    from refnet.statedict import to_state_dict
    np.savez(tmp_path / "bare.npz", **to_state_dict(ARCH, rn.init_params(ARCH, rng=0)))
    b = tmp_path / "b.npz"
    assert main(["crosscheck", "make", str(tmp_path / "bare.npz"), "-o", str(b),
                 flag, "tanh"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and not b.exists()
    assert f"argument {flag}: unknown activation 'tanh'; known: 'sigmoid', " in err
    assert "'shifted_sigmoid(alpha=A)', 'cubic', 'identity'" in err


def test_cli_argument_errors_are_one_line(tmp_path, capsys):
    model = str(save_model(tmp_path / "m.npz", ARCH, rn.init_params(ARCH, rng=0)))
    for argv, text in ((["make", str(tmp_path / "absent.npz"), "-o", "b.npz"], "no such file"),
                       (["check", str(tmp_path)], "is a folder"),
                       (["stat", str(tmp_path / "x.npz")], "argument bundle: no such file"),
                       (["make", model, "-o", "b.npz", "--batch", "0"], "--batch: must be >= 1"),
                       # sizes before allocation: 1e11 rows asked for 570 TiB (a traceback)
                       (["make", model, "-o", "b.npz", "--batch", "100000000000"],
                        "--batch: must be <= 10000"),
                       # one repeat has no variance: NaN statistics gave "consistent"
                       (["stat", model, "--samples", model, "--repeats", "1"],
                        "--repeats: must be >= 2"),
                       (["stat", model, "--samples", model, "--repeats", "100000000000"],
                        "--repeats: must be <= 100000"),
                       # an error rate outside (0, 1) was blamed on --samples
                       (["stat", model, "--samples", model, "--alpha", "2"],
                        "--alpha: must lie strictly between 0 and 1, got '2'"),
                       (["stat", model, "--samples", model, "--alpha", "nan"],
                        "--alpha: must lie strictly between 0 and 1, got 'nan'"),
                       # a name too long: OSError from is_file, a traceback out of argparse
                       (["stat", model, "--samples", str(tmp_path / ("x" * 3000))],
                        "argument --samples: cannot be used (")):
        assert main(["crosscheck", *argv]) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and err[0].startswith(f"refnet crosscheck {argv[0]}: error: ")
        assert text in err[0] and len(err[0]) < 400


def test_compare_samples_refuses_one_repeat_and_oversized_references(bundle):
    p, (arrays, meta) = bundle
    X = arrays["input"]
    Y = np.random.default_rng(0).standard_normal((5, len(X), 8))
    with pytest.raises(ConfigError, match="repeats must be >= 2"):
        compare_samples(ARCH, p, X, NOISE, {1: Y}, K_ref=1)
    with pytest.raises(ConfigError, match="more than 134217728 values"):
        compare_samples(ARCH, p, X, NOISE, {1: Y}, K_ref=10**9)


def test_make_refuses_variances_a_bundle_cannot_record():
    """make wrote add_unc = 2e6, which check then refused ('write the bundle again')."""
    p = rn.init_params(ARCH, rng=0)
    X = np.random.default_rng(1).random((4, ARCH.sizes[0]))
    with pytest.raises(ConfigError, match="exceed the 1e\\+06 a bundle records"):
        make_bundle(ARCH, p, X, np.zeros(4, int), noise=NoiseConfig(NoiseSpec(add_unc=2e6), (1, 2), "post"),
                    seed=0)


def test_two_layer_net_leaves_out_the_code_variants_that_do_not_fit():
    """The authors' code variants name layers 2 and L: on a 2-layer net they coincide, so
    those regularizers are left out (and said so) rather than guessed."""
    arch = rn.mlp((5, 4, 3))
    p = rn.init_params(arch, rng=0)
    g = np.random.default_rng(1)
    arrays, meta = make_bundle(arch, p, g.random((4, 5)), g.integers(0, 3, 4), noise=None,
                               seed=0, step_regularizers=("eq4",))
    assert set(meta["regularizers"]) == {"eq4", "eq7"}
    assert set(meta["regularizers_skipped"]) == {"eq4_code", "eq7_code", "eq7_code_sq"}
    assert "expected.penalty.eq4_code" not in arrays and "expected.grad.eq7.0.weight" in arrays
    with pytest.raises(ValueError, match="step_regularizers: eq7_code does not fit 2 weight"):
        make_bundle(arch, p, g.random((4, 5)), g.integers(0, 3, 4), noise=None, seed=0,
                    step_regularizers=("eq7_code",))


# --- bad bundles, samples and flags: clear errors, never a verdict --------------------------

def _one_error_line(capsys, *texts):
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    for t in texts:
        assert t in err[0], err[0]
    return err[0]


def test_stat_refuses_non_finite_samples(bundle, tmp_path, capsys):
    """NaN samples made every p-value 1: 'consistent'. Now refused, in the library and the CLI."""
    p, (arrays, meta) = bundle
    X = arrays["input"]
    nan = np.full((5, len(X), 8), np.nan)
    with pytest.raises(ValueError, match="NaN or inf"):
        compare_samples(ARCH, p, X, NOISE, {1: nan})
    b = write_bundle(tmp_path / "b.npz", arrays, meta)
    s = write_bundle(tmp_path / "s.npz", {"samples.layer.1": nan}, {})
    assert main(["crosscheck", "stat", str(b), "--samples", str(s)]) == 2
    _one_error_line(capsys, "--samples", str(s), "NaN or inf")
    assert "verdict" not in capsys.readouterr().out


def _mutated(arrays, meta, case):
    arrays, meta = dict(arrays), dict(meta)
    if case.startswith("no ") and not case.endswith(" draws"):
        key = case[3:]
        (meta if key in meta else arrays).pop(key)
    elif case == "param_keys 5":
        meta["param_keys"] = 5
    elif case == "noise config bogus":
        meta["noise"] = {**meta["noise"], "config": {"bogus": 1}}
    elif case == "nan params":
        arrays["params.0.weight"] = np.full_like(arrays["params.0.weight"], np.nan)
    elif case == "nan input":
        arrays["input"] = np.full_like(arrays["input"], np.nan)
    elif case == "narrow input":
        arrays["input"] = arrays["input"][:, :5]
    elif case == "label 50":
        arrays["label"] = np.full_like(arrays["label"], 50)
    elif case == "specs edited":  # what make printed no longer says what the config does
        meta["noise"]["specs"]["1"]["add_unc"] = 0.5
    elif case == "position edited":
        meta["noise"]["position"] = "pre"
    elif case == "stray draws":   # a draw of a layer the noise does not reach
        arrays["noise.0.add_unc"] = np.zeros_like(arrays["input"])
    elif case.endswith(" draws"):   # the first noisy layer's first source
        key = sorted(k for k in arrays if k.startswith("noise."))[0]
        if case == "no draws":
            arrays.pop(key)
        elif case == "nan draws":
            arrays[key] = np.full_like(arrays[key], np.nan)
        else:
            arrays[key] = arrays[key][:-1]
    return arrays, meta


BAD_BUNDLES = [("no architecture", "lacks ['architecture']"), ("no param_keys", "param_keys"),
               ("no noise", "lacks ['noise']"), ("no input", "input"), ("no label", "label"),
               ("param_keys 5", "'param_keys' must be a JSON list"),
               ("noise config bogus", "'config'"), ("nan params", "non-finite"),
               ("nan input", "array 'input': contains NaN"),
               ("narrow input", "array 'input': expected shape"),
               ("label 50", "array 'label': labels must lie in 0..2"),
               ("no draws", "lacks the array 'noise."), ("nan draws", "holds NaN or inf"),
               ("short draws", "draws are floats of shape"),
               ("specs edited", "metadata 'noise' 'specs' {'1': {'add_cor': 0.0, 'add_unc': 0.5"),
               ("position edited", "metadata 'noise' 'position' pre does not match its 'config'"),
               ("stray draws", "arrays ['noise.0.add_unc'] are not draws of the bundle's noise")]


@pytest.mark.parametrize("case, message", BAD_BUNDLES)
def test_read_bundle_validates_what_check_and_stat_read(bundle, tmp_path, case, message):
    _, (arrays, meta) = bundle
    path = write_bundle(tmp_path / "b.npz", *_mutated(arrays, meta, case))
    with pytest.raises(ModelFileError, match=re.escape(message)) as e:
        read_bundle(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("sidecar", ["[1]", "7"])
def test_stat_on_broken_bundles_is_one_line_blaming_the_bundle(bundle, tmp_path, capsys, sidecar):
    p, (arrays, meta) = bundle
    good = write_bundle(tmp_path / "s.npz", {"samples.layer.1": np.zeros((3, 12, 8))}, {})
    b = write_bundle(tmp_path / "nan.npz", *_mutated(arrays, meta, "nan input"))
    assert main(["crosscheck", "stat", str(b), "--samples", str(good)]) == 2
    line = _one_error_line(capsys, str(b), "contains NaN")
    assert str(good) not in line
    b = write_bundle(tmp_path / "list.npz", arrays, meta)
    (tmp_path / "list.npz.json").write_text(sidecar)
    for mode in (["stat", str(b), "--samples", str(good)], ["check", str(b)]):
        assert main(["crosscheck", *mode]) == 2
        _one_error_line(capsys, str(b), "must be a JSON object")


def test_stat_checks_sample_keys_and_labels(bundle, tmp_path, capsys):
    p, (arrays, meta) = bundle
    b = write_bundle(tmp_path / "b.npz", arrays, meta)
    Y = np.zeros((3, 12, 8))
    cases = [({"samples.layer.x": Y}, "key 'samples.layer.x' is not samples.layer.<l>"),
             ({"samples.layer.1": Y, "input": arrays["input"], "label": np.full(12, 50)},
              "labels must lie in 0..2"),
             ({"samples.layer.2": Y, "samples.layer.-2": Y}, "layer 2 is given twice")]
    for data, message in cases:
        s = write_bundle(tmp_path / "s.npz", data, {})
        assert main(["crosscheck", "stat", str(b), "--samples", str(s)]) == 2
        _one_error_line(capsys, "--samples", str(s), message)
    with pytest.raises(ValueError, match="labels must lie"):
        compare_samples(ARCH, p, arrays["input"], NOISE, {3: np.zeros((3, 12, 3))},
                        labels=np.full(12, 50))


@pytest.mark.parametrize("cast, dtype", [(lambda a: a + 1j, "complex128"),
                                         # integers passed, judged at float64 tolerance
                                         (lambda a: np.round(a).astype(np.int64), "int64"),
                                         (lambda a: a > 0.5, "bool")])
def test_check_refuses_results_that_are_not_floating_point(bundle, tmp_path, capsys, cast,
                                                           dtype):
    _, (arrays, meta) = bundle
    bad = _results_from_expected(arrays)
    bad["result.layer.1"] = cast(bad["result.layer.1"])
    with pytest.raises(ModelFileError, match=f"result.layer.1 has dtype {dtype}; results must "
                                             "be floating point"):
        check_results(bad)
    b = write_bundle(tmp_path / "b.npz", arrays, meta)
    r = write_bundle(tmp_path / "r.npz", {"layer.1": cast(arrays["expected.layer.1"])}, {})
    assert main(["crosscheck", "check", str(b), "--results", str(r)]) == 2
    _one_error_line(capsys, str(r), dtype)


@pytest.mark.parametrize("flags, message", [
    (["--noise", "none", "--variances", "add_unc=0.5"],
     "--variances: no effect with --noise none (no layer is noisy); drop it,"),
    (["--noise", "none", "--layers", "1"], "--layers: no effect with --noise none"),
    (["--step-regularizers", "eq7,eq7"], "--step-regularizers: 'eq7,eq7' names a regularizer"),
    (["--layers", "1,1"], "--layers: '1,1' names a layer twice"),
    (["-o", "{tmp}/m.npz/b.npz"], "-o/--out: {tmp}/m.npz/b.npz lies under the file {tmp}/m.npz"),
    (["-o", "{tmp}/d.npz"], "-o/--out: {tmp}/d.npz is a folder"),
])
def test_make_refuses_ignored_or_repeated_flags(tmp_path, capsys, flags, message):
    model = str(save_model(tmp_path / "m.npz", ARCH, rn.init_params(ARCH, rng=0)))
    (tmp_path / "d.npz").mkdir()
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    out = [] if "-o" in flags else ["-o", str(tmp_path / "b.npz")]
    assert main(["crosscheck", "make", model, *out, "--batch", "4", *flags]) == 2
    _one_error_line(capsys, message.replace("{tmp}", str(tmp_path)))
    assert sorted(f.name for f in tmp_path.iterdir()) == ["d.npz", "m.npz"]
    with pytest.raises(ValueError, match="eq7 given twice"):
        make_bundle(ARCH, rn.init_params(ARCH, rng=0), np.zeros((2, 6)), np.zeros(2, int),
                    noise=None, seed=0, step_regularizers=("eq7", "eq7"))


def test_stat_compares_a_noiseless_layer_by_its_values_without_warnings():
    """Layer 0 (the input, before the first noisy layer) is the same in every repeat: no test
    can sample it (SciPy warned of catastrophic cancellation and the report showed variances of
    1e-31); its values are compared instead, and a framework that changes one of them differs."""
    import warnings

    p = rn.init_params(ARCH, rng=3)
    X = np.random.default_rng(4).random((10, 6))
    K = 60
    _, cache = forward(ARCH, p, np.tile(X, (K, 1)), NOISE, rng=np.random.default_rng(9))
    samples = {l: cache.A[l].reshape(K, 10, -1) for l in (0, 1, 3)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = compare_samples(ARCH, p, X, NOISE, samples, rng=1)
    assert res.verdict == "consistent"
    c = res.layers[0]
    assert not c.var_fw.any() and not c.var_ref.any() and (c.p_mean == 1).all()
    assert "layer 0: no noise on either side" in rn.crosscheck.format_report(res)
    samples[0] = samples[0].copy()
    samples[0][:, 2, 4] += 1e-3      # a framework that shifts one input value, in every repeat
    res = compare_samples(ARCH, p, X, NOISE, samples, rng=1)
    assert res.verdict == "differ" and res.rejected[0] == "layer 0 mean input 2 neuron 4"
    samples[0][:, 2, 4] -= 1e-3 - 1e-7   # float32 rounding of the value: still the same
    assert compare_samples(ARCH, p, X, NOISE, samples, rng=1).verdict == "consistent"


def test_stat_of_a_framework_without_noise_differs_without_warnings():
    """Outputs constant over the repeats where refnet's are noisy (a framework that drew no
    noise) made SciPy print "Precision loss occurred in moment calculation" on stderr."""
    import warnings

    p = rn.init_params(ARCH, rng=3)
    X = np.random.default_rng(4).random((10, 6))
    _, cache = forward(ARCH, p, X, None)
    samples = {3: np.broadcast_to(cache.A[3], (60, *cache.A[3].shape)).copy()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = compare_samples(ARCH, p, X, NOISE, samples, rng=1)
    assert res.verdict == "differ"


def test_check_reports_results_that_match_no_expected_tensor(bundle, tmp_path, capsys):
    """A misspelt or extra result name was ignored in silence (its tensor merely 'missing');
    it is now a row of status 'unknown', fails under --strict, and a results file whose names
    all miss is refused naming them."""
    p, (arrays, meta) = bundle
    good = {k[9:]: v for k, v in arrays.items() if k.startswith("expected.")}
    name = sorted(good)[0]
    rows = check_results(merge_results(arrays, {**good, "layer.99": np.zeros(2),
                                                "layr.1": np.zeros(3)}))
    unknown = [r for r in rows if r.status == "unknown"]
    assert [r.name for r in unknown] == ["layer.99", "layr.1"] and unknown[1].shape == (3,)
    assert all(r.status == "pass" for r in rows if r.status != "unknown")
    assert "2 results match no expected tensor" in format_table(rows)
    b = tmp_path / "b.npz"
    write_bundle(b, arrays, meta)
    write_bundle(tmp_path / "r.npz", {**good, "layr.1": np.zeros(3)}, {})
    assert main(["crosscheck", "check", str(b), "--results", str(tmp_path / "r.npz")]) == 0
    assert main(["crosscheck", "check", str(b), "--results", str(tmp_path / "r.npz"),
                 "--strict"]) == 1
    write_bundle(tmp_path / "typo.npz", {"x" + name: good[name]}, {})
    capsys.readouterr()
    assert main(["crosscheck", "check", str(b), "--results", str(tmp_path / "typo.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no result matches an expected tensor (it has x{name};" in err[0]
