"""``make``: a framework-neutral check bundle of one noisy batch, with refnet's float64 answers.

A bundle is one tensors-only file (``.safetensors`` or ``.npz``, :mod:`refnet.statedict`) plus
JSON metadata (in the safetensors header, or ``<file>.npz.json``). Keys:

========================================  ===========================  ==========================
key                                       shape                        meaning
========================================  ===========================  ==========================
``input``                                 (N, n_in)                    the batch X
``label``                                 (N,) int64                   class labels y
``params.<k>``                            state-dict layout            W (n_out, n_in), b (n_out,)
``noise.<l>.<type>``                      (N, n_l) or (N, 1)           standard normals xi of layer l
``expected.layer.<l>``                    (N, n_l), l = 0..L           noisy output A_l (0 = input)
``expected.loss``                         ()                           batch-mean cross-entropy
``expected.grad.loss.<k>``                as ``params.<k>``            its gradient
``expected.penalty.<r>``                  ()                           regularizer r's value
``expected.grad.<r>.<k>``                 as ``params.<k>``            its full gradient
``expected.step.<k>``                     as ``params.<k>``            params after one SGD step
========================================  ===========================  ==========================

``<k>`` is a PyTorch ``state_dict`` key (``0.weight`` ...), ``<type>`` one of ``add_unc,
add_cor, mul_unc, mul_cor`` (only those with nonzero variance). A framework applies, at each
noisy layer ``l`` with the variances ``v`` of ``metadata["noise"]["specs"][l]`` (Semenova 2022,
Eq. 3, p. 3; the contract of :mod:`refnet.noise`)::

    y = x * (1 + sqrt(v_mul_unc) xi_mul_unc) * (1 + sqrt(v_mul_cor) xi_mul_cor)
          + sqrt(v_add_unc) xi_add_unc + sqrt(v_add_cor) xi_add_cor

on ``f(z)`` (position ``post``) or on ``z`` (``pre``), and writes its answers under
``result.<same rest of key>`` (e.g. ``result.layer.2``); :mod:`refnet.crosscheck.check`
compares them. The regularizers (``metadata["regularizers"]``, layers 1..L resolved) are
(Duque 2024, Eq. 4, p. 3) as printed and with the authors' scaling, and (Duque 2024, Eq. 7,
p. 5) as printed (batch mean, f') and the authors' code variants (batch sum; f' or f'^2).
The step is plain SGD on loss + ``metadata["step"]["regularizers"]``: Adagrad's first step is
``lr sign(g)``, which would turn float32 rounding of a tiny gradient into a jump of ``2 lr``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ConfigError, ModelFileError
from ..losses import check_labels
from ..model import Architecture, Params, check_input, check_params
from ..noise import NOISE_TYPES, LayerNoise, NoiseConfig, draw_layer_noise
from ..npzfile import (WANT_LIST, WANT_OBJECT, BadContent, Want, check_fields, file_errors,
                       want_number, want_str)
from ..optim import SGD
from ..regularizers import RowSumPenalty, regularizer_preset, resolve_layer_lambdas
from ..statedict import from_state_dict, load_tensors, save_tensors, to_state_dict
from ..step import loss_and_grad

__all__ = ["BUNDLE_REGULARIZERS", "make_bundle", "write_bundle", "read_bundle", "bundle_draws",
           "bundle_model", "bundle_noise"]

#: The regularizers of a bundle: name -> preset of :func:`refnet.regularizers.regularizer_preset`.
#: Eq. 4 with the paper's and the authors' scaling; Eq. 7 as printed and the authors' two code
#: variants. A variant that does not fit the network (the code variants name layers 2 and L,
#: which coincide when L = 2) is left out and listed in ``metadata["regularizers_skipped"]``.
BUNDLE_REGULARIZERS = {"eq4": "eq4", "eq4_code": "custom_sum", "eq7": "eq7",
                       "eq7_code": "addunc_sigm_mnist", "eq7_code_sq": "addunc_sigm_sq"}
FORMAT = "refnet-crosscheck-bundle"


def _resolved_regularizer(reg, L: int) -> dict:
    """A regularizer spec with every layer number resolved to 1..L (no defaults to guess)."""
    def resolved(lambdas, name):
        return {str(l): v for l, v in resolve_layer_lambdas(lambdas, L, name).items()}

    if isinstance(reg, RowSumPenalty):
        return {"kind": "row_sum", "equation": "Duque 2024, Eq. 4",
                "lambdas": resolved(reg.lambdas, "lambdas")}
    return {"kind": "saturation", "equation": "Duque 2024, Eq. 7",
            "derivative_lambdas": resolved(reg.derivative_lambdas, "derivative_lambdas"),
            "weight_lambdas": resolved(reg.weight_lambdas, "weight_lambdas"),
            "reduction": reg.reduction, "power": reg.power}


def _noise_meta(noise: NoiseConfig | None, L: int) -> dict:
    if noise is None or noise.is_zero:
        return {"layers": [], "position": "post", "specs": {}, "config": None}
    layers = noise.resolved_layers(L)
    return {"layers": list(layers), "position": noise.position,
            "specs": {str(l): noise.spec_for(l, L).as_dict() for l in layers},
            "config": noise.as_dict()}


def make_bundle(arch: Architecture, params: Params, X, y, *, noise: NoiseConfig | None,
                seed: int, lam: float = 0.01, lr: float = 0.1,
                step_regularizers=("eq7",), naming="sequential") -> tuple[dict, dict]:
    """The bundle's arrays and metadata for batch ``X``, ``y`` (see the module docstring).

    Noise draws come from ``np.random.default_rng(seed)`` in :func:`refnet.model.forward`'s
    order. ``lam`` is the lambda of the presets without a published one (eq4, eq4_code, eq7);
    the code variants keep the authors' coefficients. One SGD step of rate ``lr`` on the loss
    plus ``step_regularizers`` (names of :data:`BUNDLE_REGULARIZERS`). Everything float64.
    """
    check_params(arch, params, finite=True)
    if noise is not None and not noise.is_zero:
        for l in noise.resolved_layers(arch.n_layers):
            big = {t: v for t, v in noise.spec_for(l, arch.n_layers).as_dict().items()
                   if v > MAX_BUNDLE_VARIANCE}
            if big:
                raise ConfigError(f"noise: layer {l}'s variances {big} exceed the "
                                  f"{MAX_BUNDLE_VARIANCE:g} a bundle records; choose smaller ones")
    params = params.astype(np.float64)
    X = check_input(X, arch.sizes[0]).astype(np.float64)
    y = check_labels(y, len(X), arch.sizes[-1]).astype(np.int64)
    L = arch.n_layers
    bad = [r for r in step_regularizers if r not in BUNDLE_REGULARIZERS]
    if bad:
        raise ConfigError(f"step_regularizers: unknown {bad}; known: {', '.join(BUNDLE_REGULARIZERS)}")
    twice = sorted({r for r in step_regularizers if list(step_regularizers).count(r) > 1})
    if twice:
        raise ConfigError(f"step_regularizers: {', '.join(twice)} given twice (each would be "
                          "added again); name each once")
    regs, resolved, skipped = {}, {}, {}
    for name, preset in BUNDLE_REGULARIZERS.items():
        reg = regularizer_preset(preset, lam if preset in ("eq4", "custom_sum", "eq7") else None)
        try:  # e.g. the code variants name layers 2 and L, which coincide when L = 2
            resolved[name] = _resolved_regularizer(reg, L)
        except ValueError as e:
            skipped[name] = f"does not fit {L} weight layers: {e}"
            continue
        regs[name] = reg
    unusable = [r for r in step_regularizers if r in skipped]
    if unusable:
        raise ConfigError(f"step_regularizers: {', '.join(unusable)} {skipped[unusable[0]]}; "
                          "choose others (or none) for the step")
    rng = np.random.default_rng(int(seed))
    noisy = () if noise is None or noise.is_zero else noise.resolved_layers(L)
    draws = [draw_layer_noise(noise.spec_for(l, L), len(X), arch.sizes[l], rng)
             if l in noisy else None for l in range(L + 1)]
    res = loss_and_grad(arch, params, X, y, noise=noise, draws=draws,
                        regularizers=tuple(regs.values()))
    keys = list(to_state_dict(arch, params, naming))

    def as_keys(prefix, p: Params):
        return {f"{prefix}.{k}": v for k, v in zip(keys, p.arrays())}

    arrays = {"input": X, "label": y}
    arrays.update(as_keys("params", params))
    for l, d in enumerate(draws):
        for t in NOISE_TYPES:
            if d is not None and getattr(d, t) is not None:
                arrays[f"noise.{l}.{t}"] = getattr(d, t)
    for l, a in enumerate(res.cache.A):
        arrays[f"expected.layer.{l}"] = a
    arrays["expected.loss"] = np.array(res.loss)
    arrays.update(as_keys("expected.grad.loss", res.loss_grads))
    for (name, _), v, g in zip(regs.items(), res.penalties, res.penalty_grads):
        arrays[f"expected.penalty.{name}"] = np.array(v)
        arrays.update(as_keys(f"expected.grad.{name}", g))
    step_grad = res.loss_grads
    for name in step_regularizers:
        g = res.penalty_grads[list(regs).index(name)]
        step_grad = Params.from_arrays([a + b for a, b in zip(step_grad.arrays(), g.arrays())])
    trainable = [True, arch.train_biases] * L
    new, _ = SGD(lr=lr).step(params.arrays(), step_grad.arrays(),
                             SGD(lr=lr).init(params.arrays()), trainable=trainable)
    arrays.update(as_keys("expected.step", Params.from_arrays(new)))
    meta = {"format": FORMAT, "refnet_version": __version__, "architecture": arch.as_dict(),
            "naming": naming if isinstance(naming, str) else list(naming), "param_keys": keys,
            "seed": int(seed), "dtype": "float64", "loss": "cross_entropy (batch mean)",
            "noise": _noise_meta(noise, L),
            "noise_equation": "y = x (1 + sqrt(v_mul_unc) xi)(1 + sqrt(v_mul_cor) xi) + "
                              "sqrt(v_add_unc) xi + sqrt(v_add_cor) xi (Semenova 2022, Eq. 3)",
            "regularizers": resolved, "regularizers_skipped": skipped,
            "regularizer_presets": dict(BUNDLE_REGULARIZERS), "lam": float(lam),
            "step": {"optimizer": "sgd", "lr": float(lr), "objective": "loss + regularizers",
                     "regularizers": list(step_regularizers),
                     "train_biases": arch.train_biases}}
    return arrays, meta


def write_bundle(path, arrays: dict, metadata: dict) -> Path:
    """Write a bundle (or a results file) atomically; ``.safetensors`` or ``.npz``."""
    return save_tensors(path, arrays, metadata)


_BUNDLE_FIX = "write the bundle again with 'refnet crosscheck make'"
_NOISE_META = {"layers": WANT_LIST, "position": want_str(choices=("pre", "post")),
               "specs": WANT_OBJECT,
               "config": Want("null or a JSON object", lambda v: v is None or isinstance(v, dict))}
_NOISE_CONFIG = {"spec": WANT_OBJECT, "layers": WANT_LIST,
                 "position": want_str(choices=("pre", "post")), "layer_specs": WANT_OBJECT}
#: The largest noise variance a bundle records (what ``make`` writes, ``check`` reads).
MAX_BUNDLE_VARIANCE = 1e6
_VARIANCES = {t: want_number(0, MAX_BUNDLE_VARIANCE) for t in NOISE_TYPES}


def read_bundle(path) -> tuple[dict, dict]:
    """``(arrays, metadata)`` of a bundle, validated: :class:`ModelFileError` naming the file if
    it is not one, or if what ``check`` and ``stat`` read from it is missing or invalid (the
    metadata's ``architecture``, ``param_keys`` and ``noise``; the arrays ``input``, ``label``,
    ``params.*`` and the noise draws, which must be finite and fit the architecture)."""
    arrays, meta = load_tensors(path, "a refnet cross-check bundle")
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a refnet cross-check bundle (metadata format "
                             f"{meta.get('format')!r}); write one with 'refnet crosscheck make'")
    with file_errors(path, ModelFileError, _BUNDLE_FIX):
        _check_bundle(arrays, meta, str(path))
    return arrays, meta


def _check_bundle(arrays: dict, meta: dict, source: str) -> None:
    """Raise ``BadContent`` (or a refnet error) if the bundle's contents are unusable."""
    check_fields(meta, {"architecture": WANT_OBJECT, "param_keys": WANT_LIST,
                        "noise": WANT_OBJECT}, "metadata",
                 required=("architecture", "param_keys", "noise"), extra=True)
    arch = Architecture.from_dict(meta["architecture"])
    keys, L = meta["param_keys"], arch.n_layers
    if (len(keys) != 2 * L or len(set(map(str, keys))) != len(keys)
            or not all(isinstance(k, str) and len(k) <= 256 for k in keys)):
        raise BadContent(f"metadata 'param_keys' must list {2 * L} distinct state-dict keys (W1, "
                         f"b1, ... of {L} weight layers), got {str(keys)[:80]}")
    noise = meta["noise"]
    check_fields(noise, _NOISE_META, "metadata 'noise'", required=tuple(_NOISE_META))
    cfg = noise["config"]
    if cfg is not None:
        check_fields(cfg, _NOISE_CONFIG, "metadata 'noise' 'config'",
                     required=("spec", "layers", "position"))
        for where, spec in [("spec", cfg["spec"])] + sorted(cfg.get("layer_specs", {}).items()):
            check_fields(spec, _VARIANCES, f"metadata 'noise' 'config' {where!r}")
        numbers = list(cfg["layers"]) + list(cfg.get("layer_specs", {}))
        if not all(type(l) is int or (isinstance(l, str) and l.lstrip("-").isdigit())
                   for l in numbers):
            raise BadContent("metadata 'noise' 'config': layers must be layer numbers, got "
                             f"{str(numbers)[:80]}")
        try:
            resolved = list(bundle_noise(meta).resolved_layers(L))
        except (TypeError, ValueError) as e:
            raise BadContent(f"metadata 'noise' 'config': {e}") from None
    else:
        resolved = []
    if noise["layers"] != resolved:
        raise BadContent(f"metadata 'noise' 'layers' {str(noise['layers'])[:80]} does not match "
                         f"its 'config' (noisy layers {resolved})")
    derived = _noise_meta(None if cfg is None else bundle_noise(meta), L)
    for key in ("position", "specs"):  # what make printed and a reader may show: the config's
        if noise[key] != derived[key]:
            raise BadContent(f"metadata 'noise' {key!r} {str(noise[key])[:80]} does not match "
                             f"its 'config' ({str(derived[key])[:80]})")
    missing = [k for k in ("input", "label") if k not in arrays]
    if missing:
        raise BadContent(f"lacks the arrays {missing} (the batch)")
    try:
        X = check_input(arrays["input"], arch.sizes[0], "array 'input'")
        check_labels(arrays["label"], len(X), arch.sizes[-1], "array 'label'")
    except (TypeError, ValueError) as e:
        raise BadContent(str(e)) from None
    bundle_model(arrays, meta, source)  # the params: present, shaped and finite
    _check_draws(arrays, None if cfg is None else bundle_noise(meta), arch, len(X))


