"""Activation functions, each with its value, first and second derivative, and inverse.

An activation is named by a string so that it can be stored in a model's JSON metadata:

==============================  =========================================================
name                            function
==============================  =========================================================
``"sigmoid"``                   logistic ``1 / (1 + exp(-z))`` (Duque 2024; Semenova 2022, Sec. IV)
``"shifted_sigmoid(alpha=4)"``  ``1/2 + alpha (z - 1/2) / (2 sqrt(1 + alpha^2 (z - 1/2)^2))``
                                (Semenova 2022, Sec. II A, p. 2); slope ``alpha/2`` at ``z = 1/2``
``"cubic"``                     ``3 z^2 - 2 z^3`` (Semenova 2022, Methods VII A, p. 10)
``"identity"``                  ``z`` (output layers, Semenova's linear input/output neurons)
==============================  =========================================================

Every function is elementwise, takes any array shape and returns a new float array of the
same shape; none overflows or returns NaN for finite ``|z|`` up to 1e4 (tested).
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import logit

from ._activation_kernels import (sigmoid_float64, sigmoid_prime_and_second_float64,
                                  sigmoid_prime_float64)

__all__ = ["Activation", "get_activation", "ACTIVATION_NAMES", "sigmoid", "sigmoid_numpy",
           "sigmoid_prime", "sigmoid_second", "shifted_sigmoid", "shifted_sigmoid_prime",
           "shifted_sigmoid_second", "shifted_sigmoid_inverse", "cubic", "cubic_prime",
           "cubic_second", "cubic_inverse", "sigmoid_prime_and_second", "sigmoid_prime_numpy",
           "sigmoid_prime_and_second_numpy"]

Array = np.ndarray


def _as_float(x) -> Array:
    """``x`` as a float array, keeping float32 as float32 (the speed option) and float64 as is."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


# --- logistic sigmoid -----------------------------------------------------------------------
# Written with NumPy's vectorised exp, several times faster than scipy's expit here; all three
# agree with expit-based formulas to a few ulp (tested).
def sigmoid(z: Array) -> Array:
    """Logistic sigmoid ``sigma(z) = 1 / (1 + exp(-z))``.

    Each step is correctly rounded, so the result is within a few ulp of the true value for
    every ``z``; for very negative ``z``, ``exp(-z)`` overflows to inf (silenced) and the result
    is 0, where the true value is below the smallest normal number. Large float64 arrays take
    the same four operations in one numba pass where that gives these bits
    (:mod:`refnet._activation_kernels`, checked once per process).
    """
    z = _as_float(z)
    out = sigmoid_float64(z)  # the same passes in one numba loop, where that gives these bits
    return sigmoid_numpy(z) if out is None else out


def sigmoid_numpy(z: Array) -> Array:
    """:func:`sigmoid` as NumPy passes, always (the numba pass's twin). ``z``: a float array."""
    out = np.negative(z, out=np.empty_like(z))  # an array even for 0-d input; no temporary
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def _sigmoid_terms(z: Array) -> tuple[Array, Array, Array, Array]:
    """``(z, a, e, r)`` with ``a = -|z|``, ``e = exp(a)`` (never overflows), ``r = 1 / (1 + e)``:
    what both derivatives are written in."""
    z = _as_float(z)
    a = -np.abs(z)
    e = np.exp(a)
    return z, a, e, 1.0 / (1.0 + e)


def _prime(e: Array, r: Array) -> Array:
    return e * r * r


def _second(z: Array, a: Array, e: Array, r: Array) -> Array:
    return np.sign(z) * (e * np.expm1(a)) * (r * r * r)  # expm1: 1 - e without cancellation


def sigmoid_prime(z: Array) -> Array:
    """``sigma'(z) = sigma(z) sigma(-z) = e / (1 + e)^2`` with ``e = exp(-|z|)`` (even in z).
    Large float64 arrays: one numba pass where it gives these bits (as :func:`sigmoid`)."""
    z = _as_float(z)
    out = sigmoid_prime_float64(z)
    return sigmoid_prime_numpy(z) if out is None else out


def sigmoid_prime_numpy(z: Array) -> Array:
    """:func:`sigmoid_prime` as NumPy passes, always (the numba pass's twin)."""
    _, _, e, r = _sigmoid_terms(z)
    return _prime(e, r)


def sigmoid_second(z: Array) -> Array:
    """``sigma''(z) = sigma'(z) (1 - 2 sigma(z)) = -sign(z) e (1 - e) / (1 + e)^3``, ``e = exp(-|z|)``."""
    return _second(*_sigmoid_terms(z))


