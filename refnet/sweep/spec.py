"""The sweep specification: a grid over training settings, read from TOML/JSON or the command line.

A spec has four tables (every key optional except ``grid``'s content, unknown keys are errors)::

    [data]                        # the baseline, trained once per (dataset, seed)
    dataset = "mnist"             # mnist, fashion-mnist, quickdraw or synthetic
    hidden = [300, 300]
    baseline_epochs = 30
    baseline_lr = 0.01
    batch_size = 128
    n_train = 6000                # first n training images (optional)
    n_val = 1000

    [grid]                        # every value a list (a single value means one point)
    seed = [0, 1]
    eq4_lambda = [0.0, 1e-3, {2 = 1e-3, 3 = 1e-2}]   # Eq. 4: one lambda or {layer: lambda}
    eq4_variant = ["eq4"]         # eq4 (the paper) or custom_sum (the authors' code, x30 on W^L)
    eq7_lambda = [0.0]            # Eq. 7 overall lambda (0 = off)
    eq7_variant = ["addunc_sigm_mnist"]   # eq7 or an authors' code set (regularizer_preset)
    eq7_coefficients = [[]]       # (c0, c1, c2) for a code set; [] = the set's own
    noise_aware_variance = [0.0]  # noise-aware fine-tuning (0 = off)
    noise_aware_type = ["add_unc"]
    epochs = [10]                 # fine-tuning epochs
    lr = [0.01]                   # fine-tuning learning rate

    [evaluate]
    noise_types = ["add_unc", "add_cor", "mul_unc", "mul_cor"]
    variances = [0.001, 0.01, 0.1, 1.0]
    repetitions = 3
    n_test = 2000                 # first n test rows (optional: all)
    analytic_inputs = 500         # test rows for the analytic prediction

    [report]
    noise_type = "add_unc"        # the Pareto plot's noisy axis
    variance = 1.0

Every cell is one point of the product of the grid's lists; its settings are the data table
plus its grid values. Errors are :class:`refnet.errors.ConfigError` naming the key and the fix.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..limits import MAX_LEVELS, MAX_REPETITIONS, passes_problem
from ..noise import NOISE_TYPES
from ..npzfile import MAX_METADATA_CHARS, BadContent, JsonTooDeep, check_json_depth, \
    parse_json_value
from ..paths import NO_SUCH_FILE, file_problem, short_path
from ..train import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_SEED

__all__ = ["SweepSpec", "load_spec", "parse_spec", "parse_cli_value", "cell_id", "DATA_DEFAULTS",
           "GRID_DEFAULTS", "EVALUATE_DEFAULTS", "REPORT_DEFAULTS"]

DATASETS = ("mnist", "fashion-mnist", "quickdraw", "synthetic")
EQ4_VARIANTS = ("eq4", "custom_sum")
EQ7_VARIANTS = ("eq7", "addunc_sigm_mnist", "addunc_sigm_fashion", "addunc_sigm_sq")
DATA_DEFAULTS = {"dataset": "mnist", "hidden": [300, 300], "baseline_epochs": 30,
                 "baseline_lr": 0.01, "batch_size": 128, "n_train": None, "n_val": 12000}
#: Grid axes in cell order (the last varies fastest) with their one-point defaults.
GRID_DEFAULTS = {"seed": [0], "eq4_variant": ["eq4"], "eq7_variant": ["addunc_sigm_mnist"],
                 "eq7_coefficients": [[]], "noise_aware_type": ["add_unc"], "epochs": [10],
                 "lr": [0.01], "noise_aware_variance": [0.0], "eq7_lambda": [0.0],
                 "eq4_lambda": [0.0]}
EVALUATE_DEFAULTS = {"noise_types": list(NOISE_TYPES), "variances": [1e-3, 1e-2, 1e-1, 1.0],
                     "repetitions": 3, "n_test": None, "analytic_inputs": 500,
                     "batch_size": 1000}
REPORT_DEFAULTS = {"noise_type": "add_unc", "variance": 1.0}
_LIST_KEYS = (("data", "hidden"), ("evaluate", "noise_types"), ("evaluate", "variances"))
#: The largest spec file read (it is read whole; a JSON text is held to as many characters).
MAX_SPEC_BYTES = MAX_METADATA_CHARS
_TABLES = {"data": DATA_DEFAULTS, "grid": GRID_DEFAULTS, "evaluate": EVALUATE_DEFAULTS,
           "report": REPORT_DEFAULTS}


def _err(where: str, what: str, fix: str) -> ConfigError:
    return ConfigError(f"{where}: {what}; {fix}")


def _int(where, v, lo=None, none_ok=False, hi=None):
    if v is None and none_ok:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) \
            or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise _err(where, f"expected an integer {bound}, got {v!r}", "write a whole number")
    return v


def _float(where, v, lo=0.0, positive=False):
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    try:
        x = float(v) if number else math.nan
    except OverflowError:  # an integer past a float's range, such as 10**400
        x = math.nan
    if not math.isfinite(x) or x < lo or (positive and x <= 0):
        bound = "> 0" if positive else f">= {lo:g}"
        raise _err(where, f"expected a finite number {bound}, got {v!r}", "write a number")
    return x + 0.0  # -0.0 as 0.0: [0.0, -0.0] passed as two values (two cells, one setting)


def _choice(where, v, options):
    if v not in options:
        raise _err(where, f"unknown {v!r}", f"choose one of {', '.join(options)}")
    return v


def _layer_lambdas(where, v, n_layers):
    """One lambda (float) or ``{layer: lambda}`` (layers as strings, sorted) for Eq. 4."""
    if not isinstance(v, dict):
        return _float(where, v)
    from ..regularizers import resolve_layer_lambdas

    out, keys = {}, {}
    for k, lam in v.items():
        try:
            layer = int(k)
        except (TypeError, ValueError):
            raise _err(where, f"layer {k!r} is not an integer",
                       "key per-layer lambdas by layer number, e.g. {2 = 1e-3}") from None
        if layer in out:  # "2" and "02" (or " 2"): the last one was kept without a word
            raise _err(where, f"the keys {keys[layer]!r} and {k!r} are both layer {layer}",
                       "give each layer once")
        out[layer], keys[layer] = _float(f"{where}[{k}]", lam), k
    try:
        resolve_layer_lambdas(out, n_layers, where)
    except ValueError as e:
        raise ConfigError(f"{e}; use layers 1..{n_layers} or -1..-{n_layers}") from None
    return {str(k): out[k] for k in sorted(out)}


def _grid_value(key, where, v, n_layers):
    # the ceilings of a training config (refnet.train), which each cell's model file records
    if key == "seed":
        return _int(where, v, 0, hi=MAX_SEED)
    if key == "epochs":
        return _int(where, v, 0, hi=MAX_EPOCHS)
    if key == "lr":
        return _float(where, v, positive=True)
    if key in ("eq7_lambda", "noise_aware_variance"):
        return _float(where, v)
    if key == "eq4_lambda":
        return _layer_lambdas(where, v, n_layers)
    if key == "eq4_variant":
        return _choice(where, v, EQ4_VARIANTS)
    if key == "eq7_variant":
        return _choice(where, v, EQ7_VARIANTS)
    if key == "noise_aware_type":
        return _choice(where, v, NOISE_TYPES)
    # eq7_coefficients: [] or (c0, c1, c2)
    if not isinstance(v, list) or len(v) not in (0, 3):
        raise _err(where, f"expected [] or three numbers [c0, c1, c2], got {v!r}",
                   "give the code set's (c0, c1, c2) or [] for its own")
    return [_float(f"{where}[{i}]", c) for i, c in enumerate(v)]


def _check_data(d: dict) -> dict:
    out = dict(d)
    out["dataset"] = _choice("data.dataset", d["dataset"], DATASETS)
    h = d["hidden"]
    if not isinstance(h, list) or not h:
        raise _err("data.hidden", f"expected a non-empty list of layer widths, got {h!r}",
                   "write e.g. [300, 300]")
    out["hidden"] = [_int(f"data.hidden[{i}]", w, 1) for i, w in enumerate(h)]
    from ..io import check_savable

    # the widths every baseline and cell model will have (the image datasets' 784 pixels in,
    # at least one feature and two classes otherwise), against what a model file may hold
    n_in = 784 if out["dataset"] in ("mnist", "fashion-mnist", "quickdraw") else 1
    check_savable((n_in, *out["hidden"], 2), "float64", "data.hidden")
    out["baseline_epochs"] = _int("data.baseline_epochs", d["baseline_epochs"], 0, hi=MAX_EPOCHS)
    out["baseline_lr"] = _float("data.baseline_lr", d["baseline_lr"], positive=True)
    out["batch_size"] = _int("data.batch_size", d["batch_size"], 1, hi=MAX_BATCH_SIZE)
    out["n_train"] = _int("data.n_train", d["n_train"], 10, none_ok=True)
    out["n_val"] = _int("data.n_val", d["n_val"], 1)
    return out


def _check_evaluate(e: dict) -> dict:
    out = dict(e)
    types = e["noise_types"]
    if not isinstance(types, list) or not types:
        raise _err("evaluate.noise_types", f"expected a list of distinct names, got {types!r}",
                   f"choose from {', '.join(NOISE_TYPES)}")
    out["noise_types"] = [_choice(f"evaluate.noise_types[{i}]", t, NOISE_TYPES)
                          for i, t in enumerate(types)]
    if len(set(out["noise_types"])) != len(types):
        raise _err("evaluate.noise_types", f"a name is given twice in {types!r}",
                   "list each noise type once")
    v = e["variances"]
    if not isinstance(v, list) or not v:
        raise _err("evaluate.variances", f"expected a non-empty list, got {v!r}",
                   "write e.g. [0.01, 0.1, 1.0]")
    if len(v) > MAX_LEVELS:
        raise _err("evaluate.variances", f"{len(v)} variances, at most {MAX_LEVELS}",
                   "measure fewer levels")
    out["variances"] = sorted({_float("evaluate.variances", x, positive=True) for x in v})
    out["repetitions"] = _int("evaluate.repetitions", e["repetitions"], 1, hi=MAX_REPETITIONS)
    problem = passes_problem(len(out["variances"]), out["repetitions"], len(out["noise_types"]))
    if problem:  # each cell's evaluation: refused here, not cell by cell after training
        raise ConfigError(f"evaluate.variances/evaluate.repetitions: {problem}")
    out["n_test"] = _int("evaluate.n_test", e["n_test"], 1, none_ok=True)
    out["analytic_inputs"] = _int("evaluate.analytic_inputs", e["analytic_inputs"], 1)
    # rows per batch, as a training batch: the same ceiling (10**20 was read)
    out["batch_size"] = _int("evaluate.batch_size", e["batch_size"], 1, hi=MAX_BATCH_SIZE)
    return out


@dataclass(frozen=True)
class SweepSpec:
    """A validated spec: plain JSON-able tables (see the module docstring)."""

    data: dict
    grid: dict
    evaluate: dict
    report: dict

    def as_dict(self) -> dict:
        return {"data": self.data, "grid": self.grid, "evaluate": self.evaluate,
                "report": self.report}

    def canonical(self) -> str:
        """The spec as canonical JSON: what the sweep folder remembers."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def cells(self) -> list[dict]:
        """Every cell's settings (data table + one value per grid axis), in grid order."""
        keys = list(GRID_DEFAULTS)
        return [{**self.data, **dict(zip(keys, values))}
                for values in itertools.product(*(self.grid[k] for k in keys))]

    def seeds(self) -> list[int]:
        return list(self.grid["seed"])


