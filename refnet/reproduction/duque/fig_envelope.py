"""Duque 2024, Sec. 4: the settings envelope of the printed numbers (:mod:`.envelope`).

Every cell moves one unrecorded setting of the full preset's setup (baseline epochs, Eq. 7
variant and lambda, Eq. 4 lambda, noise-aware variance, QuickDraw rows per class), trains what
that setting changes (cached models are reused; give ``--out`` the full preset's folder or link
its ``models/`` to share them) and measures the printed quantities. One result file per cell;
``envelope.json`` sums them up for the full preset's report.

    refnet reproduce --preset envelope [--seed 0] [--out DIR]
    python validation/duque_envelope.py --preset envelope [--seed 0] [--out DIR]
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ...io import atomic_write_bytes
from ..report import FigureEntry
from ..results import load_results, save_figure, save_results
from . import envelope as ev
from . import protocol as dq

NAME = "duque_envelope"
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "quickdraw": "QuickDraw",
          "synthetic": "synthetic blobs (test stand-in)"}
#: Duque 2024, Sec. 4, the printed numbers by quantity key, and the full report's tolerances.
PAPER = {"mnist": {"std_clean": 98.06, "reg_clean": 95.62, "std_drop": 41.52, "reg_drop": 4.77,
                   "flat": 0.0},
         "fashion-mnist": {"std_clean": 87.78, "reg_clean": 85.37, "std_drop": 53.86,
                           "reg_drop": 7.22, "flat": 0.0},
         "quickdraw": {"std_clean": 78.11, "reg_clean": 75.12, "std_drop": 65.58,
                       "reg_drop": 35.29, "flat": 0.0}}
TOLERANCE = {"std_clean": 1.0, "reg_clean": 1.5, "std_drop": 5.0, "reg_drop": 3.0, "flat": 1.0}
LABEL = {"baseline_epochs": "baseline epochs", "eq7_preset": "Eq. 7 variant",
         "eq7_lambda": r"Eq. 7 $\lambda$", "eq4_lambda": r"Eq. 4 $\lambda$",
         "noise_aware_variance": r"noise-aware variance $\sigma^2$",
         "quickdraw_per_class": "QuickDraw rows per class"}
VARIANT = {"addunc_sigm_mnist": r"$\sigma'$", "addunc_sigm_fashion": r"$\sigma'$",
           "addunc_sigm_sq": r"$\sigma'^2$", "addunc_sigm_sq_fashion": r"$\sigma'^2$"}


def _cell_settings(preset):
    return tuple(preset.extra.get("envelope_settings", ev.SETTINGS))


def compute(preset, out, log=print) -> None:
    out = Path(out)
    for base in preset.duque:
        # extra["envelope_skip_preset"]: leave out the cells that are the preset's own run
        # (measured once the full preset's models exist)
        skip = preset.extra.get("envelope_skip_preset", False)
        todo = [c for c in ev.cells(base, _cell_settings(preset))
                if load_results(out, c.name) is None
                and not (skip and ev.same_models(c.setup, base, c.quantities))]
        if not todo:
            log(f"{NAME} {base.dataset}: cached")
            continue
        data = {}
        epochs = [c.value for c in todo if c.setting == "baseline_epochs"]
        if epochs:
            data[base.quickdraw_per_class] = dq.load_data(base)
            ev.train_baselines(base, [c.value for c in ev.cells(base, ("baseline_epochs",))],
                               data[base.quickdraw_per_class], out / "models", log=log)
        for cell in todo:
            key = cell.setup.quickdraw_per_class
            if key not in data:
                data[key] = dq.load_data(cell.setup)
            models = dq.train_models(cell.setup, data[key], out / "models", modes=cell.modes,
                                     log=log)
            outcomes = ev.measure(cell, models, data[key], preset.repetitions)
            log(f"  {cell.name}: " + ", ".join(f"{k} {v:.2f}" for k, v in outcomes.items()))
            save_results(out, cell.name, {}, {
                "preset": preset.name, "seed": cell.setup.seed, "dataset": cell.dataset,
                "setting": cell.setting, "value": cell.value, "outcomes": outcomes,
                "setup": asdict(cell.setup), "repetitions": preset.repetitions,
                "data": data[key].provenance})
    summary = summarise(out, preset)
    atomic_write_bytes(out / "envelope.json", json.dumps(summary, indent=1).encode())


def _results(out, preset):
    found = []
    for base in preset.duque:
        for c in ev.cells(base, _cell_settings(preset)):
            r = load_results(out, c.name)
            if r is not None:
                found.append(r[1])
    return found


def summarise(out, preset) -> dict:
    """``{"<dataset>/<quantity>": {lo, hi, preset, paper, tolerance, inside, cells}}``."""
    ranges = ev.envelope_ranges(_results(out, preset), preset.duque)
    summary = {}
    for (ds, q), e in ranges.items():
        paper = PAPER.get(ds, {}).get(q)
        tol = TOLERANCE.get(q)
        inside = (None if paper is None else
                  bool(e["lo"] - tol <= paper <= e["hi"] + tol))
        summary[f"{ds}/{q}"] = {"lo": e["lo"], "hi": e["hi"], "preset": e["preset"],
                                "paper": paper, "tolerance": tol, "inside": inside,
                                "cells": [list(c) for c in e["cells"]]}
    return summary


def _fmt(setting, v):
    if setting == "eq7_preset":
        return VARIANT.get(v, v)
    if setting == "quickdraw_per_class":
        return "all" if v is None else str(v)
    return f"{v:g}"


#: Short legend names of the quantities (Duque 2024, Sec. 4).
SHORT = {"std_clean": "standard, clean", "reg_clean": "regularized (Eq. 7), clean",
         "std_drop": r"standard, drop at $\sigma^2 = 1$",
         "reg_drop": r"regularized (Eq. 7), drop at $\sigma^2 = 1$",
         "flat": r"Eq. 4, correlated: lost from $\sigma^2$ = 1e-3 to 1",
         "na_drop": r"noise-aware, drop at $\sigma^2 = 1$"}
COLOR = {"std_clean": "C0", "std_drop": "C0", "reg_clean": "C2", "reg_drop": "C2",
         "flat": "C3", "na_drop": "C1"}


#: How a panel marks the full preset's value of its setting (key: chosen by outcome).
CHOICE_MARKER = {False: dict(marker="s", ms=11, mfc="none", mec="k", mew=1.2),
                 True: dict(marker="s", ms=11, mfc="none", mec="firebrick", mew=2.2)}


def _full_choice(ds: str, setting: str):
    """``(value, chosen_by_outcome)`` of ``setting`` in the full preset's setup of ``ds``
    (the Eq. 7 preset and lambda resolved to the code set's), or None for other datasets."""
    from ..presets import get_preset

    full = get_preset("full")
    try:
        setup = full.setup(ds)
    except ValueError:
        return None
    value = getattr(setup, setting)
    if setting == "eq7_preset":
        value = setup.eq7
    elif setting == "eq7_lambda" and value is None:
        value = ev.EQ7_CODE_LAMBDA.get(setup.eq7)
    return value, any(c[:2] == (ds, setting) for c in full.chosen_by_outcome)


def plot(out) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    out = Path(out)
    summary = json.loads((out / "envelope.json").read_text())
    datasets = sorted({k.split("/")[0] for k in summary}, key=list(TITLES).index)
    settings = [s for s in ev.SETTINGS
                if any(c[0] == s for v in summary.values() for c in v["cells"])]
    # two rows per dataset: accuracies (%) above, drops (pp) below, so neither squashes the other
    fig, axes = plt.subplots(2 * len(datasets), len(settings), squeeze=False,
                             figsize=(3.4 * len(settings), 2.7 * 2 * len(datasets) + 1.0))
    shown: set[str] = set()
    for i, ds in enumerate(datasets):
        for j, s in enumerate(settings):
            for r, unit in enumerate(("%", "pp")):
                ax = axes[2 * i + r, j]
                qs = [q for q in ev.SETTINGS[s][0] if f"{ds}/{q}" in summary
                      and ev.QUANTITIES[q][2] == unit
                      and any(c[0] == s for c in summary[f"{ds}/{q}"]["cells"])]
                if not qs:
                    ax.axis("off")
                    ax.text(0.5, 0.5, f"{TITLES.get(ds, ds)}: {LABEL[s]}\nmoves no "
                            + ("accuracy" if unit == "%" else "drop") + " (or not run)",
                            ha="center", va="center", fontsize=7, color="0.5",
                            transform=ax.transAxes)
                    continue
                chosen = _full_choice(ds, s)
                for q in qs:
                    e = summary[f"{ds}/{q}"]
                    pts = [(c[1], c[2]) for c in e["cells"] if c[0] == s]
                    x = list(range(len(pts)))
                    ax.plot(x, [p[1] for p in pts], marker="o", color=COLOR[q], label=SHORT[q])
                    mine = [k for k, p in enumerate(pts) if p[0] == chosen[0]] if chosen else []
                    if mine:
                        ax.plot(mine, [pts[k][1] for k in mine], ls="none",
                                **CHOICE_MARKER[bool(chosen[1])])
                    if e["paper"] is not None:
                        ax.axhline(e["paper"], color=COLOR[q], ls=":", lw=1.4)
                        ax.axhspan(e["paper"] - e["tolerance"], e["paper"] + e["tolerance"],
                                   color=COLOR[q], alpha=0.08, lw=0)
                    ax.set_xticks(x, [_fmt(s, p[0]) for p in pts])
                ax.set_xlim(-0.5, max(1, len(x)) - 0.5)
                ax.set_xlabel(LABEL[s])
                ax.set_ylabel("test accuracy (%)" if unit == "%" else "accuracy drop (pp)")
                ax.set_title(f"{TITLES.get(ds, ds)}: {LABEL[s]}", fontsize=9)
                ax.grid(alpha=0.3)
                shown.update(qs)
    # One legend for the figure, above the panels: per-panel legends covered data points.
    handles = [Line2D([], [], color=COLOR[q], marker="o", label=SHORT[q])
               for q in SHORT if q in shown]
    handles += [Line2D([], [], color="0.4", ls=":", lw=1.4,
                       label="paper's value (dotted, in the curve's colour); band: $\\pm$ "
                             "the report's tolerance"),
                Line2D([], [], ls="none", label="full preset's choice", **CHOICE_MARKER[False]),
                Line2D([], [], ls="none", label="full preset's choice, chosen by outcome",
                       **CHOICE_MARKER[True])]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 1.0 / fig.get_figheight()))
    return save_figure(fig, out, NAME, dpi=90, layout=False)


