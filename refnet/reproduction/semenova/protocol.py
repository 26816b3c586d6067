"""The trained networks of Semenova 2022, Sec. IV, as plain settings and cached training.

The paper trains three noiseless 2-hidden-layer networks with Adam (Keras; "to build our
network we have used brain.js") and gives few further settings. What it states is followed;
every choice refnet had to make is a field of :class:`SemenovaSetup`, stored in each model
file and result record:

======  ===============  ==============  ====================  =================================
net     task             sizes           biases                output neurons, loss
======  ===============  ==============  ====================  =================================
``A``   MNIST            784-200-200-10  constant (not         sigmoid, MSE on one-hot targets
                                         optimised)
``B``   Fashion-MNIST    784-200-200-10  optimised             sigmoid, MSE on one-hot targets
``C``   Mackey-Glass     100-200-200-1   optimised             linear, MSE on the next point
======  ===============  ==============  ====================  =================================

Choices (not recorded in the paper):

* Hidden neurons: the plain logistic sigmoid ``1/(1 + e^-x)`` (Sec. IV states it).
* Classifier outputs (A, B): sigmoid neurons trained with MSE on one-hot targets (to our
  knowledge brain.js's default: every layer sigmoid, squared error; not verified). The
  paper reads the class from "the output neuron with the largest value" and Fig. 5a shows
  the nine wrong-class outputs focused at "small mean amplitudes", which fits outputs in
  (0, 1) rather than unbounded logits.
* Regression output (C): one linear neuron (the paper's input/output neurons are linear,
  Sec. II A), MSE, unscaled Mackey-Glass values (about 0.2-1.4).
* Inputs: images as ``x/255`` in [0, 1] (linear input neurons receive the pixel values;
  no standardisation is mentioned).
* Network A's constant biases: drawn once from ``U(-0.2, 0.2)`` (to our knowledge the range
  of brain.js's random initial biases; not verified, the paper records no value) and kept
  fixed (``Architecture(train_biases=False)``). Weights of all networks start from
  ``U(-1/sqrt(n_in), 1/sqrt(n_in))``.
* Adam with Keras's defaults (lr 1e-3, betas 0.9/0.999), shuffled every epoch; batch 128
  (32 in the quick preset, see :func:`setup_for`). A and B train for ``Preset.semenova_epochs``
  epochs (the paper states their error levels, not their epochs: the full preset's count is
  the one that reaches them). C trains until its validation loss stops improving: the last
  ``val_fraction`` of the (chronological) training windows is held out, training stops after
  ``patience`` epochs without improvement (at most ``Preset.semenova_c_epochs``) and keeps the
  best epoch, recorded in the model file.
* C's "87% prediction accuracy" has no definition in the paper; refnet reports NRMSE =
  RMSE / std(target) and R^2 on the test windows beside a persistence forecast (the next
  point = the last input point), and ``100 (1 - NRMSE)`` as one reading of "accuracy".
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ...io import load_cached_model, load_model, save_model
from ...model import Params, forward, init_params, mlp, predict
from ...train import TrainConfig, train

__all__ = ["NETWORKS", "TARGET_CLASS", "SemenovaSetup", "SemenovaData", "setup_for",
           "load_data", "train_network", "task_errors", "regression_scores", "predict_outputs",
           "figure5_inputs"]

#: Network name -> (dataset, output activation, biases optimised).
NETWORKS = {"A": ("mnist", "sigmoid", False), "B": ("fashion-mnist", "sigmoid", True),
            "C": ("mackey-glass", "identity", True)}
#: The class whose images Fig. 5 feeds (5a: digit "5"; 5b: "pullover", label 2).
TARGET_CLASS = {"A": 5, "B": 2}


@dataclass(frozen=True)
class SemenovaSetup:
    """Every setting of one network's training run (see the module docstring)."""

    network: str = "A"
    dataset: str = "mnist"          #: "mnist" | "fashion-mnist" | "mackey-glass" | "synthetic"
    hidden: tuple = (200, 200)      #: stated (Sec. IV)
    hidden_activation: str = "sigmoid"  #: stated: plain logistic sigmoid
    output_activation: str = "sigmoid"  #: refnet's choice (A, B); "identity" for C
    train_biases: bool = True       #: stated: A constant, B optimised
    constant_bias_range: float = 0.2  #: A's fixed biases ~ U(-r, r), refnet's choice
    epochs: int = 20                #: not recorded (C: the most epochs, see patience)
    patience: int = 0               #: early stopping on the validation windows (C), 0: off
    val_fraction: float = 0.2       #: C: the last part of the training windows, held out
    lr: float = 1e-3                #: Adam, Keras default (not recorded)
    batch_size: int = 128           #: not recorded
    n_train: int | None = None      #: use n training samples, every class in proportion (quick preset)
    mg_points: int = 6000           #: Mackey-Glass samples (80% train windows, 20% test)
    synthetic_classes: int = 10     #: "synthetic": Gaussian blobs, a stand-in for tests
    synthetic_dim: int = 16
    seed: int = 0

    def key(self) -> str:
        """A short hash of the settings: cached models are reused only for identical settings."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    @property
    def regression(self) -> bool:
        return self.dataset == "mackey-glass"


@dataclass(frozen=True)
class SemenovaData:
    """Train/test arrays of one task plus the loaders' provenance records (validation
    arrays: C's held-out windows when early stopping, else ``None``)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    provenance: dict
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


