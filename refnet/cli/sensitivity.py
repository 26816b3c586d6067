"""``refnet sensitivity``: analytic noise sensitivity of a saved model, with a Monte-Carlo check.

Prints, per noisy layer and noise type, the predicted (first-order) output variance, the
dominant layer and type, the output SNR and the accuracy under noise predicted from the output
moments, next to the same quantities measured by Monte-Carlo (``--mc-trials``).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ..errors import ConfigError
from ._common import (add_noise_preset, add_noise_type, check_rows, count, dataset_name,
                      enough_rows, existing_file, positive_int, read_npz_arrays, seed, variance,
                      variances_spec)


_DEFAULT_TYPE, _DEFAULT_VARIANCE = "add_unc", 0.01
_DEFAULT_N_INPUTS = 1000


def add_arguments(parser) -> None:
    parser.add_argument("model", type=existing_file("a model .npz written by refnet"),
                        help="model file written by refnet (refnet.io.save_model)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--inputs", type=existing_file("a .npz with an input array"),
                     help=".npz with an input array (n_batch, n_in) and optional labels")
    src.add_argument("--dataset", type=dataset_name,
                     help="test split of a named dataset (mnist, fashion-mnist, ...), "
                          "normalised as refnet's loaders do")
    # defaults None, not the names: so that a key given with --dataset, or a --y-key the
    # file lacks, is seen and refused rather than ignored
    parser.add_argument("--x-key", help="name of the input array in --inputs (default X)")
    parser.add_argument("--y-key", help="name of the label array in --inputs; if not given, "
                                        "labels are read from y when the file has it")
    # default None: a count the user asked for must be there, the default takes what is
    parser.add_argument("--n-inputs", type=positive_int,
                        help=f"use the first N inputs (default {_DEFAULT_N_INPUTS}, or all rows "
                             "of a shorter source)")
    add_noise_preset(parser)
    parser.add_argument("--position", default="post", choices=("post", "pre"))
    add_noise_type(parser, help=f"the noise source (default {_DEFAULT_TYPE})")
    parser.add_argument("--variance", type=variance,
                        help=f"noise VARIANCE of the chosen type, not a std (default "
                             f"{_DEFAULT_VARIANCE})")
    parser.add_argument("--spec", default=None,
                        help="several sources at once, e.g. 'add_unc=0.01,add_cor=0.01' "
                             "(VARIANCES); instead of --noise-type/--variance")
    parser.add_argument("--mc-trials", type=_mc_trials, default=300,
                        help=f"Monte-Carlo repeats per input: 0 (analytic only) or 2.."
                             f"{MAX_MC_TRIALS} (default 300)")
    parser.add_argument("--seed", type=seed, default=0)


#: Ceilings of the Monte-Carlo check: repeats per input, and bytes of its sampled outputs
#: (n_trials x inputs x outputs), checked before anything is drawn.
MAX_MC_TRIALS = 1_000_000
MAX_MC_BYTES = 1 << 30


def _mc_trials(text: str) -> int:
    n = count(text)
    if n == 1 or n > MAX_MC_TRIALS:
        raise argparse.ArgumentTypeError(
            f"give 0 (analytic only) or 2..{MAX_MC_TRIALS} repeats (a variance needs two), "
            f"got {n}")
    return n


def _noise_spec(args):
    from ..noise import NoiseSpec

    if args.spec is None:
        return NoiseSpec.single(args.noise_type or _DEFAULT_TYPE,
                                _DEFAULT_VARIANCE if args.variance is None else args.variance)
    if args.noise_type is not None or args.variance is not None:
        raise ConfigError("--spec replaces --noise-type/--variance; give one or the other")
    return variances_spec(args.spec, "--spec")


def _key_flags(args) -> dict:
    """The array names the user gave, each with its flag (its error leads with that flag)."""
    return {v: f for f, v in (("--x-key", args.x_key), ("--y-key", args.y_key)) if v}


def _n_inputs(args, rows: int, source: str, *, a_file: bool = True) -> int:
    """How many rows to use: ``--n-inputs`` (refused if ``source`` has fewer), or the default
    capped at ``rows``."""
    if args.n_inputs is None:
        return min(_DEFAULT_N_INPUTS, rows)
    enough_rows(args.n_inputs, rows, flag="--n-inputs", source=source, a_file=a_file)
    return args.n_inputs


def _inputs(args, arch):
    """``(X, y)``: the first ``--n-inputs`` rows, checked as the user's file numbers them
    (row width and labels against the model ``arch``)."""
    if args.dataset:
        from ..datasets import load_dataset

        given = [f for f, v in (("--x-key", args.x_key), ("--y-key", args.y_key)) if v]
        if given:  # they name arrays of an --inputs file; a named dataset has its own
            raise ConfigError(f"{'/'.join(given)}: name arrays of an --inputs file, not of "
                              "--dataset; leave them out or give --inputs")

        test = load_dataset(args.dataset, "test")
        n = _n_inputs(args, len(test.X), f"--dataset {args.dataset} (test split)", a_file=False)
        X, y = test.X[:n], test.y[:n]
        check_rows(X, y, "--dataset", f"{args.dataset} (test split)", n_features=arch.sizes[0],
                   n_classes=arch.sizes[-1], flat=False)
        return X, y
    x_key = args.x_key or "X"
    named = _key_flags(args)
    if args.y_key == x_key:  # one array as inputs and labels: refused here, not as bad rows
        raise ConfigError(f"--y-key: {x_key!r} names the input array too (--x-key"
                          f"{'' if args.x_key else ', its default'}); give the label array's "
                          "name, or leave --y-key out")
    if args.y_key:  # asked for: a file without it is an error (listing the arrays it has)
        z = read_npz_arrays(args.inputs, "--inputs", (x_key, args.y_key), named_by=named)
    else:           # labels are optional: y if the file has it (and it is not the inputs)
        z = read_npz_arrays(args.inputs, "--inputs", (x_key,), ("y",) * (x_key != "y"),
                            named_by=named)
    y_key = args.y_key or "y"
    X, y = z[x_key], z.get(y_key) if y_key != x_key else None
    check_rows(X, y, "--inputs", args.inputs, (x_key, y_key), n_features=arch.sizes[0],
               n_classes=arch.sizes[-1], flat=False)
    n = _n_inputs(args, len(X), f"--inputs {args.inputs}")
    if y is None:  # after the checks: a refused file gets its one line of error, no note
        why = "'y' is the input array here" if x_key == "y" else "no array 'y'"
        print(f"note: {args.inputs} has no labels ({why}), so no accuracy is reported; "
              "give --y-key NAME if they are stored under another name", file=sys.stderr)
    return X[:n], None if y is None else y[:n]


def run(args) -> int:
    from ..io import load_model
    from ..noise import NoiseConfig, noise_config
    from ..propagation.sensitivity_report import format_report, sensitivity_report

    spec = _noise_spec(args)
    arch, params, _ = load_model(args.model)
    X, y = _inputs(args, arch)
    X = X.reshape(len(X), -1).astype(params.dtype, copy=False)
    mc_bytes = args.mc_trials * len(X) * arch.sizes[-1] * params.dtype.itemsize
    if mc_bytes > MAX_MC_BYTES:
        raise ConfigError(f"--mc-trials {args.mc_trials}: the Monte-Carlo outputs of {len(X)} "
                          f"inputs x {arch.sizes[-1]} outputs would take {mc_bytes / 2**30:.3g} "
                          f"GiB, more than {MAX_MC_BYTES / 2**30:g} GiB; lower --mc-trials or "
                          "--n-inputs")
    cfg = noise_config(args.preset, spec, arch.n_layers)
    cfg = NoiseConfig(cfg.spec, cfg.layers, args.position)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked below
        report = sensitivity_report(arch, params, X, cfg, labels=y, n_trials=args.mc_trials,
                                    rng=args.seed)
    checked = [report.mc_variance, report.contributions, report.predicted_variance, report.predicted_flip]
    if not all(np.isfinite(a).all() for a in checked if a is not None):
        raise ConfigError(f"--variance/--spec: the noise variances {spec.as_dict()} overflow "
                          f"{params.dtype} arithmetic (the output variances come out inf or "
                          "NaN); give smaller variances")
    print(f"model {args.model}: sizes {list(arch.sizes)}, {len(X)} inputs, preset {args.preset}, "
          f"variances {spec.as_dict()} ({args.position}), seed {args.seed}")
    print(format_report(report))
    return 0