def sigmoid_prime_and_second(z: Array) -> tuple[Array, Array]:
    """``(sigmoid_prime(z), sigmoid_second(z))`` with their shared ``e = exp(-|z|)`` and
    ``r = 1 / (1 + e)`` computed once: the same operations on the same numbers, so the same
    bits as the two functions (tested). Eq. 7's derivative term needs both for every batch.
    Large float64 arrays: one numba pass where it gives these bits (as :func:`sigmoid`)."""
    z = _as_float(z)
    out = sigmoid_prime_and_second_float64(z)
    return sigmoid_prime_and_second_numpy(z) if out is None else out


def sigmoid_prime_and_second_numpy(z: Array) -> tuple[Array, Array]:
    """:func:`sigmoid_prime_and_second` as NumPy passes, always (the numba pass's twin)."""
    z, a, e, r = _sigmoid_terms(z)
    return _prime(e, r), _second(z, a, e, r)


def sigmoid_prime_from_output(s: Array) -> Array:
    """``sigma'(z)`` from the output ``s = sigma(z)``: ``s (1 - s)``.

    What PyTorch's sigmoid backward computes; the model's backward pass uses it because ``s``
    is already at hand (two ``expit`` calls fewer per layer). Near saturation its relative
    error grows like ``eps / (1 - s)``; :func:`sigmoid_prime` keeps full precision there.
    """
    return s * (1.0 - s)


def sigmoid_inverse(a: Array) -> Array:
    """``sigma^{-1}(a) = log(a / (1 - a))`` for ``a`` in (0, 1)."""
    return logit(a)


# --- Semenova's shifted sigmoid ---------------------------------------------------------------
def shifted_sigmoid(z: Array, alpha: float) -> Array:
    """``f(z) = 1/2 + alpha u / (2 sqrt(1 + alpha^2 u^2))`` with ``u = z - 1/2``.

    (Semenova 2022, Sec. II A, p. 2). ``hypot`` keeps ``alpha u`` from overflowing when squared.
    """
    au = alpha * (_as_float(z) - 0.5)
    return 0.5 + 0.5 * au / np.hypot(1.0, au)


def shifted_sigmoid_prime(z: Array, alpha: float) -> Array:
    """``f'(z) = alpha / (2 (1 + alpha^2 u^2)^{3/2})``; equals ``alpha/2`` at ``z = 1/2``."""
    au = alpha * (_as_float(z) - 0.5)
    r = np.hypot(1.0, au)
    return 0.5 * alpha / (r * r * r)


def shifted_sigmoid_second(z: Array, alpha: float) -> Array:
    """``f''(z) = -3 alpha^2 (alpha u) / (2 (1 + alpha^2 u^2)^{5/2})``."""
    au = alpha * (_as_float(z) - 0.5)
    r = np.hypot(1.0, au)
    return -1.5 * alpha * alpha * au / (r * r * r * r * r)


def shifted_sigmoid_inverse(a: Array, alpha: float) -> Array:
    """``f^{-1}(a) = 1/2 + s / (alpha sqrt(1 - s^2))`` with ``s = 2a - 1``, for ``a`` in (0, 1)."""
    s = 2.0 * _as_float(a) - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 + s / (alpha * np.sqrt((1.0 - s) * (1.0 + s)))


# --- Semenova's cubic ---------------------------------------------------------------------------
def cubic(z: Array) -> Array:
    """``f(z) = 3 z^2 - 2 z^3`` (Semenova 2022, Methods VII A, p. 10); sigmoid-like on [0, 1]."""
    z = _as_float(z)
    return z * z * (3.0 - 2.0 * z)


def cubic_prime(z: Array) -> Array:
    """``f'(z) = 6 z (1 - z)``."""
    z = _as_float(z)
    return 6.0 * z * (1.0 - z)


def cubic_second(z: Array) -> Array:
    """``f''(z) = 6 - 12 z``."""
    return 6.0 - 12.0 * _as_float(z)


def cubic_inverse(a: Array) -> Array:
    """Inverse of the cubic on its monotone branch ``z`` in [0, 1], for ``a`` in [0, 1].

    With ``z = 1/2 + t`` the equation ``f(z) = a`` is the depressed cubic
    ``t^3 - (3/4) t + (a - 1/2)/2 = 0``; its root in [-1/2, 1/2] is
    ``t = cos((arccos(1 - 2a) - 2 pi) / 3)`` (trigonometric solution, branch k = 1).
    """
    a = _as_float(a)
    with np.errstate(invalid="ignore"):
        return 0.5 + np.cos((np.arccos(1.0 - 2.0 * a) - 2.0 * math.pi) / 3.0)


