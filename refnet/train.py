"""Training: mini-batch loop for standard, noise-aware and regularized training.

* Standard training: ``TrainConfig(noise=None, regularizers=())``.
* Noise-aware training (Duque 2024, Sec. 2): ``noise=NoiseConfig(...)``; fresh noise is drawn
  for every batch and the gradient flows through it as documented in :mod:`refnet.noise`.
* Regularized training (Duque 2024, Eqs. 4 and 7): ``regularizers=(...)`` from
  :mod:`refnet.regularizers`; total loss = data loss + sum of the penalties.
* Fine-tuning (the authors fine-tune noise-aware and regularized models from a trained
  baseline): pass the baseline's ``params``.

Randomness: epoch ``e`` draws its shuffling and its noise from
``SeedSequence(seed, spawn_key=(e,))``, so a run resumed from the checkpoint of epoch ``e - 1``
gives exactly the numbers of an uninterrupted run.

Checkpoints: with ``checkpoint=PATH`` the parameters, optimizer state and history are written
atomically after every epoch; calling :func:`train` again with the same path and settings
resumes after the last completed epoch. A NaN or inf in the loss stops training with
:class:`TrainingDiverged` naming the epoch and batch; the last good checkpoint is kept.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ConfigError
from .io import load_npz, save_npz_atomic
from .losses import check_labels, get_loss
from .model import Architecture, Params, backward, check_input, check_params, forward
from .noise import NoiseConfig
from .optim import get_optimizer
from .progress import Progress
from .regularizers import ExpectedLoss, regularizer_from_dict, regularizer_value_and_grad

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train", "evaluate_accuracy",
           "epoch_rng"]

Array = np.ndarray


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf; ``epoch`` and ``batch`` say where (both 1-based)."""

    def __init__(self, epoch: int, batch: int, value: float, checkpoint: str | None):
        self.epoch, self.batch, self.value = epoch, batch, value
        kept = (f"; the last good checkpoint ({checkpoint}) is kept" if checkpoint
                else "; no checkpoint was configured")
        super().__init__(f"loss is {value} at epoch {epoch}, batch {batch}{kept}. "
                         "Lower the learning rate or the noise/regularizer settings.")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run (plain data, stored in checkpoints and model metadata).

    ``optimizer`` is ``"sgd"``, ``"adagrad"`` or ``"adam"`` with learning rate ``lr`` and
    further keyword options ``optimizer_options`` (e.g. ``(("momentum", 0.9),)``). The
    defaults are the authors' (Adagrad, lr 0.01, batch 128). ``shuffle`` reshuffles the
    training rows every epoch; ``shuffle=False`` mirrors the authors' code, which never
    shuffles and relies on its random split having mixed the rows (give it mixed rows:
    :func:`refnet.datasets.split.train_val_split`). ``patience > 0`` stops early: training
    ends once the validation loss has not improved for ``patience`` epochs and the parameters
    of the best epoch are returned (needs validation data).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adagrad"
    lr: float = 0.01
    optimizer_options: tuple = ()
    loss: str = "cross_entropy"
    noise: NoiseConfig | None = None
    regularizers: tuple = ()
    shuffle: bool = True
    seed: int = 0
    patience: int = 0

    def __post_init__(self):
        if int(self.epochs) < 0:
            raise ValueError(f"epochs: must be >= 0, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if int(self.patience) < 0:
            raise ValueError(f"patience: must be >= 0 (0: no early stopping), got {self.patience}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: must be finite and > 0, got {self.lr}")
        get_loss(self.loss)
        object.__setattr__(self, "optimizer_options", tuple(tuple(kv) for kv in self.optimizer_options))
        object.__setattr__(self, "regularizers", tuple(self.regularizers))
        if any(isinstance(r, ExpectedLoss) for r in self.regularizers):
            # its penalty is the cross-entropy's Hessian times the noise's covariance, predicted
            # from the clean network: another loss, or noise drawn on top, would be wrong
            if self.loss != "cross_entropy":
                raise ConfigError(f"loss: the expected-loss objective is built on the "
                                  f"cross-entropy; got loss {self.loss!r}")
            if self.noise is not None:
                raise ConfigError("noise: the expected-loss objective already averages over the "
                                  "noise; train it without noise (noise=None)")
        self.make_optimizer()  # fails early on an unknown optimizer or option

    def make_optimizer(self):
        return get_optimizer(self.optimizer, lr=self.lr, **dict(self.optimizer_options))

    def as_dict(self) -> dict:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "optimizer": self.optimizer,
                "lr": self.lr, "optimizer_options": [list(kv) for kv in self.optimizer_options],
                "loss": self.loss, "noise": None if self.noise is None else self.noise.as_dict(),
                "regularizers": [r.as_dict() for r in self.regularizers],
                "shuffle": self.shuffle, "seed": self.seed, "patience": self.patience}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["noise"] = None if d.get("noise") is None else NoiseConfig.from_dict(d["noise"])
        d["regularizers"] = tuple(regularizer_from_dict(r) for r in d.get("regularizers", ()))
        d["optimizer_options"] = tuple(tuple(kv) for kv in d.get("optimizer_options", ()))
        return cls(**d)


