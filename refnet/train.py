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
resumes after the last completed epoch (:mod:`refnet.checkpoint`: a checkpoint that is damaged,
edited or from other settings is refused with :class:`~refnet.errors.CheckpointError` and left
untouched). A NaN or inf in the loss, a non-finite or overflowing parameter after an update
(e.g. from a non-finite gradient) or an overflowing summed loss stops training with
:class:`~refnet.errors.TrainingDiverged` naming the epoch and batch; the last good checkpoint
is kept (it is written only after a whole epoch passed these checks).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._blas import on_fixed_blas_threads
from .checkpoint import data_fingerprint, load_checkpoint, save_checkpoint
from .draw_ahead import DrawAhead
from .errors import ConfigError, TrainingDiverged
from .limits import MAX_BATCH_SIZE
from .losses import check_labels, get_loss
from .model import Architecture, Params, check_input, check_params, forward
from .noise import NOISE_TYPES, NoiseConfig
from .npzfile import (WANT_BOOL, WANT_LIST, WANT_OBJECT, BadContent, Want, check_fields,
                      want_int, want_number, want_str)
from .optim import get_optimizer, packed_step
from .progress import Progress
from .regularizers import ExpectedLoss, regularizer_from_dict
from .step import loss_and_grad

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train", "evaluate_accuracy",
           "epoch_rng", "MAX_EPOCHS", "MAX_BATCH_SIZE", "MAX_SEED"]

#: Ceilings of a :class:`TrainConfig`, the same for the settings accepted (library, ``refnet
#: train``, ``refnet sweep``) and for the configs read back from checkpoints and model files:
#: a run must never write a file that refnet then refuses to read. ``MAX_SEED``: numpy's
#: seeds are non-negative, and 64 bits is what every other framework's seed holds.
MAX_EPOCHS = 10**9
MAX_SEED = 2**64 - 1

Array = np.ndarray