def setup_for(network: str, preset) -> SemenovaSetup:
    """The :class:`SemenovaSetup` of ``network`` ("A", "B", "C") under ``preset``.

    The quick preset trains on the first 5 000 training images with batch 32 (Keras's
    default), so that its 3 epochs leave the initial MSE plateau (all outputs ~0.1; with
    batch 128 they do not); the full preset uses batch 128 on all images. ``preset.extra
    ["semenova_setup"]`` (a dict of field values) overrides any field (used by the tests).
    """
    if network not in NETWORKS:
        raise ValueError(f"network: unknown {network!r}; known: {', '.join(NETWORKS)}")
    dataset, output, biases = NETWORKS[network]
    quick = preset.name == "quick"
    regression = dataset == "mackey-glass"
    s = SemenovaSetup(network, dataset, output_activation=output, train_biases=biases,
                      epochs=int(preset.semenova_c_epochs if regression else preset.semenova_epochs),
                      patience=int(preset.semenova_c_patience) if regression else 0,
                      seed=int(preset.seed),
                      n_train=5000 if quick else None, batch_size=32 if quick else 128)
    over = dict(preset.extra.get("semenova_setup", {}))
    if s.regression:
        over.pop("dataset", None)  # the Mackey-Glass task is generated, never substituted
        over.pop("n_train", None)
    return replace(s, **over)


def _synthetic(setup: SemenovaSetup):
    """Seeded Gaussian blobs in [0, 1]-ish pixel range: (X_tr, y_tr, X_te, y_te, info)."""
    rng = np.random.default_rng(setup.seed)
    k, d = setup.synthetic_classes, setup.synthetic_dim
    centres = rng.uniform(0.0, 1.0, (k, d))
    out = []
    for m in (600, 300):
        y = rng.integers(0, k, m)
        out += [np.clip(centres[y] + rng.normal(scale=0.15, size=(m, d)), 0, 1), y]
    return (*out, {"dataset": "synthetic", "source": "generated", "classes": k, "dim": d})


def load_data(setup: SemenovaSetup) -> SemenovaData:
    """The arrays of ``setup.dataset``; images as ``x/255``, Mackey-Glass unscaled."""
    from ...datasets import load_dataset
    from ...datasets.split import stratified_subset

    if setup.dataset == "synthetic":
        X_tr, y_tr, X_te, y_te, info = _synthetic(setup)
        return SemenovaData(X_tr, y_tr, X_te, y_te, tuple(map(str, range(setup.synthetic_classes))),
                            {"train": info, "test": info, "n_train_used": len(X_tr)})
    opts = {"n_points": setup.mg_points} if setup.regression else {"normalize": False}
    tr = load_dataset(setup.dataset, "train", **opts)
    te = load_dataset(setup.dataset, "test", **opts)
    X, y = tr.X, tr.y
    if setup.n_train:  # every class in proportion, mixed order (never the first rows)
        keep = stratified_subset(y, min(int(setup.n_train), len(y)), rng=setup.seed)
        X, y = X[keep], y[keep]
    if setup.regression and setup.patience:  # chronological: the last windows are held out
        n_val = int(round(setup.val_fraction * len(y)))
        return SemenovaData(X[:-n_val], y[:-n_val], te.X, te.y, tuple(tr.classes),
                            {"train": tr.info, "test": te.info, "n_train_used": int(len(y) - n_val),
                             "n_val": n_val, "validation": "the last windows of the training part"},
                            X[-n_val:], y[-n_val:])
    return SemenovaData(X, y, te.X, te.y, tuple(tr.classes),
                        {"train": tr.info, "test": te.info, "n_train_used": int(len(X))})


def _targets(setup: SemenovaSetup, y: np.ndarray, n_out: int) -> np.ndarray:
    """One-hot targets for the MSE-trained classifiers; the next point for C."""
    if setup.regression:
        return np.asarray(y, float).reshape(-1, 1)
    return np.eye(n_out)[np.asarray(y, int)]