@dataclass(frozen=True)
class TrainResult:
    """Final parameters, per-epoch history (list of dicts) and where training stopped.

    With early stopping, ``params`` are those of ``best_epoch`` (1-based) and ``epochs_done``
    counts the epochs actually run.
    """

    params: Params
    history: tuple = field(default_factory=tuple)
    epochs_done: int = 0
    resumed_from: int = 0
    best_epoch: int | None = None


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of epoch ``epoch`` (0-based): shuffling first, then noise draws."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(epoch),)))


def evaluate_accuracy(arch: Architecture, params: Params, X, y, noise=None, rng=None,
                      batch_size: int = 4096) -> float:
    """Fraction of correct argmax predictions (clean unless ``noise`` is given)."""
    from .model import predict

    y = check_labels(y, len(X), arch.sizes[-1])
    return float(np.mean(predict(arch, params, X, noise, rng, batch_size) == y))


def _loss_on(arch, params, X, y, loss_fn, batch_size=4096):
    total = 0.0
    for i in range(0, len(X), batch_size):
        out, _ = forward(arch, params, X[i:i + batch_size])
        total += loss_fn(out, y[i:i + batch_size])[0] * len(out)
    return total / max(1, len(X))


def _checkpoint_meta(arch, config, epoch_done, history, dtype):
    return {"format": "refnet-checkpoint", "refnet_version": __version__,
            "architecture": arch.as_dict(), "config": config.as_dict(), "epochs_done": epoch_done,
            "history": list(history), "dtype": str(dtype)}


def _save_checkpoint(path, arch, params, opt_state, config, epoch_done, history, best=None):
    arrays = {}
    for l, (w, b) in enumerate(zip(params.W, params.b), start=1):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    for k, v in opt_state.items():
        arrays[f"opt/{k}"] = v
    for i, a in enumerate(best[1] if best else ()):
        arrays[f"best/{i}"] = a
    meta = _checkpoint_meta(arch, config, epoch_done, history, params.dtype)
    meta["best_epoch"] = best[0] if best else None
    save_npz_atomic(path, arrays, meta)


def _load_checkpoint(path, arch, config):
    arrays, meta = load_npz(path)
    if meta.get("format") != "refnet-checkpoint":
        raise ValueError(f"checkpoint: {path} is not a refnet checkpoint")
    if Architecture.from_dict(meta["architecture"]) != arch:
        raise ValueError(f"checkpoint: {path} holds a different architecture; delete it or "
                         "choose another checkpoint path")
    saved = dict(meta["config"])
    mine = config.as_dict()
    saved.pop("epochs"), mine.pop("epochs")
    if json.dumps(saved, sort_keys=True) != json.dumps(mine, sort_keys=True):
        raise ValueError(f"checkpoint: {path} was written with other settings; delete it or "
                         "choose another checkpoint path to start afresh")
    L = arch.n_layers
    params = Params(tuple(arrays[f"W{l}"] for l in range(1, L + 1)),
                    tuple(arrays[f"b{l}"] for l in range(1, L + 1)))
    opt_state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    best = None
    if meta.get("best_epoch"):
        best = (int(meta["best_epoch"]), [arrays[f"best/{i}"] for i in range(2 * L)])
    return params, opt_state, int(meta["epochs_done"]), tuple(meta["history"]), best


