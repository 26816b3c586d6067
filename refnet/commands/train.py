"""``refnet train``: train a sigmoid MLP (standard, noise-aware or regularized) and save it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HELP = "train an MLP (standard, noise-aware or regularized) and report clean and noisy accuracy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion-mnist or quickdraw (see `refnet fetch --help`)")
    p.add_argument("--data-npz", type=Path, metavar="FILE",
                   help="train on FILE.npz with arrays X_train, y_train, X_test, y_test instead")
    p.add_argument("--hidden", default="300,300", help="hidden layer sizes (default 300,300)")
    p.add_argument("--activation", default="sigmoid", help="hidden activation (default sigmoid)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="adagrad", help="sgd, adagrad or adam (default adagrad)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--no-shuffle", action="store_true", help="keep batch order fixed (as the authors)")
    p.add_argument("--n-train", type=int, help="use N training samples (seeded, every class in proportion)")
    p.add_argument("--n-val", type=int, default=12000, help="validation samples split off (default 12000)")
    p.add_argument("--noise-type", choices=["add_unc", "add_cor", "mul_unc", "mul_cor"],
                   help="noise-aware training with this noise type")
    p.add_argument("--noise-variance", type=float, default=0.0, help="its variance (not std)")
    p.add_argument("--noise-preset", default="duque", help="where noise acts: duque or semenova")
    p.add_argument("--regularizer", action="append", default=[], metavar="PRESET",
                   help="regularizer preset (repeatable), e.g. eq4, eq7, custom_sum, addunc_sigm_mnist")
    p.add_argument("--lam", type=float, help="overall lambda of the regularizer presets")
    p.add_argument("--init-from", type=Path, metavar="MODEL", help="fine-tune from a saved model")
    p.add_argument("--checkpoint", type=Path, help="checkpoint file (resumed if it exists)")
    p.add_argument("--out", type=Path, default=Path("model.npz"), help="where to save the model")
    p.add_argument("--eval-variance", type=float, default=0.5,
                   help="noise variance for the noisy accuracy printed at the end (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--quiet", action="store_true")


def load_train_test(args):
    """``(X_train, y_train, X_test, y_test, provenance)`` from ``--data-npz`` or ``--dataset``."""
    if args.data_npz is not None:
        keys = ("X_train", "y_train", "X_test", "y_test")
        with np.load(args.data_npz, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise SystemExit(f"--data-npz: {args.data_npz} lacks array(s) {', '.join(missing)}")
            arrays = [z[k] for k in keys]
        return (*arrays, {"source": str(args.data_npz)})
    from refnet.datasets import load_dataset

    train = load_dataset(args.dataset, "train", dtype=args.dtype)
    test = load_dataset(args.dataset, "test", dtype=args.dtype)
    return train.X, train.y, test.X, test.y, {"train": train.info, "test": test.info}


def run(args) -> int:
    from refnet import NoiseSpec, init_params, mlp, noise_config
    from refnet.io import load_model, save_model
    from refnet.regularizers import regularizer_preset
    from refnet.train import TrainConfig, evaluate_accuracy, train
    from refnet.datasets.split import stratified_subset, train_val_split

    X, y, X_test, y_test, provenance = load_train_test(args)
    classify = np.issubdtype(np.asarray(y).dtype, np.integer)
    if args.n_train:  # a seeded subset with every class in proportion, never the first rows
        n = min(int(args.n_train), len(y))
        keep = (stratified_subset(y, n, rng=args.seed) if classify
                else np.random.default_rng(args.seed).permutation(len(y))[:n])
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
        hidden = tuple(int(h) for h in args.hidden.split(",") if h)
        arch = mlp((X.shape[1],) + hidden + (n_classes,), args.activation)
        params = init_params(arch, "torch", rng=args.seed, dtype=dtype)
    noise = None
    if args.noise_type and args.noise_variance > 0:
        noise = noise_config(args.noise_preset, NoiseSpec.single(args.noise_type, args.noise_variance),
                             arch.n_layers)
    regs = tuple(regularizer_preset(name, args.lam) for name in args.regularizer)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                         lr=args.lr, noise=noise, regularizers=regs, shuffle=not args.no_shuffle,
                         seed=args.seed)
    stream = None if args.quiet else sys.stderr
    result = train(arch, params, X_tr, y_tr, config, X_val, y_val, checkpoint=args.checkpoint,
                   progress=stream)
    clean = evaluate_accuracy(arch, result.params, X_test, y_test)
    lines = [f"clean test accuracy: {clean:.4f}"]
    noisy = {}
    for t in ("add_unc", "add_cor", "mul_unc", "mul_cor"):
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