def _diverged(epoch: int, batch: int, what: str, value, checkpoint) -> TrainingDiverged:
    """The :class:`TrainingDiverged` of batch ``batch`` of epoch ``epoch`` (both 1-based)."""
    kept = (f"; the last good checkpoint ({checkpoint}) is kept" if checkpoint
            else "; no checkpoint was configured")
    e = TrainingDiverged(f"{what} at epoch {epoch}, batch {batch}{kept}. "
                         "Lower the learning rate or the noise/regularizer settings.")
    e.epoch, e.batch, e.value = epoch, batch, value
    return e


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
        if not 0 <= int(self.epochs) <= MAX_EPOCHS:
            raise ValueError(f"epochs: must be in 0..{MAX_EPOCHS}, got {self.epochs}")
        if not 1 <= int(self.batch_size) <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size: must be in 1..{MAX_BATCH_SIZE}, got {self.batch_size}")
        if not 0 <= int(self.patience) <= MAX_EPOCHS:
            raise ValueError(f"patience: must be in 0..{MAX_EPOCHS} (0: no early stopping), got "
                             f"{self.patience}")
        if not 0 <= int(self.seed) <= MAX_SEED:
            raise ValueError(f"seed: must be in 0..{MAX_SEED} (2**64 - 1), got {self.seed}")
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
                "shuffle": self.shuffle, "seed": self.seed,
                # early stopping only when on, so configs without it read and hash as before
                **({"patience": self.patience} if self.patience else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The inverse of :meth:`as_dict`, strict about keys and JSON types (a boolean is not
        a number, ``"no"`` is not a boolean). Raises :class:`~refnet.errors.ConfigError`."""
        try:
            check_fields(d, _CONFIG_FIELDS, "config")
            d = dict(d)
            if d.get("noise") is not None:
                _check_noise(d["noise"], "config 'noise'")
                d["noise"] = NoiseConfig.from_dict(d["noise"])
            regs = d.get("regularizers", [])
            for r in regs:
                _check_regularizer(r)
            d["regularizers"] = tuple(regularizer_from_dict(r) for r in regs)
            opts = d.get("optimizer_options", [])
            if not all(isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], str) for kv in opts):
                raise BadContent("config: 'optimizer_options' must be a list of [name, value] pairs")
            d["optimizer_options"] = tuple((k, tuple(v) if isinstance(v, list) else v)
                                           for k, v in opts)  # JSON turned tuples into lists
            return cls(**d)
        except ConfigError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            raise ConfigError(f"config: {e}" if not str(e).startswith("config") else str(e)) from e


_CONFIG_FIELDS = {"epochs": want_int(0, MAX_EPOCHS), "batch_size": want_int(1, MAX_BATCH_SIZE),
                  "optimizer": want_str(32), "lr": want_number(0, 1e300),
                  "optimizer_options": WANT_LIST, "loss": want_str(32),
                  "noise": Want("null or an object", lambda v: v is None or isinstance(v, dict)),
                  "regularizers": WANT_LIST, "shuffle": WANT_BOOL, "seed": want_int(0, MAX_SEED),
                  "patience": want_int(0, MAX_EPOCHS)}
_NOISE_FIELDS = {"spec": WANT_OBJECT, "layers": WANT_LIST, "position": want_str(choices=("pre", "post"))}


_LAMBDAS = Want("a number >= 0 or an object {layer: number}", lambda v: want_number(0, 1e300).ok(v) or (
    isinstance(v, dict) and all(k.lstrip("-").isdigit() and want_number(0, 1e300).ok(x)
                                for k, x in v.items())))
_REGULARIZER_FIELDS = {
    "row_sum": {"kind": want_str(16), "lambdas": _LAMBDAS},
    "saturation": {"kind": want_str(16), "derivative_lambdas": _LAMBDAS, "weight_lambdas": _LAMBDAS,
                   "reduction": want_str(16), "power": want_int(1, 16)},
    "expected_loss": {"kind": want_str(16), "noise": WANT_OBJECT}}


def _check_noise(n, where: str) -> None:
    """A noise configuration's JSON object: spec of variances, layer numbers, position."""
    check_fields(n, _NOISE_FIELDS, where, required=tuple(_NOISE_FIELDS))
    # any finite variance NoiseSpec takes, so that every config's as_dict reads back (a cap of
    # 1e6 here refused the configs of `refnet train --noise-variance 1e7`)
    check_fields(n["spec"], {k: want_number(0, sys.float_info.max) for k in NOISE_TYPES},
                 f"{where} 'spec'")
    if not all(type(l) is int and abs(l) <= 1024 for l in n["layers"]):
        raise BadContent(f"{where}: 'layers' must be a list of layer numbers")


def _check_regularizer(r) -> None:
    """A regularizer's JSON object has exactly its kind's keys, each of the right type."""
    kind = r.get("kind") if isinstance(r, dict) else None
    if kind not in _REGULARIZER_FIELDS:
        raise BadContent(f"config: each of 'regularizers' must be an object with 'kind' one of "
                         f"{sorted(_REGULARIZER_FIELDS)}, got {str(r)[:60]}")
    spec = _REGULARIZER_FIELDS[kind]
    check_fields(r, spec, f"config regularizer {kind!r}", required=tuple(spec))
    if kind == "expected_loss":
        _check_noise(r["noise"], "config regularizer 'expected_loss' 'noise'")


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


def _validation_scores(arch, params, X, y, loss_fn, classify: bool, batch_size: int = 4096):
    """``(val_loss, val_accuracy)`` of the clean network on ``X``, ``y`` from one forward pass
    per block of ``batch_size`` rows (``val_accuracy`` None for regression). The loss is the
    block losses weighted by their sizes, the accuracy the correct count over ``len(X)``: the
    numbers :func:`evaluate_accuracy` and a separate loss pass over the same blocks give, for
    half the products (they were two passes, a fifth of a float64 epoch's product work)."""
    total, correct = 0.0, 0
    for i in range(0, len(X), batch_size):
        # X_val was checked once before the first epoch, as the training batches are
        out, _ = forward(arch, params, X[i:i + batch_size], check=False)
        yb = y[i:i + batch_size]
        total += loss_fn(out, yb)[0] * len(out)
        if classify:
            correct += int(np.count_nonzero(np.argmax(out, axis=1) == yb))
    n = max(1, len(X))
    return total / n, (correct / n if classify else None)


def _stop(bar, epoch, bi, what, value, ckpt) -> TrainingDiverged:
    if bar is not None:
        bar.close("diverged")
    return _diverged(epoch + 1, bi + 1, what, value, None if ckpt is None else str(ckpt))


def _batch_draws(draws, epoch: int, batch: int, rows: Array):
    """The supplied draws of one batch: ``draws(epoch, batch, rows)`` or the iterator's next."""
    if draws is None:
        return None
    if callable(draws):
        return draws(epoch, batch, rows)
    try:
        return next(draws)
    except StopIteration:
        raise ValueError(f"draws: the iterator ran out at epoch {epoch + 1}, batch {batch + 1}; "
                         "it must give one entry per batch of every epoch") from None


@on_fixed_blas_threads   # every product on one BLAS thread: the bits do not depend on it
def train(arch: Architecture, params: Params, X, y, config: TrainConfig, X_val=None, y_val=None,
          checkpoint=None, progress=None, log=None, draws=None, *,
          draw_ahead: bool = False, start_from: str | None = None) -> TrainResult:
    """Train ``params`` (not modified; a new :class:`Params` is returned).

    Parameters
    ----------
    X : array (n_samples, sizes[0]);  y : labels (n_samples,) or regression targets (n_samples, n_out)
    X_val, y_val : optional validation data, scored after every epoch (clean accuracy and loss)
    checkpoint : path or None
        Written atomically after every epoch; an existing one with the same settings, data and
        starting ``params`` is resumed (one of other starting parameters is refused).
    progress : text stream or None
        Where to draw a progress bar (e.g. ``sys.stderr``); ``None`` for silence.
    log : callable(dict) or None
        Called with each epoch's history entry.
    draws : callable, iterable or None
        Noise draws supplied from outside instead of drawn from the epoch's generator (to
        replay another framework's training exactly): ``draws(epoch, batch, rows)`` (0-based
        epoch and batch; ``rows`` the sample indices of the batch) or an iterable giving, batch
        after batch, one sequence of :class:`refnet.noise.LayerNoise` per layer 0..L (``None``
        for clean layers). Shuffling still comes from ``config.seed``. When resuming from a
        checkpoint use the callable (an iterable starts again at its first entry).
    draw_ahead : bool
        Draw each batch's noise on a helper thread while the previous batch computes
        (:mod:`refnet.draw_ahead`; same numbers from the same stream). Off by default: the
        matrix products already keep every core busy, and on 2 cores the helper thread made
        noise-aware epochs 1-5 % (float64) and 1-12 % (float32) slower than drawing in line
        (7 interleaved pairs each, all in favour of drawing in line).
    start_from : str or None
        Where ``params`` come from (e.g. ``"--init-from model.npz"``), named when a checkpoint
        started from other parameters is refused.

    Each step is :func:`refnet.step.train_step`'s computation, done on buffers this run owns:
    gradients written into arrays allocated once, the optimizer updating the parameters and
    its state in place (:meth:`~refnet.optim.Adagrad.step_inplace`), unshuffled batches taken
    as slices. The results are the bits of calling :func:`~refnet.step.train_step` batch after
    batch (tested in ``tests/test_train_fast_path.py``).
    """
    check_params(arch, params)
    dtype = params.dtype
    # which data a checkpoint belongs to: the arrays as given (before any dtype cast)
    data_sha = None if checkpoint is None else data_fingerprint(np.asarray(X), np.asarray(y))
    # and which starting parameters: a checkpoint of model A's fine-tuning was resumed when
    # fine-tuning model B
    start_sha = None if checkpoint is None else data_fingerprint(*params.arrays())
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
    opt_state = opt.init(arrays)
    if draws is not None and not callable(draws):
        draws = iter(draws)
    start, history, best = 0, (), None  # best: (epoch, arrays) of the lowest validation loss
    if config.patience and (X_val is None or not len(X_val)):
        raise ValueError("patience: early stopping needs validation data (X_val, y_val)")
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None and ckpt.exists():
        p, opt_state, start, history, best = load_checkpoint(
            ckpt, arch, config, arrays, with_best=True, data=data_sha, start=start_sha,
            start_from=start_from)
        arrays = [a.astype(dtype) for a in p.arrays()]
    # the loop updates these in place: its own writeable, contiguous copies
    arrays = [np.array(a, dtype=dtype, order="C") for a in arrays]
    opt_state = {k: np.array(v, order="C") for k, v in opt_state.items()}
    trainable = [True, arch.train_biases] * arch.n_layers
    # the trainable arrays, their gradients and optimizer slots each in one flat buffer: one
    # optimizer call per step (step_packed; None: step array by array, the same numbers)
    grads, step_packed = packed_step(opt, arrays, opt_state, trainable)
    grads_out = Params.from_arrays(grads)
    # With every parameter within +-sum_limit, |the sum of all| <= half the dtype's largest
    # number: the per-step check below needs no pass of its own. Frozen arrays (not counted
    # by the update) are looked at once.
    sum_limit = float(np.finfo(dtype).max) / (2.0 * max(1, sum(a.size for a in arrays)))
    frozen_large = any(not np.all(np.abs(a) <= sum_limit)
                       for a, t in zip(arrays, trainable) if not t)
    noisy = config.noise is not None and not config.noise.is_zero
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
        ahead = None
        if noisy and draws is None and draw_ahead:
            ahead = DrawAhead(config.noise, arch.sizes,
                              [min(bs, n - i) for i in range(0, n, bs)], rng, dtype)
        try:
            for bi in range(n_batches):
                idx = order[bi * bs:(bi + 1) * bs]
                if config.shuffle:
                    Xb, yb = X[idx], y[idx]
                else:  # rows in order: views, no copies
                    Xb, yb = X[bi * bs:(bi + 1) * bs], y[bi * bs:(bi + 1) * bs]
                bdraws = ahead.next() if ahead is not None else _batch_draws(draws, epoch, bi, idx)
                res = loss_and_grad(arch, Params.from_arrays(arrays), Xb, yb,
                                    noise=config.noise, draws=bdraws, rng=rng,
                                    regularizers=config.regularizers, loss=config.loss,
                                    per_term=False, check=False,  # X checked above
                                    grads_out=grads_out)
                value, reg_value = res.loss, res.penalty
                total = value + reg_value
                if not math.isfinite(total):
                    raise _stop(bar, epoch, bi, f"loss is {total}", total, ckpt)
                large = (step_packed(res.grads.arrays(), sum_limit) if step_packed
                         else opt.step_inplace(arrays, res.grads.arrays(), opt_state, trainable,
                                               limit=sum_limit))
                sum_loss += value * len(idx)
                sum_reg += reg_value * len(idx)
                # One reduction per array: a NaN/inf anywhere in the updated parameters (from
                # a non-finite gradient or an overflowing step) makes the sum non-finite. It
                # is skipped when the update counted no value beyond sum_limit on its way
                # (the Adagrad and Adam kernels): then no sum of the parameters can overflow,
                # in any order.
                param_sum = (0.0 if large == 0 and not frozen_large
                             else sum(float(a.sum()) for a in arrays))
                if not math.isfinite(param_sum + sum_loss + sum_reg):
                    what = ("the parameters became non-finite or overflowed after the update"
                            if not math.isfinite(param_sum) else "the summed loss overflowed")
                    raise _stop(bar, epoch, bi, what, param_sum, ckpt)
                if bar is not None:
                    bar.set(bi + 1, f"loss {sum_loss / (bi * bs + len(idx)):.4f}")
        finally:
            if ahead is not None:
                ahead.close()
        p = Params.from_arrays(arrays)
        entry = {"epoch": epoch + 1, "train_loss": sum_loss / n, "train_penalty": sum_reg / n,
                 "seconds": round(time.perf_counter() - t0, 3)}
        if X_val is not None and len(X_val):
            entry["val_loss"], accuracy = _validation_scores(arch, p, X_val, y_val, loss_fn,
                                                             classify)
            if classify:
                entry["val_accuracy"] = accuracy
        history = history + (entry,)
        if config.patience and (best is None or entry["val_loss"] < history[best[0] - 1]["val_loss"]):
            best = (epoch + 1, [a.copy() for a in arrays])
        if ckpt is not None:
            save_checkpoint(ckpt, arch, p, opt_state, config, epoch + 1, history, best,
                            data_sha, start=start_sha)
        if bar is not None:
            extra = "".join(f" {k} {v:.4f}" for k, v in entry.items() if k.startswith("val_"))
            bar.close(line=f"epoch {epoch + 1}/{config.epochs} loss {entry['train_loss']:.4f}"
                                f"{extra} ({entry['seconds']:.1f}s)")
        if log is not None:
            log(entry)
    if best is not None:
        return TrainResult(Params.from_arrays(best[1]), tuple(history), len(history),
                           resumed_from, best[0])
    # arrays of their own, not views of the flat buffer of all
    return TrainResult(Params.from_arrays([a.copy() for a in arrays]), tuple(history),
                       int(config.epochs), resumed_from)
