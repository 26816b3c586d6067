"""The experimental protocol of Duque 2024, Sec. 4, as plain settings and cached training.

The authors' code (``shared/notes/reference-code-facts.md``) trains a 784-300-300-C sigmoid
MLP with Adagrad (lr 0.01, batch 128, no shuffling, 48k/12k split), then fine-tunes from that
baseline a noise-aware model and a regularized model. Settings the authors never recorded
(epochs, the noise-aware variance used for the paper, the Eq. 4 lambda, the fine-tuning
schedule of the paper's runs) are fields of :class:`DuqueSetup`, visible in every result file.

Five models per dataset (:data:`MODES`):

=====================  ==========================================================
``standard``           baseline, clean training
``noise_aware_cor``    fine-tuned with additive correlated noise after each hidden layer
``noise_aware_unc``    fine-tuned with additive uncorrelated noise
``regularized_cor``    fine-tuned with the row-sum penalty (Duque 2024, Eq. 4)
``regularized_unc``    fine-tuned with the saturation penalty (Duque 2024, Eq. 7)
=====================  ==========================================================
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...io import load_cached_model, load_model, save_model
from ...model import init_params, mlp
from ...noise import NoiseSpec, noise_config
from ...regularizers import regularizer_preset
from ...train import TrainConfig, evaluate_accuracy, train

__all__ = ["DuqueSetup", "MODES", "DuqueData", "load_data", "train_models", "train_model",
           "train_and_save", "model_path", "architecture", "mode_config"]

MODES = ("standard", "noise_aware_cor", "noise_aware_unc", "regularized_cor", "regularized_unc")
#: The noise type each noise kind of Fig. 4 means (additive: Duque 2024, Sec. 2).
KIND_NOISE = {"cor": "add_cor", "unc": "add_unc"}
#: Coefficient set of the authors' code for the Eq. 7 penalty, per dataset (QuickDraw: none
#: was recorded, the MNIST set is used), and its sigma'^2 twin (the code until late August
#: 2024). Which of the two the paper's runs used is not recorded: ``DuqueSetup.eq7_preset``
#: chooses, the envelope measures both.
EQ7_PRESET = {"mnist": "addunc_sigm_mnist", "fashion-mnist": "addunc_sigm_fashion",
              "quickdraw": "addunc_sigm_mnist", "synthetic": "addunc_sigm_mnist"}
EQ7_SQUARED = {"addunc_sigm_mnist": "addunc_sigm_sq", "addunc_sigm_fashion": "addunc_sigm_sq_fashion"}
#: Settings each fine-tuned model depends on besides the baseline's.
_FINETUNE = ("finetune_epochs", "finetune_lr")
MODE_FIELDS = {"noise_aware_cor": _FINETUNE + ("noise_aware_variance",),
               "noise_aware_unc": _FINETUNE + ("noise_aware_variance",),
               "regularized_cor": _FINETUNE + ("eq4_preset", "eq4_lambda"),
               "regularized_unc": _FINETUNE + ("eq7_preset", "eq7_lambda")}
#: Settings that shape the standard (baseline) model; the others only shape fine-tuning.
BASELINE_FIELDS = ("dataset", "hidden", "baseline_epochs", "lr", "batch_size", "shuffle", "n_train",
                   "n_val", "quickdraw_classes", "quickdraw_per_class", "seed")


#: Datasets whose files hold the classes one after another: split stratified.
CLASS_SORTED = ("quickdraw",)


@dataclass(frozen=True)
class DuqueSetup:
    """Every setting of one dataset's runs. Defaults follow the authors' code where recorded."""

    dataset: str = "mnist"
    hidden: tuple = (300, 300)
    baseline_epochs: int = 30          #: not recorded (configs of the period: 50-70)
    finetune_epochs: int = 10          #: not recorded for the paper's runs
    lr: float = 0.01                   #: Adagrad, recorded
    finetune_lr: float = 0.01          #: refnet's choice (last recorded regularized run: 5e-6 x 120 epochs)
    batch_size: int = 128              #: recorded
    shuffle: bool = False              #: recorded: the authors never shuffle
    noise_aware_variance: float = 0.5  #: recorded configs used 0.2 and 0.5
    eq4_lambda: float = 6e-3           #: not recorded for Eq. 4 ("general lambda at the end: 6e-3")
    eq4_preset: str = "eq4"            #: the paper's Eq. 4; "custom_sum" is the code's x30 variant
    eq7_preset: str | None = None      #: None: EQ7_PRESET[dataset] (sigma'); or its EQ7_SQUARED twin
    eq7_lambda: float | None = None    #: None: the code set's lambda (MNIST 6e-3, Fashion 1.2e-2)
    n_train: int | None = None         #: use n training images, every class in proportion (seeded)
    n_val: int = 12000                 #: recorded 48k/12k split
    quickdraw_classes: str = "mirror-19"
    quickdraw_per_class: int | None = None  #: rows per class; None: every mirror row (1000-4960)
    seed: int = 0

    def key(self) -> str:
        """A short hash of the settings: cached models are reused only for identical settings."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def mode_key(self, mode: str) -> str:
        """The hash of the settings the model of ``mode`` depends on (:data:`MODE_FIELDS`): a
        model is reused by every setup that agrees on them (the Eq. 7 preset resolved, so
        ``eq7_preset=None`` and its explicit name share one model)."""
        if mode == "standard":
            return self.baseline_key()
        d = {k: v for k, v in asdict(self).items() if k in BASELINE_FIELDS + MODE_FIELDS[mode]}
        if mode == "regularized_unc":
            d["eq7_preset"] = self.eq7
        return mode[:1] + hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:9]

    def baseline_key(self) -> str:
        """The hash of the settings the standard model depends on (:data:`BASELINE_FIELDS`):
        setups differing only in fine-tuning settings share one trained baseline."""
        d = {k: v for k, v in asdict(self).items() if k in BASELINE_FIELDS}
        return "b" + hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:9]

    @property
    def eq7(self) -> str:
        """The Eq. 7 regularizer preset of the ``regularized_unc`` model."""
        return self.eq7_preset or EQ7_PRESET[self.dataset]


