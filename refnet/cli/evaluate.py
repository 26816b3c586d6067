"""``refnet evaluate MODEL``: accuracy under each noise type alone over a grid of variances.

Writes ``accuracy.csv`` (one row per noise type and variance: mean, std, every repetition),
``accuracy.json`` (settings, seed, refnet version, model and data provenance, sha256 of the
other files) and ``accuracy.png`` (accuracy against variance, log axis, mean +- 2 std) into
``--out``, as a set: each is written to a temporary file and read back before any is renamed
into place (:func:`refnet.io.atomic_write_files`). A progress bar goes to stderr.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np

from ..cores import available_cores
from ..datasets._cache import sha256_file
from ..errors import ConfigError
from ..limits import MAX_BATCH_SIZE, MAX_LEVELS, MAX_REPETITIONS, passes_problem
from ..noise import NOISE_TYPES
from ..paths import check_output_folder
from ..progress import Progress
from ._common import (MAX_WORKERS, add_noise_preset, check_classes, check_rows, dataset_name,
                      existing_file, int_between, noise_type_list, positive_float,
                      positive_int, read_npz_arrays, seed, variance_list)


#: The default variance range of ``--variances N`` (the paper's figures span it).
VMIN, VMAX = 1e-3, 1.0
#: The largest variance evaluated: noise of standard deviation 1000 on layer outputs in (0, 1)
#: already leaves chance accuracy (and a log axis reaching 1e300 broke matplotlib's plot:
#: an overflow warning, the axis drawn from 1 to 10 without the data).
MAX_VARIANCE = 1e6
_FILES = ("accuracy.csv", "accuracy.json", "accuracy.png")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=existing_file("a model .npz written by refnet"),
                   help="model file (.npz) written by refnet")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", type=dataset_name,
                     help="named dataset, test split (mnist, fashion-mnist, ...)")
    src.add_argument("--data", type=existing_file("a .npz with arrays X and y"),
                     help=".npz file with arrays X (n, n_in) and y (n,)")
    p.add_argument("--noise-types", type=noise_type_list, default=NOISE_TYPES,
                   help="comma-separated subset of " + ",".join(NOISE_TYPES) + " (default: all)")
    lv = p.add_mutually_exclusive_group()
    lv.add_argument("--variances", type=_n_levels, default=100, metavar="N",
                    help=f"number of log-spaced variances in [vmin, vmax], at most {MAX_LEVELS} "
                         "(default 100)")
    lv.add_argument("--levels", type=variance_list,
                    help=f"explicit comma-separated variances, e.g. 0.01,0.1,1 (each at most "
                         f"{MAX_VARIANCE:g})")
    # default None, not the number: so that --vmin/--vmax given with --levels is seen and refused
    p.add_argument("--vmin", type=positive_float,
                   help=f"smallest variance (default {VMIN:g}; not with --levels)")
    p.add_argument("--vmax", type=positive_float,
                   help=f"largest variance (default {VMAX:g}, at most {MAX_VARIANCE:g}; not "
                        "with --levels)")
    p.add_argument("--repetitions", type=int_between(1, MAX_REPETITIONS, "passes per level"),
                   default=3, help=f"passes per level (default 3, at most {MAX_REPETITIONS})")
    add_noise_preset(p)
    p.add_argument("--batch-size", type=int_between(1, MAX_BATCH_SIZE, "rows per batch"),
                   default=1000, help="rows per batch; fresh noise per batch (default 1000, "
                                      "at most the data's rows are used)")
    p.add_argument("--seed", type=seed, default=0, help="root random seed (default 0)")
    p.add_argument("--out", help="output folder (default: evaluate_<model name>)")
    p.add_argument("--backend", default="numba", choices=("numba", "numba-parallel", "numpy"),
                   help="numba: compiled kernels (default); numba-parallel: the same with "
                        "threads over rows; numpy: the NumPy twins. Results do not depend on "
                        "the thread count")
    p.add_argument("--threads", type=positive_int,
                   help="numba threads for --backend numba-parallel (default: numba's default)")
    p.add_argument("--workers", type=int_between(1, MAX_WORKERS, "worker threads"),
                   default=_default_workers(),
                   help="threads working on whole batches (backend numba or numpy; default: "
                        "the available cores, at most 4); results do not depend on it")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--triangular-draws", action="store_true",
                   help="additive uncorrelated noise reaches the next layer through a "
                        "triangular factor of W W^T (fewer normals and half the flops; other "
                        "random numbers with the same law, so other results than the default "
                        "for the same seed; recorded in accuracy.json's settings.shortcuts)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _n_levels(text: str) -> int:
    n = positive_int(text)
    if n > MAX_LEVELS:
        raise argparse.ArgumentTypeError(f"at most {MAX_LEVELS} variances, got {n}; each one "
                                         "is --repetitions passes over the data")
    return n


def _default_workers() -> int:
    """The cores this process may use (:func:`refnet.cores.available_cores`, as the sweep
    counts them), at most 4. The CPU affinity alone took a container given 2 CPUs of a
    64-core host for 64 cores: 4 threads time-sliced on 2 CPUs."""
    return max(1, min(4, available_cores()))


def _levels(args) -> np.ndarray:
    """The variances to evaluate: ``--levels``, else ``--variances`` log-spaced in
    [``--vmin``, ``--vmax``]."""
    if args.levels is not None:
        given = [f for f, v in (("--vmin", args.vmin), ("--vmax", args.vmax)) if v is not None]
        if given:  # it would be ignored: the user meant a range or a list, not both
            raise ConfigError(f"{'/'.join(given)}: not used with --levels, which lists the "
                              "variances; give --levels alone, or --vmin/--vmax (and "
                              "--variances N) without it")
        if len(args.levels) > MAX_LEVELS:
            raise ConfigError(f"--levels: at most {MAX_LEVELS} variances, got {len(args.levels)}")
        if max(args.levels) > MAX_VARIANCE:
            raise ConfigError(f"--levels: variances of at most {MAX_VARIANCE:g}, got "
                              f"{max(args.levels):g}")
        return np.array(args.levels)  # checked by variance_list
    vmin = VMIN if args.vmin is None else args.vmin
    vmax = VMAX if args.vmax is None else args.vmax
    if vmin > vmax:  # each is checked > 0 and finite by its type
        raise ConfigError(f"--vmin/--vmax: need vmin <= vmax, got {vmin:g} > {vmax:g}")
    if vmax > MAX_VARIANCE:
        raise ConfigError(f"--vmax: at most {MAX_VARIANCE:g} (noise of standard deviation "
                          f"{MAX_VARIANCE ** 0.5:g}), got {vmax:g}")
    levels = np.logspace(np.log10(vmin), np.log10(vmax), args.variances)
    distinct = len(np.unique(levels))
    if distinct < len(levels):  # repeats were measured again, as --levels 0.1,0.1 is refused
        raise ConfigError(f"--variances {args.variances}: from --vmin {vmin:g} to --vmax "
                          f"{vmax:g} there are {distinct} distinct variance(s), not "
                          f"{args.variances}; give a wider range or fewer --variances")
    return levels


def _load_data(args, arch):
    """``(X, y, provenance)`` from ``--data`` or ``--dataset``, checked against the model."""
    sizes = {"n_features": arch.sizes[0], "n_classes": arch.sizes[-1]}
    if args.data is not None:
        path = args.data
        z = read_npz_arrays(path, "--data", ("X", "y"))
        X, y = z["X"], z["y"]
        check_rows(X, y, "--data", path, **sizes)
        return X, y, {"kind": "file", "path": str(path.resolve()), "sha256": sha256_file(path)}
    from refnet.datasets import load_dataset

    name = args.dataset
    data = load_dataset(name, split="test")
    check_classes(data, "--dataset", name)
    X, y = (data.X, data.y) if hasattr(data, "X") else data
    check_rows(X, y, "--dataset", f"{name} (test split)", **sizes)
    info = getattr(data, "info", {}) or {}
    return X, y, {"kind": "dataset", "name": name, "split": "test", "info": info}


def _csv_bytes(result) -> bytes:
    out = io.StringIO()
    reps = result.accuracy.shape[2]
    out.write(",".join(["noise_type", "variance", "mean", "std"]
                       + [f"rep_{k}" for k in range(reps)]) + "\n")
    for i, t in enumerate(result.noise_types):
        for j, v in enumerate(result.variances):
            vals = [result.mean[i, j], result.std[i, j], *result.accuracy[i, j]]
            out.write(",".join([t, repr(float(v))] + [repr(float(x)) for x in vals]) + "\n")
    return out.getvalue().encode()


def run(args) -> int:
    from .. import __version__
    from ..io import atomic_write_files, load_model
    from ..montecarlo import DEFAULT_SHORTCUTS, SweepSettings, accuracy_sweep
    from ..noise import noise_config
    from ..reproduction.figures import accuracy_vs_variance, figure_png_bytes

    variances = _levels(args)
    problem = passes_problem(len(variances), args.repetitions, len(args.noise_types))
    if problem:  # before the model and the data are read
        flag = "--levels" if args.levels is not None else "--variances"
        raise ConfigError(f"{flag}/--repetitions/--noise-types: {problem}")
    out = Path(args.out or f"evaluate_{Path(args.model).stem}")
    check_output_folder(out, "--out", files=_FILES)
    if args.threads is not None and args.backend != "numba-parallel":  # it was ignored
        raise ConfigError(f"--threads: numba's threads over rows of --backend numba-parallel, "
                          f"no effect with --backend {args.backend}; give --workers for threads "
                          "over whole batches, or --backend numba-parallel")
    if args.threads is not None:
        from .._numba import max_threads, set_threads

        if not 1 <= args.threads <= max_threads():
            raise ConfigError(f"--threads: must lie in 1..{max_threads()} (numba's thread count "
                              "on this machine; 1 without numba)")
        set_threads(args.threads)
    arch, params, meta = load_model(args.model)
    X, y, provenance = _load_data(args, arch)
    workers = 1 if args.backend == "numba-parallel" else args.workers
    cfg = noise_config(args.preset, None, arch.n_layers)
    progress = None if args.no_progress else Progress("evaluate", unit="passes")
    t0 = time.perf_counter()
    shortcuts = DEFAULT_SHORTCUTS + (("triangular_draws",) if args.triangular_draws else ())
    settings = SweepSettings(noise_types=args.noise_types, variances=variances,
                             repetitions=args.repetitions, batch_size=args.batch_size,
                             backend=args.backend, dtype=args.dtype, workers=workers,
                             shortcuts=shortcuts)
    result = accuracy_sweep(arch, params, X, y, cfg, settings, rng=args.seed, progress=progress)
    seconds = time.perf_counter() - t0
    csv = _csv_bytes(result)
    title = (f"{Path(args.model).name}\naccuracy under noise, mean $\\pm$ 2 std over "
             f"{result.accuracy.shape[2]} repetitions, noise on layers {result.settings['layers']}")
    fig = accuracy_vs_variance(result, title=title)
    png = figure_png_bytes(fig)
    files = {"accuracy.csv": hashlib.sha256(csv).hexdigest(),
             "accuracy.png": hashlib.sha256(png).hexdigest()}
    record = {
        "refnet_version": __version__, "command": "evaluate", "seed": result.seed,
        "model": {"path": str(Path(args.model).resolve()), "sha256": sha256_file(args.model),
                  "architecture": arch.as_dict(),
                  "metadata": {k: meta.get(k) for k in ("saved", "refnet_version", "dtype")}},
        "data": provenance, "n_samples": int(len(X)),
        "noise": {"preset": args.preset, "types": list(result.noise_types),
                  "variances": result.variances.tolist(), "variance_is": "variance (not std)"},
        "settings": result.settings, "clean_accuracy": result.clean_accuracy,
        "mean": result.mean.tolist(), "std": result.std.tolist(),
        "accuracy": result.accuracy.tolist(), "seconds": round(seconds, 3), "files": files,
    }
    # the three land as a set: all written, read back, then renamed (the json, which records
    # the others' sha256, last); an error or Ctrl-C before the renames changes none of them
    atomic_write_files({out / "accuracy.csv": csv, out / "accuracy.png": png,
                        out / "accuracy.json": (json.dumps(record, indent=1) + "\n").encode()},
                       verify=True)
    print(f"clean accuracy {result.clean_accuracy:.4f}; wrote {', '.join(_FILES)} to {out}")
    return 0