def task_errors(setup: SemenovaSetup, arch, params: Params, data: SemenovaData) -> dict:
    """Train and test error of a trained network, in percent.

    Classifiers: misclassification rate (argmax of the outputs, "the output neuron with the
    largest value", Sec. IV). Regression (C): ``nrmse`` = RMSE / std(target), ``accuracy`` =
    100 (1 - NRMSE) (one reading of the paper's undefined "prediction accuracy") and R^2, each
    also for the persistence forecast (next point = last input point) under ``persistence``.
    """
    res = {}
    for split, X, y in (("train", data.X_train, data.y_train), ("test", data.X_test, data.y_test)):
        if setup.regression:
            res[split] = regression_scores(predict_outputs(arch, params, X)[:, 0], y)
            res[split]["persistence"] = regression_scores(X[:, -1], y)
        else:
            res[split] = {"error": 100 * float(np.mean(predict(arch, params, X) != y))}
    return res


def regression_scores(pred, y) -> dict:
    """RMSE, NRMSE = RMSE / std(y), R^2 = 1 - NRMSE^2 and 100 (1 - NRMSE) of ``pred`` (n,)."""
    rmse = float(np.sqrt(np.mean((np.asarray(pred) - y) ** 2)))
    nrmse = rmse / float(np.std(y))
    return {"rmse": rmse, "nrmse": nrmse, "accuracy": 100 * (1 - nrmse), "r2": 1 - nrmse ** 2}


def predict_outputs(arch, params: Params, X, batch_size: int = 4096) -> np.ndarray:
    """Clean network outputs (n, n_out)."""
    return np.concatenate([forward(arch, params, X[i:i + batch_size])[0]
                           for i in range(0, len(X), batch_size)])


def _initial_params(setup: SemenovaSetup, arch) -> Params:
    rng = np.random.default_rng(setup.seed)
    p = init_params(arch, "torch", rng=rng)
    if setup.train_biases:
        return p
    r = setup.constant_bias_range
    return Params(p.W, tuple(rng.uniform(-r, r, b.shape) for b in p.b))


def train_network(setup: SemenovaSetup, data: SemenovaData, folder, progress=sys.stderr,
                  log=print) -> tuple:
    """Train (or load from ``folder``) one network: ``(arch, params, meta)``.

    Saved as ``semenova-<network>-<dataset>-<key>.npz``; a checkpoint beside it is written every
    epoch, so an interrupted run resumes. ``meta["errors"]`` holds :func:`task_errors`.
    """
    path = Path(folder) / f"semenova-{setup.network}-{setup.dataset}-{setup.key()}.npz"
    cached = load_cached_model(path, log)  # a damaged one is set aside and trained again
    if cached is not None:
        log(f"  Semenova network {setup.network}: cached ({path.name})")
        return cached
    n_out = 1 if setup.regression else int(max(data.y_train.max(), data.y_test.max())) + 1
    arch = mlp((data.X_train.shape[1],) + tuple(setup.hidden) + (n_out,),
               setup.hidden_activation, setup.output_activation, setup.train_biases)
    config = TrainConfig(epochs=setup.epochs, batch_size=setup.batch_size, optimizer="adam",
                         lr=setup.lr, loss="mse", shuffle=True, seed=setup.seed,
                         patience=setup.patience if data.X_val is not None else 0)
    log(f"  Semenova network {setup.network} ({setup.dataset}): training "
        + (f"until the validation loss stops improving ({setup.patience} epochs), at most "
           if config.patience else "") + f"{setup.epochs} epochs")
    val = ((data.X_val, _targets(setup, data.y_val, n_out)) if data.X_val is not None
           else (None, None))
    res = train(arch, _initial_params(setup, arch), data.X_train,
                _targets(setup, data.y_train, n_out), config, *val,
                checkpoint=path.with_suffix(".ckpt.npz"), progress=progress)
    save_model(path, arch, res.params, {
        "setup": asdict(setup), "train_config": config.as_dict(), "history": list(res.history),
        "epochs_done": res.epochs_done, "best_epoch": res.best_epoch,
        "errors": task_errors(setup, arch, res.params, data), "data": data.provenance})
    path.with_suffix(".ckpt.npz").unlink(missing_ok=True)
    return load_model(path)


def figure5_inputs(setup: SemenovaSetup, data: SemenovaData, T: int) -> tuple[np.ndarray, dict]:
    """The T inputs of a Fig. 5 panel (Semenova 2022, Sec. IV) and a provenance dict.

    A, B: test images of :data:`TARGET_CLASS`; MNIST's test set has only 892 fives, so for
    T > 892 the rest come from the training images of that class (counts recorded).
    C: the first T test windows. Returns X (T, n_in).
    """
    if setup.regression:
        X = data.X_test[:T]
        return X, {"source": "test windows", "n_test": int(len(X))}
    c = TARGET_CLASS[setup.network] % (int(data.y_test.max()) + 1)
    te = data.X_test[data.y_test == c][:T]
    tr = data.X_train[data.y_train == c][:max(0, T - len(te))]
    return np.concatenate([te, tr]), {"class": int(c), "n_test": int(len(te)),
                                      "n_train": int(len(tr))}
