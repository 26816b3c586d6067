"""``refnet crosscheck make|check|stat``: cross-check another framework against refnet.

* ``make MODEL -o BUNDLE``: one noisy batch with its noise draws and refnet's float64 answers
  (:mod:`refnet.crosscheck.bundle`). MODEL is a refnet model (``.npz``) or a PyTorch state
  dict (``.safetensors`` or ``.npz`` of tensors).
* ``check BUNDLE [--results FILE]``: the framework's ``result.*`` tensors against refnet's;
  a table of max abs and rel errors; exit 0 when all are within tolerance, 1 otherwise.
* ``stat BUNDLE --samples FILE``: the framework's own noisy outputs (K repeats x T inputs)
  against refnet's Monte-Carlo; exit 0 when consistent, 1 when they differ.

Bad input (files, settings): one line on stderr and exit 2 (the contract of
:mod:`refnet.cli`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import (activation, existing_file, int_between, nonnegative_float, open_fraction,
                      positive_float, seed, variances_spec)

#: The largest batch a bundle holds (its inputs, every layer's outputs and draws stay well
#: inside the 1 GiB a tensor file may hold for a 784-300-300-10 net).
MAX_BUNDLE_BATCH = 10_000
#: The batch of a bundle when --batch is not given.
DEFAULT_BUNDLE_BATCH = 32
#: The most repeats ``stat`` draws (the values are also capped by the library).
MAX_STAT_REPEATS = 100_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    m = sub.add_parser("make", help="write a check bundle of one noisy batch with refnet's answers")
    m.add_argument("model", type=existing_file("a refnet model or a PyTorch state dict"), help="refnet model .npz, or a PyTorch state dict "
                                            "(.safetensors or .npz of tensors)")
    m.add_argument("-o", "--out", type=Path, required=True, help="bundle file (.safetensors or .npz)")
    m.add_argument("--seed", type=seed, default=0, help="seed of the inputs (when synthetic) and "
                                                       "of the noise draws (default 0)")
    m.add_argument("--batch", type=int_between(1, MAX_BUNDLE_BATCH, "the bundle's batch size"),
                   help=f"batch size N (default {DEFAULT_BUNDLE_BATCH}, or all rows of a "
                        f"shorter --data; at most {MAX_BUNDLE_BATCH})")
    m.add_argument("--data", type=existing_file(".npz with arrays X and y"),
                   help=".npz with arrays X (n, n_in) and y (n,) in the model's classes: the "
                        "first N rows are used (default: inputs uniform in [0, 1) and random "
                        "labels from --seed)")
    _noise_arguments(m)
    m.add_argument("--lam", type=nonnegative_float, default=0.01,
                   help="lambda of eq4, eq4_code and eq7, which have no published value "
                        "(default 0.01); the eq7_code variants keep the authors' coefficients")
    m.add_argument("--lr", type=positive_float, default=0.1, help="SGD learning rate of the step (0.1)")
    m.add_argument("--step-regularizers", default="eq7",
                   help="regularizers added to the loss for the step, comma-separated, or "
                        "'none' (default eq7)")
    m.add_argument("--naming", default="sequential", choices=("sequential", "fc", "h"),
                   help="state-dict keys of the bundle's params (default sequential)")
    # defaults None, not the names: given with a model that records its activations, they
    # would have no effect, and are refused (see _load_model)
    m.add_argument("--hidden", type=activation,
                   help="hidden activation of a bare state dict (default sigmoid)")
    m.add_argument("--output", type=activation,
                   help="output activation of a bare state dict (default identity)")
    c = sub.add_parser("check", help="compare a framework's results with refnet's (exit 0/1)")
    c.add_argument("bundle", type=existing_file("a bundle of 'refnet crosscheck make'"))
    c.add_argument("--results", type=existing_file("the framework's results file"), help="a separate file of the framework's results "
                                                "(keys result.<name> or <name>)")
    c.add_argument("--dtype", choices=("float32", "float64"),
                   help="tolerances to apply (default: from each result's dtype)")
    c.add_argument("--strict", action="store_true",
                   help="a result not provided, or one matching no expected tensor, also fails")
    s = sub.add_parser("stat", help="compare a framework's noisy outputs with refnet's "
                                    "Monte-Carlo (exit 0 consistent, 1 differ)")
    s.add_argument("bundle", type=existing_file("a bundle of 'refnet crosscheck make'"), help="bundle with the weights and noise settings")
    s.add_argument("--samples", type=existing_file("the framework's samples file"), required=True,
                   help="file with samples.layer.<l> arrays (K, T, n_l) (or samples.output), "
                        "optional input (T, n_in) (default: the bundle's) and label (T,)")
    s.add_argument("--repeats", type=int_between(2, MAX_STAT_REPEATS, "refnet's repeats"),
                   help=f"refnet's repeats, 2..{MAX_STAT_REPEATS} (default: the framework's K)")
    s.add_argument("--seed", type=seed, default=0, help="refnet's Monte-Carlo seed (default 0)")
    s.add_argument("--alpha", type=open_fraction, default=0.01,
                   help="error rate of the verdict, between 0 and 1 (default 0.01)")
    s.add_argument("--method", choices=("holm", "bh"), default="holm",
                   help="multiple-testing control: holm (family-wise, default) or bh (FDR)")


def _noise_arguments(p) -> None:
    p.add_argument("--noise", default="duque", choices=("duque", "semenova", "none"),
                   help="noisy layers: duque = after each hidden activation (default)")
    p.add_argument("--layers", help="noisy layers, comma-separated (0 = input, -1 = output), "
                                    "instead of the preset's; e.g. 1,2,3 for every analog "
                                    "layer of a 784-300-300-10 net")
    p.add_argument("--position", choices=("post", "pre"),
                   help="noise on f(z) (post, the default) or on z (pre)")
    p.add_argument("--variances",
                   help="noise VARIANCES, e.g. 'add_unc=0.01,mul_cor=0.001' (default add_unc=0.01)")
    p.add_argument("--layer-variances", action="append", default=[], metavar="L:SPEC",
                   help="one layer's own variances, e.g. '1:add_unc=0.02' (repeatable)")


def _noise_config(args, L: int):
    from ..errors import ConfigError
    from ..noise import NoiseConfig, noise_config

    if args.noise == "none":
        given = [flag for flag, v in (("--layers", args.layers), ("--position", args.position),
                                      ("--variances", args.variances),
                                      ("--layer-variances", args.layer_variances)) if v]
        if given:
            raise ConfigError(f"{', '.join(given)}: no effect with --noise none (no layer is "
                              f"noisy); drop {'it' if len(given) == 1 else 'them'}, or choose "
                              "--noise duque or semenova")
    cfg = noise_config(args.noise, variances_spec(args.variances or "add_unc=0.01",
                                                  "--variances"), L)
    per, first = {}, {}
    for item in args.layer_variances:
        layer, _, text = item.partition(":")
        try:
            n = int(layer)
        except ValueError:
            raise ConfigError(f"--layer-variances: expected 'L:add_unc=0.02', got {item!r} "
                              f"(the layer {layer!r} is not an integer)") from None
        per[n] = variances_spec(text, f"--layer-variances {item!r}")
        if n in first:  # the dict kept the last one without a word
            raise ConfigError(f"--layer-variances: layer {n} given twice ({first[n]!r}, then "
                              f"{item!r}); give each layer once")
        first[n] = item
    layers = cfg.layers
    if args.layers:
        try:
            layers = tuple(int(v) for v in args.layers.split(","))
        except ValueError:
            raise ConfigError(f"--layers: expected integers like '1,2,3', got {args.layers!r}") from None
    cfg = NoiseConfig(cfg.spec, layers, args.position or "post", per)
    try:
        resolved = cfg.resolved_layers(L)
    except ValueError as e:
        raise ConfigError(f"--layers/--layer-variances: {e}") from None
    if len(resolved) != len(layers):
        raise ConfigError(f"--layers: {args.layers!r} names a layer twice (negative numbers "
                          f"count from the output: layers {list(resolved)}); give each once")
    return cfg


def _step_regularizers(text: str) -> tuple:
    """--step-regularizers: 'none' or distinct names of BUNDLE_REGULARIZERS."""
    from ..crosscheck import BUNDLE_REGULARIZERS
    from ..errors import ConfigError

    if text == "none":
        return ()
    names = tuple(r.strip() for r in text.split(","))
    bad = [r for r in names if r not in BUNDLE_REGULARIZERS]
    if bad or len(set(names)) != len(names):
        raise ConfigError(f"--step-regularizers: {text!r} " + (
            f"has unknown {bad}" if bad else "names a regularizer twice") +
            f"; give distinct names of {', '.join(BUNDLE_REGULARIZERS)}, or 'none'")
    return names


def _load_model(args):
    """``(arch, params)`` of the model: a refnet model, or a state dict (whose activations are
    ``--hidden``/``--output`` unless the file records refnet's architecture)."""
    from ..errors import ModelFileError
    from ..io import load_model
    from ..statedict import load_state_dict

    if args.model.suffix == ".npz":
        try:
            arch, params, _ = load_model(args.model)
        except (ModelFileError, ValueError) as e:
            if "not a refnet" not in str(e):
                raise
        else:
            _refuse_activations(args, "a refnet model")
            return arch, params
    arch, params, meta = load_state_dict(args.model, hidden=args.hidden or "sigmoid",
                                         output=args.output or "identity")
    if "architecture" in meta:  # load_state_dict took the activations from there
        _refuse_activations(args, "a state dict with refnet's architecture in its metadata")
    return arch, params


def _refuse_activations(args, what: str) -> None:
    """--hidden/--output name the activations of a bare state dict: given with a model that
    records its own, they were ignored without a word."""
    from ..errors import ConfigError

    given = [f for f, v in (("--hidden", args.hidden), ("--output", args.output)) if v is not None]
    if given:
        raise ConfigError(f"{'/'.join(given)}: no effect: {args.model} records its "
                          f"activations ({what}); leave out {'/'.join(given)}, which set "
                          "those of a bare PyTorch state dict")


def _make(args) -> int:
    import numpy as np

    from ..crosscheck import make_bundle, write_bundle
    from ..errors import ConfigError
    from ._common import check_rows, enough_rows, read_npz_arrays

    from ..statedict import STATE_DICT_SUFFIXES, check_destination

    if args.out.suffix not in STATE_DICT_SUFFIXES:  # before any work
        raise ConfigError(f"{args.out}: unknown bundle file type {args.out.suffix!r}; use "
                          f"{' or '.join(STATE_DICT_SUFFIXES)}")
    check_destination(args.out, "-o/--out", inputs={args.model: "model", args.data: "--data"})
    steps = _step_regularizers(args.step_regularizers)
    arch, params = _load_model(args)
    N = DEFAULT_BUNDLE_BATCH if args.batch is None else int(args.batch)
    if args.data is not None:
        data = read_npz_arrays(args.data, "--data", required=("X", "y"))
        check_rows(data["X"], data["y"], "--data", args.data, n_features=arch.sizes[0],
                   n_classes=arch.sizes[-1], flat=False)  # row numbers of the file
        rows = len(data["X"])
        if args.batch is not None:  # asked for N inputs: not fewer in silence
            enough_rows(N, rows, flag="--batch", source=f"--data {args.data}")
        N = min(N, rows)
        X, y = data["X"][:N], data["y"][:N]
        X = X.reshape(len(X), -1)
    else:
        g = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(1,)))
        X, y = g.random((N, arch.sizes[0])), g.integers(0, arch.sizes[-1], N)
    arrays, meta = make_bundle(arch, params, X, y, noise=_noise_config(args, arch.n_layers),
                               seed=args.seed, lam=args.lam, lr=args.lr,
                               step_regularizers=steps, naming=args.naming)
    meta["source_model"] = str(args.model)
    write_bundle(args.out, arrays, meta)
    n_exp = sum(k.startswith("expected.") for k in arrays)
    for name, why in meta["regularizers_skipped"].items():
        print(f"regularizer {name} left out: it {why}")
    print(f"{args.out}: bundle of {len(X)} inputs, {n_exp} expected tensors, noise "
          f"{meta['noise']['specs'] or 'none'} on layers {meta['noise']['layers']} "
          f"({meta['noise']['position']}); fill in result.<name> for each expected.<name>")
    return 0


