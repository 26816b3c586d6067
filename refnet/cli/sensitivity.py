"""``refnet sensitivity``: analytic noise sensitivity of a saved model, with a Monte-Carlo check.

Prints, per noisy layer and noise type, the predicted (first-order) output variance, the
dominant layer and type, the output SNR and the accuracy under noise predicted from the output
moments, next to the same quantities measured by Monte-Carlo (``--mc-trials``).
"""
from __future__ import annotations

from ._common import add_noise_preset, add_noise_type, variance

HELP = "analytic noise sensitivity report of a saved model, with its Monte-Carlo check"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model file written by refnet (refnet.io.save_model)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--inputs", help=".npz with an input array (n_batch, n_in) and optional labels")
    src.add_argument("--dataset", help="test split of a named dataset (mnist, fashion-mnist, ...), "
                                       "normalised as refnet's loaders do")
    parser.add_argument("--x-key", default="X", help="name of the input array in --inputs")
    parser.add_argument("--y-key", default="y", help="name of the label array (optional)")
    parser.add_argument("--n-inputs", type=int, default=1000, help="use the first N inputs")
    add_noise_preset(parser)
    parser.add_argument("--position", default="post", choices=("post", "pre"))
    add_noise_type(parser, default="add_unc", help="the noise source (default add_unc)")
    parser.add_argument("--variance", type=variance, default=0.01,
                        help="noise VARIANCE of the chosen type (not a std)")
    parser.add_argument("--spec", default=None,
                        help="several sources at once, e.g. 'add_unc=0.01,add_cor=0.01' "
                             "(VARIANCES); overrides --noise-type/--variance")
    parser.add_argument("--mc-trials", type=int, default=300,
                        help="Monte-Carlo repeats per input (0 = analytic only)")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    import numpy as np

    from ..io import load_model
    from ..noise import NoiseConfig, NoiseSpec, noise_config
    from ..propagation.sensitivity import format_report, sensitivity_report

    arch, params, _ = load_model(args.model)
    if args.dataset:
        from ..datasets import load_dataset

        test = load_dataset(args.dataset, "test")
        X, y = test.X[: args.n_inputs], test.y[: args.n_inputs]
    else:
        with np.load(args.inputs, allow_pickle=False) as data:
            if args.x_key not in data:
                raise SystemExit(f"--inputs: no array {args.x_key!r} in {args.inputs}")
            X = data[args.x_key][: args.n_inputs]
            y = data[args.y_key][: args.n_inputs] if args.y_key in data else None
    X = X.reshape(len(X), -1).astype(params.dtype, copy=False)
    if args.spec:
        try:
            pairs = dict(item.split("=") for item in args.spec.split(","))
            spec = NoiseSpec(**{k.strip(): float(v) for k, v in pairs.items()})
        except (ValueError, TypeError) as e:
            raise SystemExit(f"--spec: expected 'add_unc=0.01,mul_cor=0.001', got {args.spec!r} "
                             f"({e})") from None
    else:
        spec = NoiseSpec.single(args.noise_type, args.variance)
    cfg = noise_config(args.preset, spec, arch.n_layers)
    cfg = NoiseConfig(cfg.spec, cfg.layers, args.position)
    report = sensitivity_report(arch, params, X, cfg, labels=y, n_trials=args.mc_trials,
                                rng=args.seed)
    print(f"model {args.model}: sizes {list(arch.sizes)}, {len(X)} inputs, preset {args.preset}, "
          f"variances {spec.as_dict()} ({args.position}), seed {args.seed}")
    print(format_report(report))
    return 0