def _check_draws(arrays: dict, noise: NoiseConfig | None, arch: Architecture, n: int) -> None:
    """The standard-normal draws ``noise.<l>.<type>`` of every noisy layer's sources with a
    nonzero variance: present, float, of :class:`~refnet.noise.LayerNoise`'s shapes, finite
    (:func:`bundle_draws` hands them to a framework's replay as they are); and no other
    ``noise.*`` array (a draw the noise does not use would be replayed by no one)."""
    L = arch.n_layers
    layers = () if noise is None else noise.resolved_layers(L)
    used = {f"noise.{l}.{t}" for l in layers for t in NOISE_TYPES
            if getattr(noise.spec_for(l, L), t)}
    stray = sorted(k for k in arrays if k.startswith("noise.") and k not in used)
    if stray:
        raise BadContent(f"arrays {stray[:3]} are not draws of the bundle's noise (its draws: "
                         f"{sorted(used)[:4] or 'none'}); remove them or fix the 'noise' metadata")
    for l in layers:
        spec = noise.spec_for(l, L)
        for t in NOISE_TYPES:
            if not getattr(spec, t):
                continue
            key, want = f"noise.{l}.{t}", (n, arch.sizes[l] if t.endswith("_unc") else 1)
            if key not in arrays:
                raise BadContent(f"lacks the array {key!r} (layer {l}'s {t} draws, {want})")
            a = arrays[key]
            if a.dtype.kind != "f" or a.shape != want:
                raise BadContent(f"array {key!r} is {a.dtype} {a.shape}; layer {l}'s {t} draws "
                                 f"are floats of shape {want}")
            if not np.all(np.isfinite(a)):
                raise BadContent(f"array {key!r} holds NaN or inf")