def _check(args) -> int:
    from ..crosscheck import check_results, format_table, merge_results, read_bundle
    from ..errors import ModelFileError
    from ..statedict import load_tensors

    arrays, _ = read_bundle(args.bundle)
    if args.results is not None:
        arrays = merge_results(arrays, load_tensors(args.results)[0])
    rows = check_results(arrays, dtype=args.dtype, source=str(args.results or args.bundle))
    if all(r.status in ("missing", "unknown") for r in rows):
        unknown = [r.name for r in rows if r.status == "unknown"]
        raise ModelFileError(
            f"{args.results or args.bundle}: " + (
                f"no result matches an expected tensor (it has {', '.join(unknown[:3])}"
                f"{', ...' if len(unknown) > 3 else ''}; the expected names are those of the "
                f"bundle's expected.<name>, e.g. {rows[0].name})" if unknown else
                "no result.<name> tensors, nothing to check") +
            "; write the framework's answers into the bundle as result.<name> (or give "
            "--results FILE)")
    print(format_table(rows))
    bad = [r for r in rows if r.status == "FAIL"
           or (args.strict and r.status in ("missing", "unknown"))]
    return 1 if bad else 0


def _read_samples(path, L: int) -> tuple[dict, dict]:
    """The --samples file: ``({layer 0..L: array}, all its arrays)``; keys checked here."""
    from ..errors import DataError
    from ..statedict import load_tensors

    data, _ = load_tensors(path)
    samples = {}
    for key, v in data.items():
        if key == "samples.output":
            layer = L
        elif key.startswith("samples.layer."):
            try:
                layer = int(key[len("samples.layer."):])
            except ValueError:
                raise DataError(f"--samples: {path}: key {key!r} is not samples.layer.<l> with "
                                f"an integer layer l (0..{L}, or -1 for the output); rename "
                                "it") from None
            if not -(L + 1) <= layer <= L:
                raise DataError(f"--samples: {path}: key {key!r}: the network has no layer "
                                f"{layer} (layers 0..{L}, or -1 for the output)")
            layer = layer + L + 1 if layer < 0 else layer
        else:
            continue
        if layer in samples:
            raise DataError(f"--samples: {path}: layer {layer} is given twice (as "
                            "samples.layer.<l> under two numbers, or also as samples.output); "
                            "keep one")
        samples[layer] = v
    if not samples:
        raise DataError(f"--samples: {path}: no samples.layer.<l> or samples.output arrays")
    return samples, data


def _stat(args) -> int:
    from ..crosscheck import bundle_model, bundle_noise, compare_samples, format_report, read_bundle
    from ..errors import DataError
    from ..model import check_input
    from ..noise import NoiseConfig

    arrays, meta = read_bundle(args.bundle)  # checked: its input, labels and params are usable
    arch, params = bundle_model(arrays, meta, str(args.bundle))
    noise = bundle_noise(meta) or NoiseConfig()
    samples, data = _read_samples(args.samples, arch.n_layers)
    X, labels = arrays["input"], arrays["label"]
    try:
        if "input" in data:  # the framework's own inputs (and labels, if any) replace the bundle's
            X, labels = check_input(data["input"], arch.sizes[0], "input"), None
        labels = data.get("label", labels)
        res = compare_samples(arch, params, X, noise, samples, labels=labels, K_ref=args.repeats,
                              rng=args.seed, alpha=args.alpha, method=args.method)
    except (TypeError, ValueError) as e:  # what compare_samples says of the file's arrays
        raise DataError(f"--samples: {args.samples}: {e}") from None
    print(format_report(res))
    return 1 if res.rejected else 0


def run(args) -> int:
    return {"make": _make, "check": _check, "stat": _stat}[args.mode](args)
