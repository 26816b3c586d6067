"""The presets of ``refnet reproduce``: plain frozen settings, visible in every result file."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .duque.protocol import DuqueSetup

__all__ = ["Preset", "PRESETS", "get_preset", "chosen_by_outcome_lines", "chosen_setting"]


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
    #: Settings the papers did not record that were chosen because of the outcome they give
    #: (the developers' guide allows it only with the reason and the envelope around it
    #: stated): ``((dataset, setting, reason), ...)``; the report prints each in its header
    #: with the envelope's range over that setting (:func:`chosen_by_outcome_lines`) and marks
    #: every number that setting moves.
    chosen_by_outcome: tuple = ()
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
        # baseline 50 epochs (the authors' configs of the period: 50-70; Fashion-MNIST 150, see
        # below); the Eq. 7 penalty on sigma'^2 (the authors' code until late August 2024) for
        # Fashion-MNIST (Fashion coefficients) and QuickDraw (MNIST coefficients), on sigma'
        # (the final code) for MNIST: per dataset the variant the envelope finds nearer the
        # paper (both are measured there); QuickDraw with every mirror row (1000-4960 per
        # class, stratified).
        # Fine-tuning: 10 epochs from the baseline (not recorded; the last recorded
        # regularized config ran 120 epochs at lr 5e-6, refnet fine-tunes at the baseline lr).
        # Fashion-MNIST's baseline runs 150 epochs, chosen by outcome (chosen_by_outcome below).
        duque=(DuqueSetup("mnist", baseline_epochs=50, finetune_epochs=10),
               DuqueSetup("fashion-mnist", baseline_epochs=150, finetune_epochs=10,
                          eq7_preset="addunc_sigm_sq_fashion"),
               DuqueSetup("quickdraw", baseline_epochs=50, finetune_epochs=10,
                          eq7_preset="addunc_sigm_sq", quickdraw_per_class=None)),
        # Semenova A and B: 40 epochs reach the paper's error levels (A ~1 %, B 5 % / 10 %);
        # C: early stopping on its last training windows (patience 20); the cap of 3000 epochs
        # is far above where it stops, so the validation loss, not the cap, ends the run.
        n_levels=100, repetitions=3, semenova_T=1000, semenova_K=300, semenova_epochs=40,
        semenova_c_epochs=3000, semenova_c_patience=20,
        notes="All datasets, the authors' evaluation grid (100 variances x 3 repetitions).",
        chosen_by_outcome=(
            ("fashion-mnist", "baseline_epochs",
             "the paper records no epochs (the authors' configs of the period: 50-70); at 50 "
             "epochs the standard model's drop at variance 1 falls short of the paper's by more "
             "than the tolerance and it grows with the epochs, so the envelope's epoch grid was "
             "extended to 200 and the preset takes the smallest count of that grid at which "
             "the clean accuracy and the drop both lie within the report's tolerances of the "
             "paper's numbers"),)),
}
PRESETS["envelope"] = Preset(
    name="envelope", duque=PRESETS["full"].duque, n_levels=2, repetitions=3,
    chosen_by_outcome=PRESETS["full"].chosen_by_outcome,
    notes="Duque 2024 only: every setting the paper did not record moved one at a time from the "
          "full preset's choice, each cell a real training run (refnet/reproduction/duque/envelope.py); "
          "clean accuracy and variance 1e-3 / 1 x 3 repetitions per cell.")


def chosen_setting(preset: Preset, envelope_key: str):
    """The ``(dataset, setting, reason)`` of ``preset.chosen_by_outcome`` that moves the
    envelope quantity ``envelope_key`` ("<dataset>/<quantity>"), or None."""
    from .duque.envelope import SETTINGS

    ds, _, quantity = envelope_key.partition("/")
    for entry in preset.chosen_by_outcome:
        if entry[0] == ds and quantity in SETTINGS[entry[1]][0]:
            return entry
    return None


def chosen_by_outcome_lines(preset: Preset, envelope: dict | None) -> list:
    """One line per ``preset.chosen_by_outcome`` entry, as the report header prints it: the
    setting and its value, the reason, and the envelope's range over that setting's cells for
    every quantity it moves (from ``envelope``, the envelope run's ``envelope.json``; "not
    measured" without it)."""
    from .duque.envelope import QUANTITIES, SETTINGS

    lines = []
    for ds, setting, reason in preset.chosen_by_outcome:
        value = getattr(preset.setup(ds), setting)
        ranges = []
        for q in SETTINGS[setting][0]:
            e = (envelope or {}).get(f"{ds}/{q}")
            # null (every row, quickdraw_per_class) sorts last, as its grid lists it
            cells = sorted((c for c in (e or {}).get("cells", []) if c[0] == setting),
                           key=lambda c: (c[1] is None, () if c[1] is None else c[1], c[2]))
            what, _, unit = QUANTITIES[q]
            if not cells:
                ranges.append(f"{what}: not measured")
                continue
            vals = [c[2] for c in cells]
            at = [c[2] for c in cells if c[1] == value]
            ranges.append(f"{what}: {min(vals):.2f}-{max(vals):.2f} {unit} over {setting} = "
                          + ", ".join(str(c[1]) for c in cells)
                          + (f" (at {value}: {at[0]:.2f} {unit})" if at else ""))
        lines.append(f"{ds} {setting} = {value}: {reason}. Envelope: " + "; ".join(ranges))
    return lines


def get_preset(name: str, seed: int | None = None) -> Preset:
    try:
        p = PRESETS[name]
    except KeyError:
        raise ValueError(f"preset: unknown {name!r}; known: {', '.join(PRESETS)}") from None
    if seed is not None:
        p = replace(p, seed=seed, duque=tuple(replace(s, seed=seed) for s in p.duque))
    return p
