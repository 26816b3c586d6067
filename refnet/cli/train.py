"""``refnet train``: train a sigmoid MLP (standard, noise-aware or regularized) and save it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..noise import NOISE_TYPES
from ..optim import OPTIMIZERS
from ..regularizers import REGULARIZER_PRESETS
from ._common import (add_noise_preset, add_noise_type, check_rows, count, dataset_name,
                      existing_file, nonnegative_float, positive_float, positive_int,
                      positive_int_list, read_npz_arrays, seed, variance)

HELP = "train an MLP (standard, noise-aware or regularized) and report clean and noisy accuracy"
_NPZ_KEYS = ("X_train", "y_train", "X_test", "y_test")


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", type=dataset_name,
                     help="a named dataset, default mnist (see `refnet fetch --help`)")
    src.add_argument("--data-npz", type=existing_file("a .npz with " + ", ".join(_NPZ_KEYS)),
                     metavar="FILE", help="train on FILE.npz with arrays " + ", ".join(_NPZ_KEYS)
                     + " instead")
    p.add_argument("--hidden", type=positive_int_list, default=(300, 300),
                   help="hidden layer sizes (default 300,300)")
    p.add_argument("--activation", default="sigmoid", help="hidden activation (default sigmoid)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--optimizer", default="adagrad", choices=tuple(OPTIMIZERS),
                   help="default adagrad")
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--no-shuffle", action="store_true", help="keep batch order fixed (as the authors)")
    p.add_argument("--n-train", type=positive_int, help="use N training samples (seeded, every class in proportion)")
    p.add_argument("--n-val", type=count, default=12000,
                   help="validation samples split off (default 12000, at most a fifth)")
    add_noise_type(p, help="noise-aware training with this noise type (needs --noise-variance)")
    p.add_argument("--noise-variance", type=variance,
                   help="variance (not std) of the --noise-type noise, > 0")
    add_noise_preset(p, "--noise-preset")
    p.add_argument("--expected-loss", action="store_true",
                   help="instead of drawing the --noise-type/--noise-variance noise, train on the "
                   "cross-entropy expected under it (2nd order, no lambda; docs/expected_loss.md)")
    p.add_argument("--regularizer", action="append", default=[], metavar="PRESET",
                   choices=REGULARIZER_PRESETS, help="regularizer preset (repeatable): "
                   + ", ".join(REGULARIZER_PRESETS))
    p.add_argument("--lam", type=nonnegative_float,
                   help="overall lambda of the regularizer presets")
    p.add_argument("--init-from", type=existing_file("a model .npz written by refnet"),
                   metavar="MODEL", help="fine-tune from a saved model")
    p.add_argument("--checkpoint", type=Path, help="checkpoint file (resumed if it exists)")
    p.add_argument("--out", type=Path, default=Path("model.npz"), help="where to save the model")
    p.add_argument("--eval-variance", type=variance, default=0.5,
                   help="noise variance for the noisy accuracy printed at the end (default 0.5)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--quiet", action="store_true")


def check_settings(args) -> None:
    """Settings that need another one: an error, never a silent default."""
    if args.noise_type and not args.noise_variance:
        raise ConfigError(f"--noise-type {args.noise_type} needs --noise-variance V > 0 (a "
                          "variance, e.g. 0.01); without noise, leave out --noise-type")
    if args.noise_variance is not None and not args.noise_type:
        raise ConfigError("--noise-variance needs --noise-type (one of "
                          + ", ".join(NOISE_TYPES) + ")")
    if args.expected_loss and not args.noise_type:
        raise ConfigError("--expected-loss needs the hardware's noise: --noise-type T "
                          "--noise-variance V (and optionally --noise-preset)")
    if args.lam is not None and not args.regularizer:
        raise ConfigError("--lam needs --regularizer PRESET (one of "
                          + ", ".join(REGULARIZER_PRESETS) + ")")


def load_train_test(args):
    """``(X_train, y_train, X_test, y_test, provenance)`` from ``--data-npz`` or ``--dataset``.

    Inputs are checked here, before any split, so a bad row is named by its row in the file.
    """
    if args.data_npz is not None:
        z = read_npz_arrays(args.data_npz, "--data-npz", _NPZ_KEYS)
        check_rows(z["X_train"], z["y_train"], "--data-npz", args.data_npz, ("X_train", "y_train"))
        check_rows(z["X_test"], z["y_test"], "--data-npz", args.data_npz, ("X_test", "y_test"))
        return (*(z[k] for k in _NPZ_KEYS), {"source": str(args.data_npz)})
    from refnet.datasets import load_dataset

    name = args.dataset or "mnist"
    train = load_dataset(name, "train", dtype=args.dtype)
    test = load_dataset(name, "test", dtype=args.dtype)
    return train.X, train.y, test.X, test.y, {"train": train.info, "test": test.info}


def run(args) -> int:
    from refnet import NoiseSpec, init_params, mlp, noise_config
    from refnet.io import load_model, save_model
    from refnet.regularizers import ExpectedLoss, regularizer_preset
    from refnet.train import TrainConfig, evaluate_accuracy, train
    from refnet.datasets.split import stratified_subset, train_val_split

    check_settings(args)
    X, y, X_test, y_test, provenance = load_train_test(args)
    classify = np.issubdtype(np.asarray(y).dtype, np.integer)
    if args.n_train is not None:
        if args.n_train > len(X):
            raise ConfigError(f"--n-train: {args.n_train} asked, the training data has "
                              f"{len(X)} rows; give at most {len(X)}")
        # a seeded subset with every class in proportion, never the first rows (a class-sorted
        # file would keep only its first classes)
        keep = (stratified_subset(y, args.n_train, rng=args.seed) if classify
                else np.random.default_rng(args.seed).permutation(len(y))[:args.n_train])
        X, y = X[keep], y[keep]
    n_val = min(args.n_val, len(X) // 5)
    X_tr, y_tr, X_val, y_val = train_val_split(X, y, n_val, rng=args.seed,
                                               stratify=classify and args.dataset == "quickdraw")
    n_classes = int(max(y.max(), y_test.max())) + 1
    dtype = np.dtype(args.dtype)
    if args.init_from:
        arch, params, _ = load_model(args.init_from)
        params = params.astype(dtype)
    else:
        arch = mlp((X.shape[1],) + args.hidden + (n_classes,), args.activation)
        params = init_params(arch, "torch", rng=args.seed, dtype=dtype)
    noise = None
    if args.noise_type:
        noise = noise_config(args.noise_preset, NoiseSpec.single(args.noise_type, args.noise_variance),
                             arch.n_layers)
    regs = tuple(regularizer_preset(name, args.lam) for name in args.regularizer)
    if args.expected_loss:  # the noise enters through the objective, none is drawn
        regs, noise = regs + (ExpectedLoss(noise),), None
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                         lr=args.lr, noise=noise, regularizers=regs, shuffle=not args.no_shuffle,
                         seed=args.seed)
    stream = None if args.quiet else sys.stderr
    result = train(arch, params, X_tr, y_tr, config, X_val, y_val, checkpoint=args.checkpoint,
                   progress=stream)
    clean = evaluate_accuracy(arch, result.params, X_test, y_test)
    lines = [f"clean test accuracy: {clean:.4f}"]
    noisy = {}
    for t in NOISE_TYPES:
        cfg = noise_config("duque", NoiseSpec.single(t, args.eval_variance), arch.n_layers)
        noisy[t] = evaluate_accuracy(arch, result.params, X_test, y_test, cfg, rng=args.seed + 1)
        lines.append(f"test accuracy with {t} noise of variance {args.eval_variance:g} after each "
                     f"hidden layer: {noisy[t]:.4f}")
    save_model(args.out, arch, result.params, {
        "train_config": config.as_dict(), "history": list(result.history), "seed": args.seed,
        "data": provenance, "test_accuracy": clean,
        "noisy_test_accuracy": {"variance": args.eval_variance, **noisy}})
    print("\n".join(lines))
    print(f"model saved to {args.out}")
    return 0
