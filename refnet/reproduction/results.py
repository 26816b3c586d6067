"""Compute -> cache -> plot bookkeeping of the figure modules (one per paper figure).

Each figure module stores its computed arrays in ``<out>/results/<name>.npz`` with a JSON record
(seed, refnet version, preset, data sources and counts) and its figure in
``<out>/figures/<name>.png``. Everything is written atomically.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..errors import ResultFileError
from ..io import atomic_write_bytes, save_npz_atomic, verify_sha256
from ..npzfile import (WANT_OBJECT, WANT_SHA256, BadContent, NpzReader, check_fields, file_errors,
                       read_json_file, want_int, want_number, want_str)

__all__ = ["save_results", "load_results", "read_results", "read_run_state", "RESULT_KEYS",
           "figure_path", "save_figure", "script_main"]


#: The record keys refnet reads from a result file (the rest is the script's own record,
#: protected like everything else by the content hash).
RESULT_KEYS = {"format": want_str(choices=("refnet-results",)), "refnet_version": want_str(64),
               "sha256": WANT_SHA256}


def save_results(out, name: str, arrays: dict, record: dict) -> Path:
    """Write ``<out>/results/<name>.npz`` atomically, with a content hash over arrays and record."""
    record = {"refnet_version": __version__, "format": "refnet-results", **record}
    return save_npz_atomic(Path(out) / "results" / f"{name}.npz", arrays, record, sha256=True)


def load_results(out, name: str):
    """``(arrays, record)`` or ``None`` if this script has not been computed into ``out``."""
    path = Path(out) / "results" / f"{name}.npz"
    return read_results(path) if path.exists() else None


def read_results(path) -> tuple[dict, dict]:
    """A result file, validated (see :mod:`refnet.npzfile`): real or text arrays, a record
    with ``format``, ``refnet_version`` and a matching ``sha256``, so a half-written, damaged or
    edited file is refused (arrays may hold NaN where a script marks values it did not
    compute). Raises :class:`~refnet.errors.ResultFileError` naming the file and the fix."""
    path = Path(path)
    fix = f"delete {path} and run the script (or refnet reproduce) again to recompute it"
    with file_errors(path, ResultFileError, fix), NpzReader(path) as z:
        record = z.metadata()
        check_fields(record, RESULT_KEYS, "record", required=tuple(RESULT_KEYS), extra=True)
        for k, h in z.headers.items():
            if k != "metadata" and h.dtype.kind not in "biufU":
                raise BadContent(f"array {k} has dtype {h.dtype}; results are real numbers "
                                 "or text")
        arrays = {k: z.array(k) for k in z.headers if k != "metadata"}
        verify_sha256(arrays, record)
    return arrays, record


def read_run_state(path) -> dict:
    """``reproduce.json``: ``{"preset": str, "seed": int, "scripts": {name: {"seconds": float}}}``,
    validated; :class:`~refnet.errors.ResultFileError` naming the file otherwise."""
    path = Path(path)
    with file_errors(path, ResultFileError, f"delete {path} (the results beside it are kept "
                     "and reused) and run refnet reproduce again"):
        state = read_json_file(path, "the run record")
        check_fields(state, {"preset": want_str(64), "seed": want_int(-2**63, 2**63 - 1),
                             "scripts": WANT_OBJECT}, "the run record",
                     required=("preset", "seed", "scripts"))
        for name, entry in state["scripts"].items():
            check_fields(entry, {"seconds": want_number(0, 1e9)}, f"the entry of {name!r}",
                         required=("seconds",))
    return state


def figure_path(out, name: str) -> Path:
    p = Path(out) / "figures" / f"{name}.png"
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def save_figure(fig, out, name: str, dpi: int = 100, *, layout: bool = True) -> Path:
    """Lay out ``fig`` (unless ``layout=False``: the caller did), write it to
    ``<out>/figures/<name>.png`` and close it; returns the path."""
    import matplotlib.pyplot as plt

    if layout:
        # leave room for a suptitle (tight_layout alone lets it overlap the top panels' titles)
        top = 1 - 0.35 / fig.get_figheight() if getattr(fig, "_suptitle", None) is not None else 1
        fig.tight_layout(rect=(0, 0, 1, top))
    from .figures import figure_png_bytes

    # as bytes, then one atomic write: savefig wrote the file in place, and an interrupted
    # run left a truncated PNG that the report showed
    data = figure_png_bytes(fig, dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(figure_path(out, name), data)


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