@dataclass(frozen=True)
class DuqueData:
    """Train/validation/test arrays of one dataset plus the loaders' provenance records."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    provenance: dict


def _synthetic(setup: DuqueSetup, n: int = 1200, d: int = 32, k: int = 4):
    """Seeded Gaussian blobs (``dataset="synthetic"``): a stand-in for tests, no download."""
    from ...datasets import Dataset

    rng = np.random.default_rng(setup.seed)
    centers = rng.normal(scale=1.5, size=(k, d))
    out = []
    for split, m in (("train", n), ("test", n // 4)):
        y = rng.integers(0, k, m)
        X = centers[y] + rng.normal(size=(m, d))
        out.append(Dataset(X, y, tuple(str(c) for c in range(k)),
                           {"dataset": "synthetic", "split": split, "source": "generated", "n": m}))
    return out


def load_data(setup: DuqueSetup) -> DuqueData:
    """The arrays of ``setup.dataset`` ("mnist", "fashion-mnist", "quickdraw" or "synthetic")."""
    from ...datasets import load_dataset
    from ...datasets.split import stratified_subset, train_val_split

    opts = {}
    if setup.dataset == "quickdraw":
        opts = {"classes": setup.quickdraw_classes, "per_class": setup.quickdraw_per_class,
                "seed": setup.seed}
    if setup.dataset == "synthetic":
        train_ds, test_ds = _synthetic(setup)
    else:
        train_ds = load_dataset(setup.dataset, "train", **opts)
        test_ds = load_dataset(setup.dataset, "test", **opts)
    X, y = train_ds.X, train_ds.y
    # a class-sorted file (QuickDraw) is split stratified; the authors' random_split otherwise
    stratify = setup.dataset in CLASS_SORTED
    if setup.n_train:  # a stratified subset: the first rows of a sorted file are a few classes
        keep = stratified_subset(y, min(int(setup.n_train), len(y)), rng=setup.seed)
        X, y = X[keep], y[keep]
    n_val = min(setup.n_val, len(X) // 5)
    X_tr, y_tr, X_val, y_val = train_val_split(X, y, n_val, rng=setup.seed, stratify=stratify)
    return DuqueData(X_tr, y_tr, X_val, y_val, test_ds.X, test_ds.y, tuple(train_ds.classes),
                     {"train": train_ds.info, "test": test_ds.info,
                      "n_train_used": int(len(X_tr)), "n_val": int(n_val),
                      "split": {"kind": "stratified" if stratify else "random",
                                "order": "one seeded permutation (as torch's random_split)",
                                "seed": setup.seed, "n_train_subset": setup.n_train}})


def mode_config(setup: DuqueSetup, mode: str, n_layers: int) -> TrainConfig:
    """The :class:`TrainConfig` of ``mode`` (one of :data:`MODES`)."""
    common = dict(batch_size=setup.batch_size, optimizer="adagrad", shuffle=setup.shuffle,
                  seed=setup.seed)
    if mode == "standard":
        return TrainConfig(epochs=setup.baseline_epochs, lr=setup.lr, **common)
    ft = dict(epochs=setup.finetune_epochs, lr=setup.finetune_lr, **common)
    if mode.startswith("noise_aware_"):
        spec = NoiseSpec.single(KIND_NOISE[mode[-3:]], setup.noise_aware_variance)
        return TrainConfig(noise=noise_config("duque", spec, n_layers), **ft)
    if mode == "regularized_cor":
        return TrainConfig(regularizers=(regularizer_preset(setup.eq4_preset, setup.eq4_lambda),), **ft)
    if mode == "regularized_unc":
        return TrainConfig(regularizers=(regularizer_preset(setup.eq7, setup.eq7_lambda),), **ft)
    raise ValueError(f"mode: unknown {mode!r}; known: {', '.join(MODES)}")


def model_path(setup: DuqueSetup, folder, mode: str) -> Path:
    """Where the model of ``mode`` is saved: ``<folder>/<dataset>-<mode>-<key>.npz``."""
    return Path(folder) / f"{setup.dataset}-{mode}-{setup.mode_key(mode)}.npz"


def architecture(data: DuqueData, setup: DuqueSetup):
    """The sigmoid MLP of ``setup`` for ``data``: inputs x hidden x classes."""
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    return mlp((data.X_train.shape[1],) + tuple(setup.hidden) + (n_classes,), "sigmoid")


def train_model(setup: DuqueSetup, data: DuqueData, folder, mode: str, progress=sys.stderr,
                log=print):
    """Train (or load from ``folder``) the model of ``mode``: ``(arch, params, meta)``.

    The standard model starts from the seeded initialisation; every other mode fine-tunes the
    standard model saved in ``folder`` (train it first). Training writes a checkpoint beside
    the model every epoch, so an interrupted run resumes where it stopped.
    """
    path = model_path(setup, folder, mode)
    cached = load_cached_model(path, log)  # a damaged one is set aside and trained again
    if cached is not None:
        log(f"  {setup.dataset} {mode}: cached ({path.name})")
        return cached
    arch = architecture(data, setup)
    if mode == "standard":
        start = init_params(arch, "torch", rng=setup.seed)
    else:
        start = load_model(model_path(setup, folder, "standard"))[1]
    config = mode_config(setup, mode, arch.n_layers)
    log(f"  {setup.dataset} {mode}: training {config.epochs} epochs")
    return train_and_save(path, setup, data, mode, arch, start, config, progress=progress)


def train_and_save(path: Path, setup: DuqueSetup, data: DuqueData, mode: str, arch, start,
                   config: TrainConfig, *, progress=sys.stderr):
    """Train from ``start`` with ``config`` (resuming from the epoch checkpoint beside
    ``path``), save the model at ``path`` with its settings, history and test accuracy, then
    drop the checkpoint; returns the saved model ``(arch, params, meta)``."""
    res = train(arch, start, data.X_train, data.y_train, config, data.X_val, data.y_val,
                checkpoint=path.with_suffix(".ckpt.npz"), progress=progress)
    acc = evaluate_accuracy(arch, res.params, data.X_test, data.y_test)
    save_model(path, arch, res.params, {
        "mode": mode, "setup": asdict(setup), "train_config": config.as_dict(),
        "history": list(res.history), "test_accuracy": acc, "data": data.provenance})
    path.with_suffix(".ckpt.npz").unlink(missing_ok=True)
    return load_model(path)


def train_models(setup: DuqueSetup, data: DuqueData, folder, modes=MODES, progress=sys.stderr,
                 log=print) -> dict:
    """Train (or load from ``folder``) the models of ``modes``: ``{mode: (arch, params, meta)}``,
    one after the other with :func:`train_model` (the standard model first: the others
    fine-tune it)."""
    out = {}
    for mode in ["standard"] + [m for m in modes if m != "standard"]:
        out[mode] = train_model(setup, data, folder, mode, progress=progress, log=log)
    return {m: out[m] for m in modes}
