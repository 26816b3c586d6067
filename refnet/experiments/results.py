"""Compute -> cache -> plot bookkeeping for the validation scripts.

Each script stores its computed arrays in ``<out>/results/<name>.npz`` with a JSON record
(seed, refnet version, preset, data sources and counts) and its figure in
``<out>/figures/<name>.png``. Everything is written atomically.
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from .. import __version__
from ..io import load_npz, save_npz_atomic

__all__ = ["save_results", "load_results", "figure_path", "save_figure", "validation_dir",
           "load_script", "script_main"]


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

    fig.tight_layout()
    path = figure_path(out, name)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def validation_dir() -> Path:
    """The ``validation/`` folder of the refnet checkout this package runs from."""
    d = Path(__file__).resolve().parents[2] / "validation"
    if not d.is_dir():
        raise FileNotFoundError(
            f"{d}: not found. `refnet reproduce` runs the scripts of a refnet checkout: clone "
            "the repository and install it with `pip install -e .`")
    return d


def load_script(name: str):
    """Import ``validation/<name>.py`` as a module."""
    path = validation_dir() / f"{name}.py"
    if not path.exists():
        raise ValueError(f"validation script {name!r} not found in {path.parent}")
    spec = importlib.util.spec_from_file_location(f"refnet_validation_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def script_main(module, argv=None) -> int:
    """The command line of a validation script: compute -> plot -> print what it found.

    ``python validation/<name>.py [--preset quick|full] [--quick] [--seed N] [--out DIR]``.
    """
    from .presets import PRESETS, get_preset

    ap = argparse.ArgumentParser(description=(module.__doc__ or "").splitlines()[0])
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
