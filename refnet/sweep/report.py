"""The sweep report: Pareto plot, table of the front, ``--best`` selection, halving summary.

Each cell is a point (clean accuracy, Monte-Carlo accuracy at the report's noise type and
variance). A cell is on the front if no other cell is at least as good on both axes and
better on one. ``--best "drop<=1pp"`` picks the cell with the highest noisy accuracy whose
clean accuracy is at most 1 percentage point below its own baseline's (same seed).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ResultFileError
from ..io import atomic_write_bytes
from ..reproduction.figures import NOISE_LABELS
from .spec import cell_id
from .store import STORE_NAME, SweepStore

__all__ = ["Point", "points", "pareto_front", "parse_constraint", "best_cell", "PAPER_POINTS",
           "pareto_figure", "front_table", "seed_means", "seed_table", "halving_summary",
           "write_report"]

#: Duque 2024, Sec. 4 (p. 6): clean accuracy and its drop under additive uncorrelated noise of
#: variance 1, in %. The paper says "a 4.77% drop"; read here as percentage points.
PAPER_POINTS = {
    "mnist": {"standard": (98.06, 41.52), "regularized": (95.62, 4.77)},
    "fashion-mnist": {"standard": (87.78, 53.86), "regularized": (85.37, 7.22)},
    "quickdraw": {"standard": (78.11, 65.58), "regularized": (75.12, 35.29)},
}
_PAPER_NOISE = ("add_unc", 1.0)


@dataclass(frozen=True)
class Point:
    """One cell on the report's axes (accuracies as fractions)."""

    cell_id: str
    settings: dict
    clean: float
    noisy: float
    noisy_stderr: float
    predicted: float
    baseline_clean: float
    wall_seconds: float


def points(store: SweepStore) -> list[Point]:
    """The finished cells of ``store`` as points at the spec's report noise type and variance."""
    t, v = store.spec.report["noise_type"], store.spec.report["variance"]
    out = []
    for res, timing in store.rows():
        if "diverged" in res:
            continue
        j = res["monte_carlo"]["variances"].index(v)
        mc = res["monte_carlo"]["by_type"][t]
        an = res["analytic"]["by_type"][t]["predicted_accuracy"][j]
        out.append(Point(cell_id(res["settings"]), res["settings"], res["clean_accuracy"],
                         mc["accuracy"][j], mc["stderr"][j], an, res["baseline_clean_accuracy"],
                         timing["wall_seconds"]))
    return out


def pareto_front(pts: list[Point]) -> list[int]:
    """Indices of the non-dominated points, by increasing clean accuracy."""
    front = []
    for i, p in enumerate(pts):
        if not any((q.clean >= p.clean and q.noisy >= p.noisy)
                   and (q.clean > p.clean or q.noisy > p.noisy) for q in pts):
            front.append(i)
    return sorted(front, key=lambda i: (pts[i].clean, pts[i].noisy))


_CONSTRAINT = re.compile(r"^\s*(drop|clean)\s*(<=|>=)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
                         r"\s*(pp|%)?\s*$")


def parse_constraint(text: str) -> tuple[str, float]:
    """``"drop<=1pp"`` -> ("drop", 0.01); ``"clean>=97%"`` or ``"clean>=0.97"`` -> ("clean", 0.97).

    ``drop`` is the clean-accuracy loss against the cell's own baseline, in percentage points
    (``pp``, required); ``clean`` is a floor on clean accuracy, in % or as a fraction.
    """
    m = _CONSTRAINT.match(text or "")
    fix = 'write "drop<=1pp" (clean accuracy at most 1 point below the baseline) or ' \
          '"clean>=97%"'
    if not m:
        raise ConfigError(f"--best {text!r}: not a constraint; {fix}")
    kind, op, num, unit = m.groups()
    x = float(num)
    if kind == "drop":
        if op != "<=" or unit != "pp":
            raise ConfigError(f"--best {text!r}: a drop is bounded from above in percentage "
                              f"points; {fix}")
        return "drop", x / 100
    if op != ">=" or (unit == "pp"):
        raise ConfigError(f"--best {text!r}: clean accuracy is bounded from below, in % or as a "
                          f"fraction; {fix}")
    x = x / 100 if unit == "%" else x
    if not 0 <= x <= 1:
        raise ConfigError(f"--best {text!r}: clean accuracy {x:g} is outside [0, 1]; {fix}")
    return "clean", x


def best_cell(pts: list[Point], constraint: str) -> Point:
    """The point with the highest noisy accuracy meeting ``constraint`` (ties: grid order)."""
    kind, x = parse_constraint(constraint)
    eps = 1e-12  # accuracies are ratios of counts: guard the boundary against rounding
    ok = [p for p in pts if (p.baseline_clean - p.clean <= x + eps if kind == "drop"
                             else p.clean >= x - eps)]
    if not ok:
        raise ConfigError(f"--best {constraint!r}: no finished cell meets it (of {len(pts)}); "
                          "loosen the constraint or widen the grid")
    return max(ok, key=lambda p: p.noisy)  # max keeps the first of equals