def report(out, preset):
    out = Path(out)
    path = out / "envelope.json"
    if not path.exists():
        return [], []
    summary = json.loads(path.read_text())
    said = []
    for key, e in summary.items():
        ds, q = key.split("/")
        if e["paper"] is None:
            continue
        said.append(f"{TITLES.get(ds, ds)}, {ev.QUANTITIES[q][0]}: envelope "
                    f"[{e['lo']:.2f}, {e['hi']:.2f}] {ev.QUANTITIES[q][2]}, preset "
                    + ("n/a" if e["preset"] is None else f"{e['preset']:.2f}")
                    + f", paper {e['paper']:.2f} "
                    + ("inside" if e["inside"] else "outside") + f" (+- {e['tolerance']:g})")
    fig = FigureEntry(
        "Duque 2024, Sec. 4: settings envelope", f"figures/{NAME}.png",
        "The paper does not record the baseline epochs, which Eq. 7 variant and lambdas, the "
        "Eq. 4 lambda, the noise-aware variance, or (for QuickDraw) the rows per class.",
        "; ".join(said) + ". Each point is one training run with one setting moved from the "
        "full preset's choice (open square); the dotted lines are the paper's values."
        + "".join(f" Chosen by outcome: {ds} {st} = {getattr(preset.setup(ds), st)} ({why})."
                  for ds, st, why in preset.chosen_by_outcome
                  if any(b.dataset == ds for b in preset.duque)),
        {"settings": ", ".join(LABEL[s] for s in _cell_settings(preset)),
         "repetitions": preset.repetitions})
    return [], [fig]