def cell_id(settings: dict) -> str:
    """A cell's name: a short hash of its settings (the same settings, the same cell)."""
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_spec(raw: dict, source: str = "spec") -> SweepSpec:
    """Validate ``raw`` (tables as in the module docstring) into a :class:`SweepSpec`."""
    if not isinstance(raw, dict):
        raise _err(source, "the spec must be a table", "see `refnet sweep --help`")
    for table in raw:
        if table not in _TABLES:
            raise _err(f"{source}: [{table}]", "unknown table", f"use {', '.join(_TABLES)}")
    merged = {}
    for table, defaults in _TABLES.items():
        given = raw.get(table, {})
        if not isinstance(given, dict):
            raise _err(f"{source}: [{table}]", "must be a table of keys", "write key = value lines")
        for k in given:
            if k not in defaults:
                raise _err(f"{source}: {table}.{k}", "unknown key",
                           f"known keys of [{table}]: {', '.join(defaults)}")
        merged[table] = {**defaults, **given}
    for table, key in _LIST_KEYS:  # one value where a list is expected means a list of one
        if not isinstance(merged[table][key], list):
            merged[table][key] = [merged[table][key]]
    data = _check_data(merged["data"])
    n_layers = len(data["hidden"]) + 1
    grid = {}
    for key in GRID_DEFAULTS:
        values = merged["grid"][key]
        if not isinstance(values, list) or (key == "eq7_coefficients" and values
                                            and not isinstance(values[0], list)):
            values = [values]
        if not values:
            raise _err(f"grid.{key}", "empty list", "give at least one value or leave it out")
        checked = [_grid_value(key, f"grid.{key}[{i}]", v, n_layers) for i, v in enumerate(values)]
        if len({json.dumps(c, sort_keys=True) for c in checked}) != len(checked):
            raise _err(f"grid.{key}", "a value is given twice", "list each value once")
        grid[key] = checked
    for variant in grid["eq7_variant"]:
        if variant == "eq7" and any(grid["eq7_coefficients"]):
            raise _err("grid.eq7_coefficients", "the paper's eq7 has no coefficients",
                       "use an authors' code set (addunc_sigm_*) or leave eq7_coefficients out")
    if "custom_sum" in grid["eq4_variant"] and any(isinstance(x, dict) for x in grid["eq4_lambda"]):
        raise _err("grid.eq4_lambda", "per-layer lambdas set each layer's lambda themselves",
                   "use eq4_variant = [\"eq4\"] with per-layer lambdas, or one lambda for custom_sum")
    evaluate = _check_evaluate(merged["evaluate"])
    rep = merged["report"]
    report = {"noise_type": _choice("report.noise_type", rep["noise_type"], evaluate["noise_types"]),
              "variance": _float("report.variance", rep["variance"], positive=True)}
    if report["variance"] not in evaluate["variances"]:
        raise _err("report.variance", f"{report['variance']:g} is not among evaluate.variances",
                   "add it to evaluate.variances")
    return SweepSpec(data, grid, evaluate, report)