def train(arch: Architecture, params: Params, X, y, config: TrainConfig, X_val=None, y_val=None,
          checkpoint=None, progress=None, log=None) -> TrainResult:
    """Train ``params`` (not modified; a new :class:`Params` is returned).

    Parameters
    ----------
    X : array (n_samples, sizes[0]);  y : labels (n_samples,) or regression targets (n_samples, n_out)
    X_val, y_val : optional validation data, scored after every epoch (clean accuracy and loss)
    checkpoint : path or None
        Written atomically after every epoch; an existing one with the same settings is resumed.
    progress : text stream or None
        Where to draw a progress bar (e.g. ``sys.stderr``); ``None`` for silence.
    log : callable(dict) or None
        Called with each epoch's history entry.
    """
    check_params(arch, params)
    dtype = params.dtype
    X = check_input(X, arch.sizes[0]).astype(dtype, copy=False)
    loss_fn = get_loss(config.loss)
    classify = config.loss == "cross_entropy"
    if classify:
        y = check_labels(y, len(X), arch.sizes[-1])
    else:
        y = np.asarray(y, dtype=dtype).reshape(len(X), -1)
    if X_val is not None:
        X_val = check_input(X_val, arch.sizes[0], "X_val").astype(dtype, copy=False)
        y_val = (check_labels(y_val, len(X_val), arch.sizes[-1], "y_val") if classify
                 else np.asarray(y_val, dtype=dtype).reshape(len(X_val), -1))
    opt = config.make_optimizer()
    arrays = [a.copy() for a in params.arrays()]
    trainable = [True, arch.train_biases] * arch.n_layers
    opt_state = opt.init(arrays)
    start, history, best = 0, (), None  # best: (epoch, arrays) of the lowest validation loss
    if config.patience and (X_val is None or not len(X_val)):
        raise ValueError("patience: early stopping needs validation data (X_val, y_val)")
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None and ckpt.exists():
        p, opt_state, start, history, best = _load_checkpoint(ckpt, arch, config)
        arrays = [a.astype(dtype) for a in p.arrays()]
    resumed_from = start
    n = len(X)
    bs = int(config.batch_size)
    n_batches = (n + bs - 1) // bs
    for epoch in range(start, int(config.epochs)):
        if best is not None and epoch - best[0] >= config.patience:
            break  # no improvement for `patience` epochs (also when resuming such a checkpoint)
        rng = epoch_rng(config.seed, epoch)
        order = rng.permutation(n) if config.shuffle else np.arange(n)
        t0 = time.perf_counter()
        sum_loss = sum_reg = 0.0
        bar = None if progress is None else Progress(
            f"epoch {epoch + 1}/{config.epochs}", n_batches, progress, unit="batches")
        for bi in range(n_batches):
            idx = order[bi * bs:(bi + 1) * bs]
            Xb, yb = X[idx], y[idx]
            p = Params.from_arrays(arrays)
            out, cache = forward(arch, p, Xb, config.noise, rng, check=False)  # X checked above
            value, d_out = loss_fn(out, yb)
            reg_value, reg_grads, dZ_extra = 0.0, None, None
            if config.regularizers:
                reg_value, reg_grads, dZ_extra = regularizer_value_and_grad(
                    arch, p, cache, config.regularizers)
            total = value + reg_value
            if not math.isfinite(total):
                if bar is not None:
                    bar.close("diverged")
                raise TrainingDiverged(epoch + 1, bi + 1, total, None if ckpt is None else str(ckpt))
            grads = backward(arch, p, cache, d_out, dZ_extra).arrays()
            if reg_grads is not None:
                grads = [g + r for g, r in zip(grads, reg_grads.arrays())]
            arrays, opt_state = opt.step(arrays, grads, opt_state, trainable=trainable)
            sum_loss += value * len(idx)
            sum_reg += reg_value * len(idx)
            if bar is not None:
                bar.set(bi + 1, f"loss {sum_loss / (bi * bs + len(idx)):.4f}")
        p = Params.from_arrays(arrays)
        entry = {"epoch": epoch + 1, "train_loss": sum_loss / n, "train_penalty": sum_reg / n,
                 "seconds": round(time.perf_counter() - t0, 3)}
        if X_val is not None and len(X_val):
            entry["val_loss"] = _loss_on(arch, p, X_val, y_val, loss_fn)
            if classify:
                entry["val_accuracy"] = evaluate_accuracy(arch, p, X_val, y_val)
        history = history + (entry,)
        if config.patience and (best is None or entry["val_loss"] < history[best[0] - 1]["val_loss"]):
            best = (epoch + 1, [a.copy() for a in arrays])
        if ckpt is not None:
            _save_checkpoint(ckpt, arch, p, opt_state, config, epoch + 1, history, best)
        if bar is not None:
            extra = "".join(f" {k} {v:.4f}" for k, v in entry.items() if k.startswith("val_"))
            bar.close(line=f"epoch {epoch + 1}/{config.epochs} loss {entry['train_loss']:.4f}"
                                f"{extra} ({entry['seconds']:.1f}s)")
        if log is not None:
            log(entry)
    if best is not None:
        return TrainResult(Params.from_arrays(best[1]), tuple(history), len(history),
                           resumed_from, best[0])
    return TrainResult(Params.from_arrays(arrays), tuple(history), int(config.epochs), resumed_from)
