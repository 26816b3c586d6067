"""``refnet sweep``: grids over training settings, resumable, on local cores or a Dask cluster.

Duque 2024 (Sec. 5) names the regularizers' lambdas its bottleneck: they are found "through a
trial-and-error process". A sweep trains the baseline once per (dataset, seed), fine-tunes
every cell of a grid from it (Eq. 4 / Eq. 7 lambdas, coefficients, noise-aware variance,
epochs, learning rate, seeds), measures each cell (clean accuracy, Monte-Carlo accuracy vs
variance per noise type with standard errors, the analytic prediction), and writes it to a
store in the sweep folder as soon as it finishes. The report draws the Pareto front of clean
vs noisy accuracy and picks the cell a constraint asks for.

=================  ==========================================================================
module             what
=================  ==========================================================================
``spec``           the spec (TOML/JSON/command line), strict validation, the cells
``store``          the SQLite result store (atomic per cell, corrupt rows redone)
``cells``          what a worker computes (baseline, one cell, the analytic ranker)
``executors``      in-process, local process pool, Dask distributed
``driver``         :func:`run_sweep`: baselines, then the missing cells, with a progress bar
``halving``        successive halving by the analytic predicted accuracy
``report``         Pareto plot, table of the front, ``--best`` constraints
=================  ==========================================================================
"""
from .driver import SweepSummary, run_sweep
from .report import best_cell, pareto_front, points, write_report
from .spec import SweepSpec, cell_id, load_spec, parse_spec
from .store import SweepStore

__all__ = ["SweepSpec", "SweepStore", "SweepSummary", "cell_id", "load_spec", "parse_spec",
           "run_sweep", "write_report", "best_cell", "pareto_front", "points"]