def parse_cli_value(text: str):
    """A command-line value: JSON if it starts with ``[`` or ``{``, else comma-separated items,
    each a JSON number/bool or a bare string. ``0,1e-3`` -> ``[0, 0.001]``."""
    text = text.strip()
    if text[:1] and text[:1] in "[{":  # ("" is in every string: an empty text is no JSON)
        try:
            return parse_json_value(text, f"value {text[:40]!r}")
        except BadContent as e:  # a key given twice, too deep, not JSON
            raise _refused(e, "quote it for the shell") from None
    items = []
    for part in text.split(","):
        part = part.strip()
        try:
            items.append(parse_json_value(part, f"item {part[:40]!r}"))
        except JsonTooDeep as e:
            raise _refused(e, "quote it for the shell") from None
        except BadContent:  # not JSON (an integer past Python's digit limit too): a string
            items.append(part)
    return items if len(items) > 1 else items[0]


def _refused(e, fix: str) -> ConfigError:
    """The :class:`ConfigError` for a JSON (or TOML) text that :mod:`refnet.npzfile` refused
    (``e`` names the text); ``fix`` unless it nests too deep."""
    deep = isinstance(e, JsonTooDeep)
    return ConfigError(f"{e}; {'a spec needs at most a list of tables or lists' if deep else fix}")


