"""The presets of ``refnet reproduce``: plain frozen settings, visible in every result file."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .duque.protocol import DuqueSetup

__all__ = ["Preset", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """What one ``refnet reproduce`` run computes.

    ``duque`` holds one :class:`DuqueSetup` per dataset of Duque 2024, Fig. 4; the sweep uses
    ``n_levels`` log-spaced variances in [1e-3, 1] with ``repetitions`` passes over the test
    set (the authors: 100 and 3). ``semenova_*`` scale the Semenova 2022 Monte-Carlo runs
    (the paper: T = 1000 inputs, K = 300 repeats).
    """

    name: str
    duque: tuple = ()
    n_levels: int = 100
    repetitions: int = 3
    semenova_T: int = 1000
    semenova_K: int = 300
    semenova_epochs: int = 20       #: networks A and B
    semenova_c_epochs: int = 20     #: network C: at most this many (early stopping)
    semenova_c_patience: int = 0    #: network C: epochs without validation improvement; 0: off
    seed: int = 0
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def variances(self) -> np.ndarray:
        return np.logspace(-3, 0, self.n_levels)

    def setup(self, dataset: str) -> DuqueSetup:
        for s in self.duque:
            if s.dataset == dataset:
                return s
        raise ValueError(f"dataset: preset {self.name!r} has no {dataset!r} runs")


PRESETS = {
    "quick": Preset(
        name="quick",
        duque=(DuqueSetup("mnist", baseline_epochs=3, finetune_epochs=2),),
        n_levels=10, repetitions=2, semenova_T=200, semenova_K=100, semenova_epochs=3,
        semenova_c_epochs=3,
        notes="MNIST only, 3 baseline epochs, 2 fine-tuning epochs, 10 noise levels x 2 "
              "repetitions: a smoke run of the whole pipeline, not a reproduction."),
    "full": Preset(
        name="full",
        # Settings the papers did not record are chosen here and measured against their
        # alternatives by the envelope preset (refnet/reproduction/duque/envelope.py):
        # baseline 50 epochs (the authors' configs of the period: 50-70); the Eq. 7 penalty on
        # sigma'^2 (the authors' code until late August 2024) for Fashion-MNIST (Fashion
        # coefficients) and QuickDraw (MNIST coefficients), on sigma' (the final code) for
        # MNIST: per dataset the variant the envelope finds nearer the paper (both are
        # measured there); QuickDraw with every mirror row (1000-4960 per class, stratified).
        # Fine-tuning: 10 epochs from the baseline (not recorded; the last recorded
        # regularized config ran 120 epochs at lr 5e-6, refnet fine-tunes at the baseline lr).
        duque=(DuqueSetup("mnist", baseline_epochs=50, finetune_epochs=10),
               DuqueSetup("fashion-mnist", baseline_epochs=50, finetune_epochs=10,
                          eq7_preset="addunc_sigm_sq_fashion"),
               DuqueSetup("quickdraw", baseline_epochs=50, finetune_epochs=10,
                          eq7_preset="addunc_sigm_sq", quickdraw_per_class=None)),
        # Semenova A and B: 40 epochs reach the paper's error levels (A ~1 %, B 5 % / 10 %);
        # C: early stopping on its last training windows (patience 20, at most 300 epochs).
        n_levels=100, repetitions=3, semenova_T=1000, semenova_K=300, semenova_epochs=40,
        semenova_c_epochs=300, semenova_c_patience=20,
        notes="All datasets, the authors' evaluation grid (100 variances x 3 repetitions)."),
}
PRESETS["envelope"] = Preset(
    name="envelope", duque=PRESETS["full"].duque, n_levels=2, repetitions=3,
    notes="Duque 2024 only: every setting the paper did not record moved one at a time from the "
          "full preset's choice, each cell a real training run (refnet/reproduction/duque/envelope.py); "
          "clean accuracy and variance 1e-3 / 1 x 3 repetitions per cell.")


def get_preset(name: str, seed: int | None = None) -> Preset:
    try:
        p = PRESETS[name]
    except KeyError:
        raise ValueError(f"preset: unknown {name!r}; known: {', '.join(PRESETS)}") from None
    if seed is not None:
        p = replace(p, seed=seed, duque=tuple(replace(s, seed=seed) for s in p.duque))
    return p
