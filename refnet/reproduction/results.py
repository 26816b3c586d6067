"""Compute -> cache -> plot bookkeeping of the figure modules (one per paper figure).

Each figure module stores its computed arrays in ``<out>/results/<name>.npz`` with a JSON record
(seed, refnet version, preset, data sources and counts) and its figure in
``<out>/figures/<name>.png``. Everything is written atomically.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..io import load_npz, save_npz_atomic

__all__ = ["save_results", "load_results", "figure_path", "save_figure", "script_main"]


def save_results(out, name: str, arrays: dict, record: dict) -> Path:
    record = {"refnet_version": __version__, "format": "refnet-results", **record}
    return save_npz_atomic(Path(out) / "results" / f"{name}.npz", arrays, record)


def load_results(out, name: str):
    """``(arrays, record)`` or ``None`` if this script has not been computed into ``out``."""
    path = Path(out) / "results" / f"{name}.npz"
    return load_npz(path) if path.exists() else None


def figure_path(out, name: str) -> Path:
    p = Path(out) / "figures" / f"{name}.png"
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def save_figure(fig, out, name: str, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to ``<out>/figures/<name>.png`` and close it; returns the path."""
    import matplotlib.pyplot as plt

    # leave room for a suptitle (tight_layout alone lets it overlap the top panels' titles)
    top = 1 - 0.35 / fig.get_figheight() if getattr(fig, "_suptitle", None) is not None else 1
    fig.tight_layout(rect=(0, 0, 1, top))
    path = figure_path(out, name)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def script_main(module, argv=None, *, description: str | None = None) -> int:
    """The command line of a ``validation/<name>.py`` entry point: compute -> plot -> report.

    ``module`` is a figure module of :mod:`refnet.reproduction` (it defines ``compute``,
    ``plot`` and ``report``); ``argv`` as for :mod:`argparse`:
    ``[--preset quick|full] [--quick] [--seed N] [--out DIR]``. ``description`` (the entry
    point's docstring) is what ``--help`` prints; by default the module's first docstring line.
    """
    from .presets import PRESETS, get_preset

    ap = argparse.ArgumentParser(
        description=description or (module.__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    ap.add_argument("--quick", action="store_const", const="quick", dest="preset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/validation"))
    args = ap.parse_args(argv)
    preset = get_preset(args.preset, args.seed)
    module.compute(preset, args.out)
    print(module.plot(args.out))
    checks, figures = module.report(args.out, preset)
    for c in checks:
        print(f"{c.quantity}: paper {c.paper:g}, refnet {c.refnet:.4g} {c.unit} ({c.verdict})")
    for f in figures:
        print(f"{f.figure}: {f.refnet_says}")
    return 0
