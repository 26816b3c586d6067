"""``refnet sweep``: a resumable grid over training settings, its Pareto report and ``--best``.

    refnet sweep spec.toml --out runs/lambda            # all cores of this machine
    refnet sweep spec.toml --out runs/lambda --scheduler tcp://host:8786   # a Dask cluster
    refnet sweep --out runs/lambda --best "drop<=1pp"   # report / choose from a finished folder

Rerunning the same command resumes: finished cells are kept, missing or corrupt ones computed.
See :mod:`refnet.sweep` and the spec format in :mod:`refnet.sweep.spec`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import MAX_WORKERS, check_workers, int_between


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", type=Path,
                   help="spec file (.toml or .json; see refnet.sweep.spec); omit it to report on "
                        "an existing --out folder")
    p.add_argument("--out", type=Path, required=True, help="sweep folder (store, baselines, report)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="set or override a spec key, e.g. --set eq4_lambda=0,1e-3,6e-3 "
                        "--set seed=0,1 --set data.dataset=mnist (repeatable; JSON values allowed)")
    p.add_argument("--workers", type=int_between(1, MAX_WORKERS, "worker processes"),
                   help="local worker processes (default: all cores; 1 = in this process; at "
                        "most the usable cores; never more than the cells left to run)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the cells on the Dask cluster at ADDRESS (needs refnet[dask])")
    p.add_argument("--halving", metavar="ETA[,MIN_EPOCHS]",
                   help="successive halving: rank cells after MIN_EPOCHS (default 1) epochs by "
                        "the analytic predicted accuracy, keep 1/ETA, repeat")
    p.add_argument("--best", metavar="CONSTRAINT",
                   help='print the cell with the highest noisy accuracy under a clean-accuracy '
                        'constraint: "drop<=1pp" (vs its baseline) or "clean>=97%%"')
    p.add_argument("--report-dir", type=Path, metavar="DIR",
                   help="write pareto.png and front.md here (default: OUT/report)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _halving(text):
    from ..errors import ConfigError

    parts = text.split(",")
    try:
        vals = [int(x) for x in parts]
    except ValueError:
        vals = []
    if len(vals) not in (1, 2):
        raise ConfigError(f"--halving {text!r}: expected ETA or ETA,MIN_EPOCHS (integers), "
                          "e.g. --halving 3 or --halving 3,1")
    return {"eta": vals[0], "min_epochs": vals[1] if len(vals) == 2 else 1}


def _check_unused(args, computing: bool) -> None:
    """Flags that would have no effect are an error, not a silent no-op: those of computing
    when there is nothing to compute (no SPEC, no --set: a report on --out), and --workers
    (local processes) beside --scheduler (the cluster's workers run the cells)."""
    from ..errors import ConfigError

    given = [flag for flag, value in (("--workers", args.workers), ("--scheduler", args.scheduler),
                                      ("--halving", args.halving)) if value is not None]
    if given and not computing:
        raise ConfigError(f"{'/'.join(given)}: no effect without a SPEC (or --set): this only "
                          f"reports on the sweep in {args.out}; give the SPEC to compute, or "
                          f"leave out {'/'.join(given)}")
    if args.workers is not None and args.scheduler is not None:
        raise ConfigError("--workers: local worker processes, no effect with --scheduler (the "
                          "cluster's own workers run the cells); give one or the other")


def _check_folders(args, computing: bool) -> None:
    """Refuse, before the store or any baseline is made, an --out or --report-dir that cannot
    be written (:func:`refnet.paths.check_output_folder`), or whose baselines folder or
    report files cannot be (a baseline was trained, then not saved: "File exists"). Reporting
    on a finished sweep into another --report-dir only reads --out: it need not be writable
    then."""
    from ..paths import check_output_folder
    from ..sweep.driver import BASELINES
    from ..sweep.report import REPORT_FILES, report_folder

    if computing:
        check_output_folder(args.out, "--out", folders=(BASELINES,))  # and the store
    check_output_folder(report_folder(args.out, args.report_dir),
                        "--out" if args.report_dir is None else "--report-dir", files=REPORT_FILES)


def run(args) -> int:
    from ..sweep import load_spec, run_sweep
    from ..sweep.report import parse_constraint, write_report

    if args.best:
        parse_constraint(args.best)  # fail before any work
    halving = _halving(args.halving) if args.halving else None
    stream = None if args.no_progress else sys.stderr
    computing = args.spec is not None or bool(args.overrides)
    _check_unused(args, computing)
    check_workers(args.workers, ", one cell per worker process")
    _check_folders(args, computing)
    if computing:
        spec = load_spec(args.spec, args.overrides)
        s = run_sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler,
                      progress=stream, halving=halving)
        print(f"{s.n_cells} cells: {s.skipped} already finished, {len(s.computed)} computed, "
              f"{s.baselines_trained} baseline(s) trained, {s.seconds:.1f} s on {s.executor}")
    rep = write_report(args.out, args.best, args.report_dir)
    print(f"report: {rep['markdown']} and {rep['png']} ({len(rep['front'])} cells on the front)")
    if rep["halving"]:
        print(rep["halving"])
    if rep["best"] is not None:
        b = rep["best"]
        print(f"best under {args.best!r}: cell {b.cell_id}: clean {100 * b.clean:.2f} %, noisy "
              f"{100 * b.noisy:.2f} % (+- {100 * b.noisy_stderr:.2f}), baseline clean "
              f"{100 * b.baseline_clean:.2f} %")
        varied = {k: v for k, v in b.settings.items()}
        print("  settings: " + ", ".join(f"{k}={v}" for k, v in sorted(varied.items())))
    return 0
