"""``refnet train``: train a sigmoid MLP (standard, noise-aware or regularized) and save it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..noise import NOISE_TYPES
from ..optim import OPTIMIZERS
from ..paths import check_output_path
from ..regularizers import REGULARIZER_PRESETS
from ..train import MAX_BATCH_SIZE, MAX_EPOCHS
from ._common import (activation, add_noise_preset, add_noise_type, check_classes, check_rows,
                      count, dataset_name, existing_file, int_between, nonnegative_float,
                      positive_float, positive_int, positive_int_list, read_npz_arrays, repeated,
                      seed, variance)

_NPZ_KEYS = ("X_train", "y_train", "X_test", "y_test")
_HIDDEN, _ACTIVATION = (300, 300), "sigmoid"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", type=dataset_name,
                     help="a named dataset, default mnist (see `refnet fetch --help`)")
    src.add_argument("--data-npz", type=existing_file("a .npz with " + ", ".join(_NPZ_KEYS)),
                     metavar="FILE", help="train on FILE.npz with arrays " + ", ".join(_NPZ_KEYS)
                     + " instead")
    p.add_argument("--hidden", type=positive_int_list,
                   help=f"hidden layer sizes (default {','.join(map(str, _HIDDEN))}; with "
                        "--init-from, the model's)")
    p.add_argument("--activation", type=activation,
                   help=f"hidden activation (default {_ACTIVATION}; with --init-from, the model's)")
    p.add_argument("--epochs", type=int_between(1, MAX_EPOCHS, "epochs"), default=10)
    p.add_argument("--batch-size", type=int_between(1, MAX_BATCH_SIZE, "rows per batch"),
                   default=128)
    p.add_argument("--optimizer", default="adagrad", choices=tuple(OPTIMIZERS),
                   help="default adagrad")
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--no-shuffle", action="store_true", help="keep batch order fixed (as the authors)")
    p.add_argument("--n-train", type=positive_int, help="use N training samples (seeded, every class in proportion)")
    p.add_argument("--n-val", type=count, default=12000,
                   help="validation samples split off (default 12000, at most a fifth of the "
                        "training rows; 0, or fewer than 5 rows, means none)")
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
    if args.hidden == ():
        raise ConfigError("--hidden: no layer size given; give hidden layer sizes such as "
                          "300,300 (refnet trains networks with at least one hidden layer)")
    reads = {args.data_npz: "--data-npz", args.init_from: "--init-from"}
    # the checkpoint is read too (resumed); the model written over it would end the resuming
    check_output_path(args.out, "--out", inputs={**reads, args.checkpoint: "--checkpoint"})
    if args.checkpoint is not None:
        check_output_path(args.checkpoint, "--checkpoint", inputs=reads)


def architecture(args, X, y, y_test):
    """``(arch, params or None)``: the loaded ``--init-from`` model (its inputs and classes
    checked against the data; ``--hidden``/``--activation`` must agree with it), or the
    architecture the flags and the data give, checked against what a model file may hold
    before any training."""
    from refnet import mlp
    from refnet.io import check_savable, load_model
    from refnet.model import MAX_WIDTH

    where = args.data_npz or f"dataset {args.dataset or 'mnist'}"
    flag = "--data-npz" if args.data_npz else "--dataset"
    if args.init_from:
        arch, params, _ = load_model(args.init_from)
        hidden, act = arch.sizes[1:-1], arch.activations[:-1]
        if args.hidden is not None and tuple(args.hidden) != hidden:
            raise ConfigError(f"--hidden {','.join(map(str, args.hidden))} conflicts with "
                              f"--init-from {args.init_from}, whose hidden layers are "
                              f"{','.join(map(str, hidden))}; leave out --hidden")
        if args.activation is not None and any(a != args.activation for a in act):
            raise ConfigError(f"--activation {args.activation} conflicts with --init-from "
                              f"{args.init_from}, whose hidden activations are "
                              f"{','.join(act)}; leave out --activation")
        if X.shape[1] != arch.sizes[0]:
            raise DataError(f"{flag}: {where}: {X.shape[1]} features per row, the --init-from "
                            f"model {args.init_from} takes {arch.sizes[0]}")
        n_classes = arch.sizes[-1]
        for name, labels in (("training", y), ("test", y_test)):
            # all labels: float ones too (whole numbers, as check_rows made sure); a test label
            # the model lacks failed after the whole training, naming no flag
            if labels.max() >= n_classes:
                raise DataError(f"{flag}: {where}: {name} label {int(labels.max())} is not a "
                                f"class of the --init-from model {args.init_from} (labels "
                                f"0..{n_classes - 1})")
        return arch, params
    n_classes = int(max(y.max(), y_test.max())) + 1
    if n_classes > MAX_WIDTH:
        raise DataError(f"{flag}: {where}: label {n_classes - 1} means {n_classes} classes, "
                        f"more than the {MAX_WIDTH} outputs a refnet model may have; labels "
                        "must be class indices 0..n_classes-1")
    if X.shape[1] > MAX_WIDTH:
        raise DataError(f"{flag}: {where}: {X.shape[1]} features per row, more than the "
                        f"{MAX_WIDTH} inputs a refnet model may have")
    hidden = _HIDDEN if args.hidden is None else tuple(args.hidden)
    sizes = (X.shape[1],) + hidden + (n_classes,)
    check_savable(sizes, args.dtype, "--hidden")
    return mlp(sizes, args.activation or _ACTIVATION), None


def regularizers(args, arch) -> tuple:
    """The ``--regularizer`` presets with ``--lam``, checked before any training: each named
    once (a preset given twice added its penalty twice), a lambda where the preset has none
    published, and every penalty evaluated once on a tiny network of ``arch``'s depth (a code
    set naming W^(2) and W^(L) apart failed at the first step of a one-hidden-layer net with
    "weight_lambdas: layers -1 and 2 are the same layer", naming no flag)."""
    from refnet import init_params, mlp
    from refnet.regularizers import regularizer_preset, value

    names = args.regularizer
    twice = repeated(names)
    if twice:
        raise ConfigError(f"--regularizer: {', '.join(twice)} given twice (its penalty would be "
                          "added twice); name each preset once")
    regs = []
    for name in names:
        try:
            regs.append(regularizer_preset(name, args.lam))
        except ValueError as e:
            if args.lam is None:  # the library's words are "pass lam="
                raise ConfigError(f"--regularizer {name}: the preset has no published lambda; "
                                  "give one with --lam") from None
            raise ConfigError(f"--regularizer {name} --lam {args.lam:g}: {e}") from None
    small = mlp((2,) * (arch.n_layers + 1), arch.activations[0], arch.activations[-1])
    try:
        value(small, init_params(small, rng=0), np.zeros((1, 2)), regs)
    except ValueError as e:
        raise ConfigError(f"--regularizer {','.join(names)}: does not fit a network of "
                          f"{arch.n_layers} weight layers ({e}); choose presets for this depth "
                          "or other --hidden layers") from None
    return tuple(regs)


def load_train_test(args):
    """``(X_train, y_train, X_test, y_test, provenance)`` from ``--data-npz`` or ``--dataset``.

    Inputs are checked here, before any split, so a bad row is named by its row in the file.
    """
    if args.data_npz is not None:
        z = read_npz_arrays(args.data_npz, "--data-npz", _NPZ_KEYS)
        check_rows(z["X_train"], z["y_train"], "--data-npz", args.data_npz, ("X_train", "y_train"))
        check_rows(z["X_test"], z["y_test"], "--data-npz", args.data_npz, ("X_test", "y_test"),
                   n_features=z["X_train"].shape[1])
        return (*(z[k] for k in _NPZ_KEYS), {"source": str(args.data_npz)})
    from refnet.datasets import load_dataset

    name = args.dataset or "mnist"
    train = load_dataset(name, "train", dtype=args.dtype)
    check_classes(train, "--dataset", name)
    test = load_dataset(name, "test", dtype=args.dtype)
    return train.X, train.y, test.X, test.y, {"train": train.info, "test": test.info}


def run(args) -> int:
    from refnet import NoiseSpec, init_params, noise_config
    from refnet.io import save_model
    from refnet.regularizers import ExpectedLoss
    from refnet.train import TrainConfig, evaluate_accuracy, train
    from refnet.datasets.split import stratified_subset, train_val_split

    check_settings(args)
    X, y, X_test, y_test, provenance = load_train_test(args)
    arch, params = architecture(args, X, y, y_test)
    regs = regularizers(args, arch)
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
    if n_val:
        X_tr, y_tr, X_val, y_val = train_val_split(X, y, n_val, rng=args.seed,
                                                   stratify=classify and args.dataset == "quickdraw")
    else:  # no validation part (--n-val 0, or fewer than 5 rows): the rows in a seeded order
        perm = np.random.default_rng(args.seed).permutation(len(X))
        X_tr, y_tr, X_val, y_val = X[perm], y[perm], None, None
    dtype = np.dtype(args.dtype)
    if params is not None:
        params = params.astype(dtype)
    else:
        params = init_params(arch, "torch", rng=args.seed, dtype=dtype)
    noise = None
    if args.noise_type:
        noise = noise_config(args.noise_preset, NoiseSpec.single(args.noise_type, args.noise_variance),
                             arch.n_layers)
    if args.expected_loss:  # the noise enters through the objective, none is drawn
        regs, noise = regs + (ExpectedLoss(noise),), None
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                         lr=args.lr, noise=noise, regularizers=regs, shuffle=not args.no_shuffle,
                         seed=args.seed)
    stream = None if args.quiet else sys.stderr
    # the trainer checks loss and parameters for NaN/inf after every step and stops with one
    # line naming epoch and batch (TrainingDiverged); numpy's warnings on the way say less
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = train(arch, params, X_tr, y_tr, config, X_val, y_val,
                       checkpoint=args.checkpoint, progress=stream,
                       start_from=(f"--init-from {args.init_from}" if args.init_from
                                   else f"fresh weights of --seed {args.seed}"))
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
