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
    semenova_epochs: int = 20
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
        notes="MNIST only, 3 baseline epochs, 2 fine-tuning epochs, 10 noise levels x 2 "
              "repetitions: a smoke run of the whole pipeline, not a reproduction."),
    "full": Preset(
        name="full",
        duque=(DuqueSetup("mnist", baseline_epochs=50, finetune_epochs=20),
               DuqueSetup("fashion-mnist", baseline_epochs=50, finetune_epochs=20),
               DuqueSetup("quickdraw", baseline_epochs=50, finetune_epochs=20,
                          quickdraw_per_class=1000)),  # the offline mirror's smallest classes
        n_levels=100, repetitions=3, semenova_T=1000, semenova_K=300, semenova_epochs=20,
        notes="All datasets, the authors' evaluation grid (100 variances x 3 repetitions)."),
}


def get_preset(name: str, seed: int | None = None) -> Preset:
    try:
        p = PRESETS[name]
    except KeyError:
        raise ValueError(f"preset: unknown {name!r}; known: {', '.join(PRESETS)}") from None
    if seed is not None:
        p = replace(p, seed=seed, duque=tuple(replace(s, seed=seed) for s in p.duque))
    return p
