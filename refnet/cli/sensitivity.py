"""``refnet sensitivity``: analytic noise sensitivity of a saved model, with a Monte-Carlo check.

Prints, per noisy layer and noise type, the predicted (first-order) output variance, the
dominant layer and type, the output SNR and the accuracy under noise predicted from the output
moments, next to the same quantities measured by Monte-Carlo (``--mc-trials``).
"""
from __future__ import annotations

from ..errors import ConfigError
from ._common import (add_noise_preset, add_noise_type, check_rows, count, dataset_name,
                      existing_file, positive_int, read_npz_arrays, seed, variance)

HELP = "analytic noise sensitivity report of a saved model, with its Monte-Carlo check"

_DEFAULT_TYPE, _DEFAULT_VARIANCE = "add_unc", 0.01


def add_arguments(parser) -> None:
    parser.add_argument("model", type=existing_file("a model .npz written by refnet"),
                        help="model file written by refnet (refnet.io.save_model)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--inputs", type=existing_file("a .npz with an input array"),
                     help=".npz with an input array (n_batch, n_in) and optional labels")
    src.add_argument("--dataset", type=dataset_name,
                     help="test split of a named dataset (mnist, fashion-mnist, ...), "
                          "normalised as refnet's loaders do")
    parser.add_argument("--x-key", default="X", help="name of the input array in --inputs")
    parser.add_argument("--y-key", default="y", help="name of the label array (optional)")
    parser.add_argument("--n-inputs", type=positive_int, default=1000,
                        help="use the first N inputs")
    add_noise_preset(parser)
    parser.add_argument("--position", default="post", choices=("post", "pre"))
    add_noise_type(parser, help=f"the noise source (default {_DEFAULT_TYPE})")
    parser.add_argument("--variance", type=variance,
                        help=f"noise VARIANCE of the chosen type, not a std (default "
                             f"{_DEFAULT_VARIANCE})")
    parser.add_argument("--spec", default=None,
                        help="several sources at once, e.g. 'add_unc=0.01,add_cor=0.01' "
                             "(VARIANCES); instead of --noise-type/--variance")
    parser.add_argument("--mc-trials", type=count, default=300,
                        help="Monte-Carlo repeats per input (0 = analytic only)")
    parser.add_argument("--seed", type=seed, default=0)


def _noise_spec(args):
    from ..noise import NoiseSpec

    if args.spec is None:
        return NoiseSpec.single(args.noise_type or _DEFAULT_TYPE,
                                _DEFAULT_VARIANCE if args.variance is None else args.variance)
    if args.noise_type is not None or args.variance is not None:
        raise ConfigError("--spec replaces --noise-type/--variance; give one or the other")
    try:
        pairs = dict(item.split("=") for item in args.spec.split(","))
        return NoiseSpec(**{k.strip(): float(v) for k, v in pairs.items()})
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--spec: expected VARIANCES like 'add_unc=0.01,mul_cor=0.001', got "
                          f"{args.spec!r} ({e})") from None


def _inputs(args):
    """``(X, y)``: the first ``--n-inputs`` rows, checked as the user's file numbers them."""
    if args.dataset:
        from ..datasets import load_dataset

        test = load_dataset(args.dataset, "test")
        return test.X[: args.n_inputs], test.y[: args.n_inputs]
    z = read_npz_arrays(args.inputs, "--inputs", (args.x_key,), (args.y_key,))
    X, y = z[args.x_key], z.get(args.y_key)
    check_rows(X, y, "--inputs", args.inputs, (args.x_key, args.y_key))
    return X[: args.n_inputs], None if y is None else y[: args.n_inputs]


def run(args) -> int:
    from ..io import load_model
    from ..noise import NoiseConfig, noise_config
    from ..propagation.sensitivity_report import format_report, sensitivity_report

    spec = _noise_spec(args)
    arch, params, _ = load_model(args.model)
    X, y = _inputs(args)
    X = X.reshape(len(X), -1).astype(params.dtype, copy=False)
    cfg = noise_config(args.preset, spec, arch.n_layers)
    cfg = NoiseConfig(cfg.spec, cfg.layers, args.position)
    report = sensitivity_report(arch, params, X, cfg, labels=y, n_trials=args.mc_trials,
                                rng=args.seed)
    print(f"model {args.model}: sizes {list(arch.sizes)}, {len(X)} inputs, preset {args.preset}, "
          f"variances {spec.as_dict()} ({args.position}), seed {args.seed}")
    print(format_report(report))
    return 0