# --- identity -------------------------------------------------------------------------------
def identity(z: Array) -> Array:
    """``f(z) = z`` (returns a float copy, never the caller's array)."""
    return np.array(z, dtype=np.result_type(z, np.float32), copy=True)


def identity_prime(z: Array) -> Array:
    """``f'(z) = 1``."""
    return np.ones_like(z, dtype=np.result_type(z, np.float32))


def identity_second(z: Array) -> Array:
    """``f''(z) = 0``."""
    return np.zeros_like(z, dtype=np.result_type(z, np.float32))


# --- registry -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Activation:
    """An activation function with its derivatives, resolved from a name such as ``"sigmoid"``.

    ``f``, ``d1``, ``d2`` and ``inverse`` are elementwise functions of arrays of any shape.
    ``inverse`` is ``None`` where no inverse exists. ``d1_from_output``, where set, gives
    ``f'(z)`` from ``f(z)`` (used by the backward pass); ``d1_d2``, where set, gives
    ``(d1(z), d2(z))`` at once with the same bits (Eq. 7's derivative term). ``alpha`` is the
    shifted sigmoid's slope parameter (``None`` for the others).
    """

    name: str
    f: Callable[[Array], Array]
    d1: Callable[[Array], Array]
    d2: Callable[[Array], Array]
    inverse: Callable[[Array], Array] | None
    alpha: float | None = None
    d1_from_output: Callable[[Array], Array] | None = None  #: f'(z) from f(z), where cheaper
    d1_d2: Callable[[Array], tuple] | None = None  #: (d1(z), d2(z)) at once, same bits, where cheaper

    @property
    def spec(self) -> str:
        """The canonical string that :func:`get_activation` turns back into this activation."""
        if self.alpha is None:
            return self.name
        return f"{self.name}(alpha={self.alpha!r})"


ACTIVATION_NAMES = ("sigmoid", "shifted_sigmoid", "cubic", "identity")
_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*alpha\s*=\s*([^)]+?)\s*\))?\s*$")


def get_activation(spec: str | Activation) -> Activation:
    """Resolve an activation name: ``"sigmoid"``, ``"shifted_sigmoid(alpha=4)"``, ``"cubic"``,
    ``"identity"``. An :class:`Activation` is returned unchanged.

    Raises ``ValueError`` naming the argument for an unknown name or a bad ``alpha``.
    """
    if isinstance(spec, Activation):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"activation: expected a name such as 'sigmoid', got {type(spec).__name__}")
    return _parse_activation(spec)


@functools.lru_cache(maxsize=64)  # parsed once per name: forward/backward resolve it per layer
def _parse_activation(spec: str) -> Activation:
    m = _SPEC.match(spec)
    name = m.group(1) if m else spec
    if not m or name not in ACTIVATION_NAMES:
        raise ValueError(f"activation: unknown activation {spec!r}; known: "
                         "'sigmoid', 'shifted_sigmoid(alpha=A)', 'cubic', 'identity'")
    alpha_text = m.group(2)
    if name == "shifted_sigmoid":
        if alpha_text is None:
            raise ValueError("activation: 'shifted_sigmoid' needs a slope, e.g. "
                             "'shifted_sigmoid(alpha=4)'")
        try:
            alpha = float(alpha_text)
        except ValueError:
            raise ValueError(f"activation: alpha in {spec!r} is not a number") from None
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"activation: alpha must be finite and > 0, got {alpha}")
        return Activation(
            "shifted_sigmoid",
            lambda z: shifted_sigmoid(z, alpha),
            lambda z: shifted_sigmoid_prime(z, alpha),
            lambda z: shifted_sigmoid_second(z, alpha),
            lambda a: shifted_sigmoid_inverse(a, alpha),
            alpha,
        )
    if alpha_text is not None:
        raise ValueError(f"activation: {name!r} takes no alpha (got {spec!r})")
    table = {
        "sigmoid": (sigmoid, sigmoid_prime, sigmoid_second, sigmoid_inverse, sigmoid_prime_from_output),
        "cubic": (cubic, cubic_prime, cubic_second, cubic_inverse),
        "identity": (identity, identity_prime, identity_second, identity, identity_prime),
    }
    f, d1, d2, inv, *from_output = table[name]
    return Activation(name, f, d1, d2, inv, d1_from_output=from_output[0] if from_output else None,
                      d1_d2=sigmoid_prime_and_second if name == "sigmoid" else None)
