"""Lambdas per weight layer: validated once, at the public boundary, into one canonical form.

A user gives either one number (the same lambda on every layer ``l >= 2``, as Duque 2024's
Eq. 4 sums from ``l = 2``) or a mapping ``{layer: lambda}`` in which a negative layer counts
from the output (-1 = ``W^(L)``), so that a spec does not depend on the network's depth.

:func:`normalise_lambdas` turns that into the canonical form, a ``float`` or a sorted tuple
of ``(layer, lambda)`` pairs (hashable, so the specs holding it can be frozen dataclasses).
:func:`layers_of` resolves the canonical form for a network of ``L`` weight layers; it only
checks what needs ``L`` (range, duplicates after resolution) and trusts the rest.
"""
from __future__ import annotations

import math
from typing import Mapping, Union

import numpy as np

__all__ = ["LayerLambdas", "CanonicalLambdas", "check_lambda", "normalise_lambdas", "layers_of",
           "resolve_layer_lambdas", "lambdas_to_json"]

#: What a user may pass: ``{layer: lambda}``, or one lambda for every layer ``l >= 2``.
LayerLambdas = Union[Mapping[int, float], float]
#: What a spec stores: a float, or sorted ``(layer, lambda)`` pairs.
CanonicalLambdas = Union[float, tuple]


def check_lambda(name: str, lam) -> float:
    """``lam`` as a finite float >= 0, or ``ValueError`` naming ``name``."""
    try:
        lam = float(lam)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: lambda must be a number, got {lam!r}") from None
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"{name}: lambda must be finite and >= 0, got {lam}")
    return lam


def normalise_lambdas(name: str, lambdas) -> CanonicalLambdas:
    """The canonical form of a user's lambdas (see the module docstring); validates all values."""
    if isinstance(lambdas, (int, float)) and not isinstance(lambdas, bool):
        return check_lambda(name, lambdas)
    items = lambdas.items() if isinstance(lambdas, Mapping) else lambdas
    try:
        pairs = [(l, lam) for l, lam in items]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or a mapping {{layer: lambda}}, "
                         f"got {lambdas!r}") from None
    out = {}
    for l, lam in pairs:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or l == 0:
            raise ValueError(f"{name}: layers are integers 1..L (or -1..-L from the output), "
                             f"got {l!r}")
        if int(l) in out:
            raise ValueError(f"{name}: layer {l} given twice")
        out[int(l)] = check_lambda(f"{name}[{l}]", lam)
    return tuple(sorted(out.items()))


def layers_of(canonical: CanonicalLambdas, n_layers: int, name: str) -> dict[int, float]:
    """``{l: lambda}`` with ``l`` in 1..L, from the canonical form, for ``L = n_layers``.

    A float means the same lambda on every layer ``l >= 2`` (Duque 2024, Eq. 4, p. 3).
    ``ValueError`` naming ``name`` if a layer is out of range or given twice after resolution.
    """
    L = int(n_layers)
    if isinstance(canonical, float):
        return {l: canonical for l in range(2, L + 1)}
    out, given_as = {}, {}
    for l, lam in canonical:
        r = l + L + 1 if l < 0 else l
        if not 1 <= r <= L:
            raise ValueError(f"{name}: layer {l} does not exist in a network with {L} weight "
                             f"layers (valid: 1..{L} or -1..-{L})")
        if r in out:  # a negative number counts from the output: -1 is layer L
            raise ValueError(f"{name}: layers {given_as[r]} and {l} are the same layer {r} "
                             f"of a network with {L} weight layers")
        out[r], given_as[r] = lam, l
    return out


def resolve_layer_lambdas(lambdas, n_layers: int, name: str = "lambdas") -> dict[int, float]:
    """A user's lambdas (any accepted form) resolved to ``{l: lambda}``, ``l`` in 1..L."""
    return layers_of(normalise_lambdas(name, lambdas), n_layers, name)


def lambdas_to_json(canonical: CanonicalLambdas) -> float | dict[str, float]:
    """The canonical form as JSON: a number, or ``{"layer": lambda}``."""
    return canonical if isinstance(canonical, float) else {str(k): v for k, v in canonical}