def _meta_field(meta, *keys: str, caller: str):
    """``meta[keys[0]][keys[1]]...``; metadata that did not come through :func:`read_bundle`
    (written by hand, edited) may lack it: a :class:`ConfigError` naming ``caller`` and the
    missing key, not a KeyError."""
    value = meta
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            where = "".join(f"[{k!r}]" for k in keys[:depth + 1])
            raise ConfigError(f"{caller}: the metadata lacks {where}; pass the metadata "
                              "read_bundle(path) returns (it reads and checks a bundle)")
        value = value[key]
    return value


def bundle_model(arrays: dict, meta: dict, source: str = "bundle") -> tuple[Architecture, Params]:
    """The network stored in a bundle (of :func:`read_bundle`: its metadata is checked there)."""
    arch = Architecture.from_dict(_meta_field(meta, "architecture", caller="bundle_model"))
    keys = _meta_field(meta, "param_keys", caller="bundle_model")
    state = {k: arrays[f"params.{k}"] for k in keys if f"params.{k}" in arrays}
    naming = {f"{'Wb'[i % 2]}{i // 2 + 1}": k for i, k in enumerate(keys)}
    return from_state_dict(state, arch, naming, source=source)


def bundle_noise(meta: dict) -> NoiseConfig | None:
    """The bundle's :class:`NoiseConfig` (``None`` for a clean bundle); of :func:`read_bundle`."""
    cfg = _meta_field(meta, "noise", "config", caller="bundle_noise")  # None: a clean bundle
    return None if cfg is None else NoiseConfig.from_dict(cfg)


def bundle_draws(arrays: dict, meta: dict) -> list:
    """The bundle's draws as one :class:`LayerNoise` (or ``None``) per layer 0..L."""
    L = len(_meta_field(meta, "architecture", "sizes", caller="bundle_draws")) - 1
    noisy = set(_meta_field(meta, "noise", "layers", caller="bundle_draws"))
    return [LayerNoise(**{t: arrays[f"noise.{l}.{t}"] for t in NOISE_TYPES
                          if f"noise.{l}.{t}" in arrays}) if l in noisy else None
            for l in range(L + 1)]
