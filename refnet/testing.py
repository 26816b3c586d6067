"""Test helpers shared by the test suite and the validation scripts.

:func:`check_grad` compares a hand-derived gradient with central finite differences in two
independent ways (style guide, rule 10): along random directions (one scalar per direction,
as autograd's ``check_vjp``) and coordinate by coordinate with a max **and** a mean tolerance
(as umap's ``assert_gradient_matches_finite_diff``). :func:`call_in_child` runs a
test module's function in a fresh process under other environment variables (thread counts).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ._numba import FALLBACK_MESSAGE

__all__ = ["check_grad", "call_in_child", "NO_FALLBACK_WARNING"]

#: ``PYTHONWARNINGS`` for a child whose stderr a test reads line by line: without numba (CI's
#: no-numba run) each process warns once that its kernels run on their NumPy twins.
NO_FALLBACK_WARNING = f"ignore:{FALLBACK_MESSAGE}"

Array = np.ndarray


def _as_f64_list(arrays, name: str) -> list[Array]:
    out = [np.array(a, dtype=np.float64) for a in arrays]
    if not out:
        raise ValueError(f"{name}: need at least one array")
    return out


def check_grad(f: Callable[[list[Array]], float], x: Sequence[Array], rng, grads: Sequence[Array], *,
               eps: float = 1e-6, atol: float = 1e-7, rtol: float = 1e-5,
               mean_atol: float = 1e-8, n_directions: int = 4, max_coords: int | None = None,
               name: str = "f") -> dict:
    """Assert that ``grads`` is the gradient of ``f`` at ``x`` (central differences, float64).

    Parameters
    ----------
    f : callable
        Maps a list of float64 arrays (same shapes as ``x``) to a scalar. Called with fresh
        copies, so it may not keep references between calls.
    x : sequence of ndarray
        The point. Converted to float64; never modified.
    rng : Generator, int or None
        Source of the random directions (and of the coordinate subset when ``max_coords``).
    grads : sequence of ndarray
        The claimed gradient, one array per entry of ``x`` with the same shape.
    eps : float
        Central-difference step. With ``eps = 1e-6`` the truncation error is ``O(eps^2)`` and
        the rounding error about ``1e-16 |f| / eps``, i.e. ~1e-10 for ``|f| ~ 1``.
    atol, rtol : float
        Per-check tolerance ``|fd - g| <= atol + rtol |g|`` (the max criterion), applied to every
        directional derivative and every coordinate.
    mean_atol : float
        The mean of ``|fd - g|`` over the coordinates must not exceed
        ``mean_atol + rtol * mean|g|`` (the mean criterion, which catches a small systematic
        error that the max criterion lets through).
    n_directions : int
        Number of random unit directions (over all arrays jointly).
    max_coords : int or None
        Check at most this many coordinates, drawn without replacement; ``None`` checks all.
    name : str
        Used in the failure message.

    Returns
    -------
    dict
        ``max_dir_err``, ``max_coord_err``, ``mean_coord_err``, ``n_coords``.

    Raises
    ------
    AssertionError
        With the array index, coordinate, analytic and finite-difference values of the worst
        offender.
    ValueError
        If ``grads`` do not match ``x`` in number or shape, or are not finite.
    """
    rng = np.random.default_rng(rng)
    x = _as_f64_list(x, "x")
    g = _as_f64_list(grads, "grads")
    if len(g) != len(x):
        raise ValueError(f"grads: expected {len(x)} arrays (one per entry of x), got {len(g)}")
    for k, (xi, gi) in enumerate(zip(x, g)):
        if xi.shape != gi.shape:
            raise ValueError(f"grads: array {k} has shape {gi.shape}, x[{k}] has {xi.shape}")
        if not np.all(np.isfinite(gi)):
            raise ValueError(f"grads: array {k} contains NaN or inf")

    def fx(arrays):
        v = float(f([a.copy() for a in arrays]))
        if not np.isfinite(v):
            raise AssertionError(f"{name}: value is not finite ({v}) near the check point")
        return v

    # Directional checks: one scalar per random direction u, |u| = 1 over all arrays.
    max_dir_err = 0.0
    for k in range(int(n_directions)):
        u = [rng.standard_normal(xi.shape) for xi in x]
        norm = np.sqrt(sum(float(np.sum(ui * ui)) for ui in u))
        u = [ui / norm for ui in u]
        fp = fx([xi + eps * ui for xi, ui in zip(x, u)])
        fm = fx([xi - eps * ui for xi, ui in zip(x, u)])
        fd = (fp - fm) / (2 * eps)
        an = sum(float(np.sum(gi * ui)) for gi, ui in zip(g, u))
        err = abs(fd - an)
        max_dir_err = max(max_dir_err, err)
        if err > atol + rtol * abs(an):
            raise AssertionError(f"{name}: directional derivative {k} mismatch: analytic {an!r}, "
                                 f"finite difference {fd!r}, |diff| {err:.3e} > "
                                 f"atol {atol:g} + rtol {rtol:g} * |analytic|")

    # Coordinate-wise checks.
    coords = [(k, idx) for k, xi in enumerate(x) for idx in np.ndindex(xi.shape)]
    if max_coords is not None and len(coords) > max_coords:
        pick = rng.choice(len(coords), size=int(max_coords), replace=False)
        coords = [coords[i] for i in sorted(pick)]
    errs, mags = [], []
    worst = None
    for k, idx in coords:
        xp = [xi.copy() for xi in x]
        xm = [xi.copy() for xi in x]
        xp[k][idx] += eps
        xm[k][idx] -= eps
        fd = (fx(xp) - fx(xm)) / (2 * eps)
        an = float(g[k][idx])
        err = abs(fd - an)
        errs.append(err)
        mags.append(abs(an))
        excess = err - (atol + rtol * abs(an))
        if excess > 0 and (worst is None or excess > worst[0]):
            worst = (excess, k, idx, an, fd, err)
    if worst is not None:
        _, k, idx, an, fd, err = worst
        n_bad = sum(e > atol + rtol * m for e, m in zip(errs, mags))
        raise AssertionError(f"{name}: {n_bad} of {len(coords)} coordinates mismatch; worst: "
                             f"array {k} index {idx}: analytic {an!r}, finite difference {fd!r}, "
                             f"|diff| {err:.3e} > atol {atol:g} + rtol {rtol:g} * |analytic|")
    mean_err = float(np.mean(errs)) if errs else 0.0
    mean_mag = float(np.mean(mags)) if mags else 0.0
    if mean_err > mean_atol + rtol * mean_mag:
        raise AssertionError(f"{name}: mean coordinate error {mean_err:.3e} > mean_atol "
                             f"{mean_atol:g} + rtol {rtol:g} * mean|analytic| ({mean_mag:.3e})")
    return {"max_dir_err": max_dir_err, "max_coord_err": max(errs) if errs else 0.0,
            "mean_coord_err": mean_err, "n_coords": len(coords)}


def call_in_child(module_file, function: str, *, env: dict, timeout: float = 600):
    """``function()`` of the module at ``module_file``, run in a fresh Python process whose
    environment is this one's updated with ``env`` (e.g. ``OPENBLAS_NUM_THREADS``, which a
    library reads once, when it loads); it must return something JSON can carry, and that is
    returned. The child finds refnet on this process's ``sys.path``."""
    module_file = Path(module_file).resolve()
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
                    **{k: str(v) for k, v in env.items()})
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            f"from {module_file.stem} import {function} as f; print(json.dumps(f()))")
    run = subprocess.run([sys.executable, "-c", code, str(module_file.parent)], env=full_env,
                         capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        raise AssertionError(f"{module_file.name}:{function} failed in the child:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])