def load_spec(path=None, overrides=()) -> SweepSpec:
    """Read a ``.toml`` or ``.json`` spec (or none) and apply ``overrides``, each
    ``"table.key=value"`` or ``"key=value"`` (the table found by the key's name)."""
    raw: dict = {}
    source = "command line"
    if path is not None:
        path = Path(path)
        source = short_path(path)
        problem = file_problem(path)
        if problem is not None:
            raise _err(source, "no such spec file" if problem == NO_SUCH_FILE else problem,
                       "give the path of a .toml or .json spec")
        if path.suffix not in (".toml", ".json"):
            raise _err(source, "unknown spec format", "name it .toml or .json")
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:  # read whole below: a 200 GB file was a MemoryError traceback
            raise _err(source, f"{size} bytes, more than a spec's ceiling of {MAX_SPEC_BYTES}",
                       "give the sweep's spec (a few lines of TOML or JSON), not another file")
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM was "Invalid statement"
            if path.suffix == ".toml":
                import tomllib

                try:
                    raw = check_json_depth(tomllib.loads(text), source)
                except RecursionError:  # tomllib recurses once per level
                    raise JsonTooDeep(source) from None
            else:
                raw = parse_json_value(text, source)
        except BadContent as e:  # a key given twice, too deep, not JSON
            raise _refused(e, "fix the syntax (each key once)") from None
        except OSError as e:  # no permission to read it, an I/O error: its syntax is not at fault
            raise _err(source, f"cannot be read ({e.strerror or e})",
                       "make it readable (its permissions), or give another spec") from None
        except ValueError as e:  # TOMLDecodeError, UnicodeDecodeError
            raise _err(source, f"cannot be parsed ({e})", "fix the syntax") from None
        if raw == {}:  # every default: a 30-epoch MNIST baseline and its cell, without a word
            raise _err(source, "the spec file is empty (no table, no key)",
                       "write at least the [grid] to sweep, e.g. [grid] eq4_lambda = [0, 1e-3]")
    first = {}  # (table, key) -> the override that set it
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise _err(f"override {item!r}", "missing '='", "write key=value, e.g. seed=0,1")
        if not value.strip():
            raise _err(f"override {item!r}", "no value after '='", "write key=value, e.g. seed=0,1")
        table, dot, name = key.strip().rpartition(".")
        if not dot:
            owners = [t for t, d in _TABLES.items() if name in d]
            if not owners:
                raise _err(f"override {item!r}", f"unknown key {name!r}",
                           "see the spec keys in `refnet sweep --help`")
            if len(owners) > 1:
                raise _err(f"override {item!r}", f"the key {name!r} is in "
                           + " and ".join(f"[{t}]" for t in owners),
                           "say which: " + " or ".join(f"--set {t}.{name}=..." for t in owners))
            table = owners[0]
        elif table not in _TABLES:  # it was reported as an unknown table of the spec file
            raise _err(f"override {item!r}", f"unknown table {table!r}",
                       f"use {', '.join(_TABLES)} (e.g. data.hidden=300,300)")
        if (table, name) in first:  # the last one won without a word
            raise _err("--set", f"the key {table}.{name} given twice ({first[table, name]!r}, "
                       f"then {item!r})", "give each key once, several values as one list "
                       "(e.g. seed=0,1)")
        first[table, name] = item
        raw.setdefault(table, {})
        if not isinstance(raw[table], dict):
            raise _err(source, f"[{table}] must be a table", "write key = value lines")
        raw[table][name] = parse_cli_value(value)
    return parse_spec(raw, source)
