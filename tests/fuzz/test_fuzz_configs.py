"""Fuzzing the settings refnet reads from JSON (architecture and training configuration in
model files and checkpoints): a ConfigError naming the setting, or a correctly typed object;
never a KeyError/TypeError/RecursionError, never "no" read as true (issue #12)."""
import json
import math

import numpy as np
import pytest

import refnet as rn
from refnet.errors import ConfigError
from refnet.regularizers import ExpectedLoss, regularizer_preset
from refnet.train import TrainConfig

import fuzzkit as fk

N_CASES = 1500


def _same_as_read(obj, d) -> bool:
    """Every key given in ``d`` reads back unchanged from ``obj.as_dict()`` (no coercion such as
    2.7 -> 2 or "no" -> True); JSON-normalised, 1 == 1.0 as in JSON."""
    back = json.loads(json.dumps(obj.as_dict()))
    return all(_equal(back[k], v) for k, v in d.items())


def _equal(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b or (type(a) in (int, float) and type(b) in (int, float)
                                             and a == b)


def _arch_ok(a, d) -> bool:
    return (isinstance(a, rn.Architecture) and type(a.train_biases) is bool
            and all(type(s) is int and s >= 1 for s in a.sizes)
            and len(a.activations) == len(a.sizes) - 1
            and _same_as_read(a, {k: v for k, v in d.items() if k != "activations"}))


def _config_ok(c, d) -> bool:
    back = c.as_dict()
    return (type(back["epochs"]) is int and type(back["batch_size"]) is int
            and type(back["seed"]) is int and type(back["shuffle"]) is bool
            and type(back["lr"]) in (int, float) and math.isfinite(back["lr"]) and back["lr"] > 0
            and _same_as_read(c, d))


def _run(fn, ok, seed, failures, word):
    try:
        out = fn()
    except ConfigError as e:
        if word not in str(e):
            failures.append((seed, f"message does not name {word!r}: {e}"))
        return
    except Exception as e:  # noqa: BLE001 - what the fuzz test looks for
        failures.append((seed, f"unhandled {type(e).__name__}: {e!r}"[:300]))
        return
    if not ok(out):
        failures.append((seed, f"accepted a wrongly typed value: {out!r}"[:300]))


def test_fuzz_architecture_and_train_config_dicts():
    arch0 = rn.Architecture((784, 300, 10), ("shifted_sigmoid(alpha=4)", "identity"), False).as_dict()
    cfg0 = TrainConfig(epochs=3, optimizer="adam", lr=1e-3, optimizer_options=(("betas", (0.9, 0.99)),),
                       noise=rn.noise_config("duque", rn.NoiseSpec(0.1), 3),
                       regularizers=(regularizer_preset("eq4", 1e-3), regularizer_preset("eq7", 1e-3))
                       ).as_dict()
    cfg0 = json.loads(json.dumps(cfg0))
    expected = json.loads(json.dumps(TrainConfig(regularizers=(
        ExpectedLoss(rn.noise_config("duque", rn.NoiseSpec(add_unc=0.1, mul_cor=0.01), 3)),)
    ).as_dict()))
    failures = []
    cases = fk.seeds(6, N_CASES)
    for seed in cases:
        rng = np.random.default_rng(seed)
        arch0_m = arch0
        for _ in range(int(rng.integers(1, 4))):
            arch0_m = fk.mutate_json_value(arch0_m, rng)
        _run(lambda: rn.Architecture.from_dict(arch0_m), lambda a: _arch_ok(a, arch0_m), seed, failures, "architecture")
        cfg_m = cfg0 if seed % 3 else expected
        for _ in range(int(rng.integers(1, 4))):
            cfg_m = fk.mutate_json_value(cfg_m, rng)
        _run(lambda: TrainConfig.from_dict(cfg_m), lambda c: _config_ok(c, cfg_m), seed, failures, "config")
    assert not failures, fk.report(failures, 2 * len(cases), "config")


def test_hypothesis_arbitrary_json_objects():
    """Any JSON object at all: a clean ConfigError or a valid object (Hypothesis)."""
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies
    scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12)
    keys = st.sampled_from(["sizes", "activations", "train_biases", "epochs", "batch_size", "lr",
                            "optimizer", "loss", "noise", "shuffle", "seed", "regularizers",
                            "optimizer_options", "spec", "layers", "position", "kind", "x"])
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(keys, inner, max_size=4), max_leaves=12)
    failures = []

    @hyp.settings(max_examples=int(500 * fk.SCALE), derandomize=True, deadline=None)
    @hyp.given(st.dictionaries(keys, values, max_size=8))
    def check(d):
        _run(lambda: rn.Architecture.from_dict(d), lambda a: _arch_ok(a, d), -1, failures,
             "architecture")
        _run(lambda: TrainConfig.from_dict(d), lambda c: _config_ok(c, d), -1, failures, "config")

    check()
    assert not failures, fk.report(failures, 1000, "hypothesis config")
