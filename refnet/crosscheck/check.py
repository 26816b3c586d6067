"""``check``: compare a framework's answers in a bundle with refnet's, tensor by tensor.

For every ``result.<name>`` the framework wrote, against ``expected.<name>``:

* max abs error ``e = max |r - x|``;
* max rel error ``e / max |x|``, relative to the tensor's largest entry (element-wise relative
  errors blow up where an entry is near zero by cancellation, e.g. softmax minus one-hot);
* pass when ``e <= atol + rtol max |x|``.

Tolerances (:data:`TOLERANCES`), chosen from the arithmetic, not fitted to a result:

* float64: ``rtol = 1e-9``, ``atol = 1e-12``: rounding (2.2e-16) accumulated over sums of
  ~10^3 terms and a few layers stays below 1e-12 relative; 1e-9 leaves room for
  ill-conditioned entries while any real bug (a missing factor, a transposed matrix, a
  different noise scaling) is off by 1e-3 or more.
* float32: ``rtol = 1e-4``, ``atol = 1e-6``: float32 rounding (6e-8) accumulated the same way
  is ~1e-6 relative; gradients pass through two more products.

The tolerance is picked from the dtype of the framework's result (float32 or lower: float32).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelFileError

__all__ = ["TOLERANCES", "TensorCheck", "check_results", "format_table", "merge_results"]

#: dtype -> (rtol, atol); see the module docstring.
TOLERANCES = {"float64": (1e-9, 1e-12), "float32": (1e-4, 1e-6)}


@dataclass(frozen=True)
class TensorCheck:
    """One row of the table. ``status``: ``"pass"``, ``"FAIL"``, ``"missing"`` (no result for
    an expected tensor) or ``"unknown"`` (a result that matches no expected tensor: a misspelt
    or extra name, which would otherwise go unnoticed)."""

    name: str
    shape: tuple
    dtype: str
    max_abs: float
    max_rel: float
    tolerance: float
    status: str


def _tolerance_dtype(a: np.ndarray, override: str | None) -> str:
    if override is not None:
        return override
    return "float64" if a.dtype.itemsize >= 8 or a.dtype.kind != "f" else "float32"


def merge_results(bundle: dict, results: dict) -> dict:
    """Add a separate results file's arrays (keys ``result.<name>`` or bare ``<name>``)."""
    out = dict(bundle)
    for k, v in results.items():
        out[k if k.startswith("result.") else f"result.{k}"] = v
    return out


def _order(key: str):
    """Table order: layers, loss, its gradient, penalties, their gradients, the step."""
    parts = key.split(".")
    rank = {"layer": 0, "loss": 1, "penalty": 3, "step": 5}.get(parts[1] if len(parts) > 1 else "", 4)
    if len(parts) > 2 and parts[1] == "grad":
        rank = 2 if parts[2] == "loss" else 4
    return rank, [int(p) if p.isdigit() else p for p in parts]


def check_results(arrays: dict, *, dtype: str | None = None, source: str = "bundle") -> list[TensorCheck]:
    """One :class:`TensorCheck` per expected tensor, in bundle order (``missing`` where the
    framework wrote no result). ``dtype`` forces ``"float32"`` or ``"float64"`` tolerances."""
    if dtype is not None and dtype not in TOLERANCES:
        raise ValueError(f"dtype: must be one of {', '.join(TOLERANCES)}, got {dtype!r}")
    rows = []
    for key, x in sorted(arrays.items(), key=lambda kv: _order(kv[0])):
        if not key.startswith("expected."):
            continue
        name = key[len("expected."):]
        r = arrays.get(f"result.{name}")
        x = np.asarray(x, dtype=np.float64)
        if r is None:
            rows.append(TensorCheck(name, x.shape, "-", np.nan, np.nan, np.nan, "missing"))
            continue
        r = np.asarray(r)
        if r.dtype.kind != "f":   # an integer or boolean result passed at float64 tolerance
            raise ModelFileError(f"{source}: result.{name} has dtype {r.dtype}; results must be "
                                 "floating point (float32 or float64), as the framework "
                                 "computed them: save the tensors without a cast")
        if r.shape != x.shape:
            raise ModelFileError(f"{source}: result.{name} has shape {r.shape}, expected "
                                 f"{x.shape} (the shape of expected.{name})")
        kind = _tolerance_dtype(r, dtype)
        rtol, atol = TOLERANCES[kind]
        err = float(np.max(np.abs(r.astype(np.float64) - x))) if x.size else 0.0
        if not np.isfinite(err):
            err = np.inf
        scale = float(np.max(np.abs(x))) if x.size else 0.0
        tol = atol + rtol * scale
        rel = err / scale if scale > 0 else (0.0 if err == 0 else np.inf)
        rows.append(TensorCheck(name, x.shape, kind, err, rel, tol,
                                "pass" if err <= tol else "FAIL"))
    expected = {k[len("expected."):] for k in arrays if k.startswith("expected.")}
    for key in sorted(k for k in arrays if k.startswith("result.")):
        if key[len("result."):] not in expected:
            rows.append(TensorCheck(key[len("result."):], np.shape(arrays[key]), "-", np.nan,
                                    np.nan, np.nan, "unknown"))
    return rows


def format_table(rows: list[TensorCheck]) -> str:
    """A plain-text table: tensor, shape, max abs and rel error, tolerance, status."""
    head = ("tensor", "shape", "dtype", "max abs err", "max rel err", "tolerance", "status")
    none = ("missing", "unknown")
    body = [(r.name, "x".join(map(str, r.shape)) or "scalar", r.dtype,
             "-" if r.status in none else f"{r.max_abs:.3e}",
             "-" if r.status in none else f"{r.max_rel:.3e}",
             "-" if r.status in none else f"{r.tolerance:.1e}", r.status) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in [head] + body]
    n_pass = sum(r.status == "pass" for r in rows)
    n_fail = sum(r.status == "FAIL" for r in rows)
    n_miss = sum(r.status == "missing" for r in rows)
    n_unknown = sum(r.status == "unknown" for r in rows)
    lines.append(f"{n_pass} tensors within tolerance, {n_fail} outside, {n_miss} not provided"
                 + (f"; {n_unknown} results match no expected tensor (status unknown: a "
                    "misspelt name?)" if n_unknown else ""))
    return "\n".join(lines)