def _varied(pts: list[Point]) -> list[str]:
    """The settings that differ between cells (the table's columns)."""
    keys = sorted(pts[0].settings) if pts else []
    return [k for k in keys if len({json.dumps(p.settings[k], sort_keys=True) for p in pts}) > 1]


def _fmt(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"W{k}: {x:g}" for k, x in v.items())
    return f"{v:g}" if isinstance(v, float) else str(v)


def pareto_figure(pts: list[Point], front: list[int], spec, chosen: Point | None = None):
    """Clean vs noisy accuracy (%), one marker per cell, the front, the paper's points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t, v = spec.report["noise_type"], spec.report["variance"]
    fig = Figure(figsize=(6.4, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    c = np.array([p.clean for p in pts]) * 100
    n = np.array([p.noisy for p in pts]) * 100
    e = np.array([p.noisy_stderr for p in pts]) * 100
    ax.errorbar(c, n, yerr=np.nan_to_num(e), fmt="o", ms=4, alpha=0.6, color="C0",
                label="sweep cells (Monte-Carlo mean $\\pm$ 1 s.e.)")
    if front:
        ax.plot(c[front], n[front], "-", color="C3", lw=1.5, marker="o", ms=5,
                label="Pareto front")
    if chosen is not None:
        ax.plot([chosen.clean * 100], [chosen.noisy * 100], "*", ms=14, color="C2",
                label="--best choice")
    paper = PAPER_POINTS.get(spec.data["dataset"]) if (t, v) == _PAPER_NOISE else None
    for (name, (clean, drop)), marker in zip((paper or {}).items(), ("s", "D")):
        ax.plot([clean], [clean - drop], marker, ms=8, mfc="none", mew=1.5, color="k",
                label=f"Duque 2024, {name} ({clean:g} %, drop {drop:g} pp)")
    ax.set_xlabel("clean test accuracy (%)")
    ax.set_ylabel(f"test accuracy (%), {NOISE_LABELS.get(t, t)}\nnoise, variance "
                  f"$\\sigma^2 = {v:g}$")
    ax.set_title(f"{spec.data['dataset']}: {len(pts)} cells, {len(front)} on the front")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def front_table(pts: list[Point], front: list[int], spec) -> str:
    """A markdown table of the front's cells."""
    cols = _varied(pts)
    t, v = spec.report["noise_type"], spec.report["variance"]
    head = (["cell"] + cols + ["clean (%)", f"{t} at {v:g} (%)", "s.e. (pp)",
                                "predicted (%)", "wall (s)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i in front:
        p = pts[i]
        lines.append("| " + " | ".join([p.cell_id] + [_fmt(p.settings[k]) for k in cols] + [
            f"{100 * p.clean:.2f}", f"{100 * p.noisy:.2f}", f"{100 * p.noisy_stderr:.2f}",
            f"{100 * p.predicted:.2f}", f"{p.wall_seconds:.1f}"]) + " |")
    return "\n".join(lines)


def seed_means(pts: list[Point]) -> list[tuple[dict, int, float, float]]:
    """``(settings without seed, n seeds, mean clean, mean noisy)`` per setting, best noisy
    first: a lambda should win across seeds, not on one."""
    groups: dict[str, list[Point]] = {}
    for p in pts:
        key = json.dumps({k: v for k, v in p.settings.items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(p)
    rows = [(json.loads(k), len(g), float(np.mean([p.clean for p in g])),
             float(np.mean([p.noisy for p in g]))) for k, g in groups.items()]
    return sorted(rows, key=lambda r: -r[3])


def seed_table(pts: list[Point], spec) -> str:
    """A markdown table of :func:`seed_means` (the settings that vary, seeds pooled)."""
    cols = [k for k in _varied(pts) if k != "seed"]
    t, v = spec.report["noise_type"], spec.report["variance"]
    head = cols + ["seeds", "mean clean (%)", f"mean {t} at {v:g} (%)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for settings, n, clean, noisy in seed_means(pts):
        lines.append("| " + " | ".join([_fmt(settings[k]) for k in cols] + [
            str(n), f"{100 * clean:.2f}", f"{100 * noisy:.2f}"]) + " |")
    return "\n".join(lines)


def halving_summary(store: SweepStore, pts: list[Point]) -> str | None:
    """What successive halving kept, the cell-seconds it saved, and whether it kept the grid's
    best cell (both need the full grid in the store; said so otherwise)."""
    info = store.halving()
    if info is None:
        return None
    survivors = set(info["survivors"])
    rung_t = store.rung_timings()
    lines = [f"Successive halving (eta {info['eta']}, first rung {info['min_epochs']} epoch(s)): "
             + "; ".join(f"{r['scored']} cells scored at {r['epochs']} epoch(s), "
                         f"{len(r['kept'])} kept" for r in info["rungs"]) + "."]
    n_cells = len(store.spec.cells())
    if len(pts) < n_cells:
        lines.append(f"Only {len(pts)} of {n_cells} cells are finished: run the same spec without "
                     "--halving in this folder to measure the saving and check the best cell.")
        return "\n".join(lines)
    by_id = {p.cell_id: p for p in pts}
    dropped = [c for c in by_id if c not in survivors]
    rung_cost = sum(t["wall_seconds"] for ts in rung_t.values() for t in ts)
    halving_cost = rung_cost + sum(by_id[c].wall_seconds for c in survivors)
    grid_cost = (sum(by_id[c].wall_seconds for c in dropped)
                 + sum(t["wall_seconds"] for c in survivors for t in rung_t.get(c, []))
                 + sum(by_id[c].wall_seconds for c in survivors))
    best = max(pts, key=lambda p: p.noisy)
    kept = best.cell_id in survivors
    kept_best = max((by_id[c] for c in survivors), key=lambda p: p.noisy)
    lines.append(f"Measured cell-seconds: full grid {grid_cost:.1f} s, halving {halving_cost:.1f} s "
                 f"(saved {grid_cost - halving_cost:.1f} s, {100 * (1 - halving_cost / grid_cost):.0f} %). "
                 f"The grid's best cell by noisy accuracy ({best.cell_id}, {100 * best.noisy:.2f} %) "
                 f"was {'kept' if kept else 'NOT kept'} by halving; its best survivor is "
                 f"{kept_best.cell_id} ({100 * kept_best.noisy:.2f} % noisy, "
                 f"{100 * kept_best.clean:.2f} % clean).")
    return "\n".join(lines)


#: What :func:`write_report` writes into its folder.
REPORT_FILES = ("pareto.png", "front.md")


def report_folder(folder, out=None) -> Path:
    """Where :func:`write_report` writes: ``out``, or by default ``<folder>/report``."""
    return Path(folder) / "report" if out is None else Path(out)


def write_report(folder, constraint: str | None = None, out=None) -> dict:
    """Write ``pareto.png`` and ``front.md`` into ``out`` (default :func:`report_folder`);
    returns what it wrote and chose."""
    from ..reproduction.figures import figure_png_bytes

    store = SweepStore.open(folder)
    try:
        corrupt = store.corrupt()
        if corrupt:
            cid, problem = corrupt[0]
            raise ResultFileError(
                f"{Path(folder) / STORE_NAME}: {len(corrupt)} cell row(s) are damaged or edited "
                f"(cell {cid}: {problem}); rerun the same `refnet sweep SPEC --out {folder}` to "
                "recompute them (intact cells are kept)")
        pts = points(store)
        diverged = [r for r, _ in store.rows() if "diverged" in r]
        if not pts:
            raise ConfigError(f"{folder}: no finished cells to report; run the sweep first")
        front = pareto_front(pts)
        chosen = best_cell(pts, constraint) if constraint else None
        out = report_folder(folder, out)
        png = atomic_write_bytes(out / "pareto.png",
                                 figure_png_bytes(pareto_figure(pts, front, store.spec, chosen)))
        text = [f"# Sweep report: {store.spec.data['dataset']}",
                "", f"{len(pts)} of {len(store.spec.cells())} cells finished; "
                f"{len(front)} on the Pareto front of clean accuracy vs accuracy under "
                f"{store.spec.report['noise_type']} noise of variance "
                f"{store.spec.report['variance']:g} (Monte-Carlo, "
                f"{store.spec.evaluate['repetitions']} repetitions).", "",
                front_table(pts, front, store.spec), "",
                f"predicted: the analytic accuracy at the same point, "
                f"{store.rows()[0][0]['analytic']['method']}, on "
                f"{store.spec.evaluate['analytic_inputs']} test inputs; wall: the cell's "
                "fine-tuning and evaluation on one core"
                + (" (a halving survivor's counts only the epochs after its last rung)."
                   if store.halving() else "."), "", "![Pareto plot](pareto.png)"]
        if len(store.spec.seeds()) > 1:
            text += ["", "Every setting, averaged over its seeds:", "",
                     seed_table(pts, store.spec)]
        if diverged:
            text += ["", f"{len(diverged)} cell(s) diverged and are not plotted: "
                     + "; ".join(f"{cell_id(r['settings'])}: {r['diverged']}" for r in diverged)]
        if chosen is not None:
            text += ["", f"Best under `{constraint}`: cell {chosen.cell_id}, clean "
                     f"{100 * chosen.clean:.2f} %, noisy {100 * chosen.noisy:.2f} %."]
        halving = halving_summary(store, pts)
        if halving:
            text += ["", halving]
        md = atomic_write_bytes(out / "front.md", ("\n".join(text) + "\n").encode())
        return {"png": png, "markdown": md, "front": [pts[i] for i in front], "best": chosen,
                "halving": halving}
    finally:
        store.close()
