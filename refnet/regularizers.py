"""Duque et al.'s explainable regularizers, with hand-derived gradients.

=========================================  ======================================  ==========================
equation                                   function                                test
=========================================  ======================================  ==========================
(Duque 2024, Eq. 4, p. 3) row sums         :func:`row_sum_penalty`                 test_regularizers.py
(Duque 2024, Eq. 7, p. 5) f'(z) term       :func:`derivative_penalty`              test_regularizers.py
(Duque 2024, Eq. 7, p. 5) ||W||^2 term     :func:`weight_norm_penalty`             test_regularizers.py
(Duque 2024, Eq. 7, p. 5) whole            :func:`saturation_penalty`              test_torch_crosscheck_reg_optim.py
=========================================  ======================================  ==========================

Layer numbering follows the paper: ``W^(l)``, ``l = 1..L``, is ``params.W[l-1]``; ``l = 1`` is
the input weight matrix; ``z^(l)`` is the pre-activation of weight layer ``l``, i.e.
``cache.Zn[l-1]`` (the one fed to the activation, after any pre-activation noise). In every
``{layer: lambda}`` mapping a negative layer counts from the output (-1 = ``W^(L)``), so a spec
does not depend on the depth. Biases are never regularized (their gradients are zero here).

The trainer adds a regularizer to the loss in one forward/backward pass:
``value, grads, dZ_extra = regularizer_value_and_grad(arch, params, cache, regs)``; the weight
terms are in ``grads``, and the Eq. 7 derivative term arrives as ``dZ_extra = {l: dR/dz^(l)}``
for :func:`refnet.model.backward`, which carries it through ``f''`` into ``W^(l)``, ``b^(l)``,
the previous activations and every earlier layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Union

import numpy as np

from .activations import get_activation
from .model import Architecture, Cache, Params, backward, check_params, forward

__all__ = ["RowSumPenalty", "SaturationPenalty", "Regularizer", "row_sum_penalty",
           "derivative_penalty", "weight_norm_penalty", "saturation_penalty",
           "regularizer_value", "regularizer_value_and_grad", "value", "value_and_grad",
           "regularizer_preset", "REGULARIZER_PRESETS", "regularizer_from_dict",
           "resolve_layer_lambdas"]

Array = np.ndarray
#: ``{layer: lambda}``, or one lambda for every layer ``l >= 2`` (the paper's default set).
LayerLambdas = Union[Mapping[int, float], float]


def _check_lambda(name: str, lam) -> float:
    try:
        lam = float(lam)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: lambda must be a number, got {lam!r}") from None
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"{name}: lambda must be finite and >= 0, got {lam}")
    return lam


def _normalise_lambdas(name: str, lambdas) -> float | tuple[tuple[int, float], ...]:
    """A float (kept) or a mapping (as sorted ``(layer, lambda)`` pairs, so specs are hashable)."""
    if isinstance(lambdas, (int, float)) and not isinstance(lambdas, bool):
        return _check_lambda(name, lambdas)
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
        out[int(l)] = _check_lambda(f"{name}[{l}]", lam)
    return tuple(sorted(out.items()))


def resolve_layer_lambdas(lambdas, n_layers: int, name: str = "lambdas") -> dict[int, float]:
    """``{l: lambda}`` with ``l`` in 1..L for a network of ``L = n_layers`` weight layers.

    A float means the same lambda on every layer ``l >= 2`` (Duque 2024, Eq. 4, p. 3).
    ``ValueError`` naming ``name`` if a layer is out of range or given twice after resolution.
    """
    L = int(n_layers)
    norm = _normalise_lambdas(name, lambdas)
    if isinstance(norm, float):
        return {l: norm for l in range(2, L + 1)}
    out = {}
    for l, lam in norm:
        r = l + L + 1 if l < 0 else l
        if not 1 <= r <= L:
            raise ValueError(f"{name}: layer {l} does not exist in a network with {L} weight "
                             f"layers (valid: 1..{L} or -1..-{L})")
        if r in out:
            raise ValueError(f"{name}: layer {l} is layer {r}, which is given twice")
        out[r] = lam
    return out


def _as_mapping(norm) -> float | dict[int, float]:
    return norm if isinstance(norm, float) else dict(norm)


@dataclass(frozen=True)
class RowSumPenalty:
    """Eq. 4 against correlated noise: ``sum_l lambda_l sum_i |sum_j w_ij^(l)|``.

    (Duque 2024, Eq. 4, p. 3). ``lambdas`` is ``{layer: lambda}`` or one float for every layer
    ``l >= 2`` (the paper's sum starts at ``l = 2``: noise never reaches the input weights).
    A mapping is stored as sorted ``(layer, lambda)`` pairs so that the spec is hashable.
    """

    lambdas: LayerLambdas

    def __post_init__(self):
        object.__setattr__(self, "lambdas", _normalise_lambdas("lambdas", self.lambdas))

    def as_dict(self) -> dict:
        lam = _as_mapping(self.lambdas)
        return {"kind": "row_sum",
                "lambdas": lam if isinstance(lam, float) else {str(k): v for k, v in lam.items()}}

    def value_and_grad(self, arch: Architecture, params: Params, cache: Cache | None = None):
        """``(value, grads, dZ_extra)``, as :func:`regularizer_value_and_grad` for this spec."""
        return regularizer_value_and_grad(arch, params, cache, self)


@dataclass(frozen=True)
class SaturationPenalty:
    """Eq. 7 against uncorrelated noise, generalised to any layers.

    (Duque 2024, Eq. 7, p. 5):
    ``R = sum_{l in D} lambda_l red_b sum_i f'(z_bi^(l))^p + sum_{l in W} lambda_l ||W^(l)||_F^2``.

    ``derivative_lambdas``: ``{l: lambda}`` for the penalised pre-activations ``z^(l)`` (the
    paper: ``{2: lambda_1}``). ``weight_lambdas``: ``{l: lambda}`` or one float for every layer
    ``l >= 2`` (the paper: layers 2 and 3). ``reduction`` over the batch: ``"mean"`` (the
    paper's loss is a batch mean) or ``"sum"`` (the authors' code). ``power``: 1 for ``f'``
    (the paper), 2 for ``f'^2`` (the authors' code until late August 2024). Mappings are
    stored as sorted ``(layer, lambda)`` pairs so that the spec is hashable.
    """

    derivative_lambdas: Mapping[int, float]
    weight_lambdas: LayerLambdas = ()
    reduction: str = "mean"
    power: int = 1

    def __post_init__(self):
        if isinstance(self.derivative_lambdas, (int, float)):
            raise ValueError("derivative_lambdas: expected a mapping {layer: lambda}, "
                             f"got {self.derivative_lambdas!r}")
        object.__setattr__(self, "derivative_lambdas",
                           _normalise_lambdas("derivative_lambdas", self.derivative_lambdas))
        object.__setattr__(self, "weight_lambdas",
                           _normalise_lambdas("weight_lambdas", self.weight_lambdas))
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"reduction: must be 'mean' or 'sum', got {self.reduction!r}")
        if isinstance(self.power, bool) or self.power not in (1, 2):
            raise ValueError(f"power: must be 1 (f') or 2 (f'^2), got {self.power!r}")

    def as_dict(self) -> dict:
        w = _as_mapping(self.weight_lambdas)
        return {"kind": "saturation",
                "derivative_lambdas": {str(k): v for k, v in self.derivative_lambdas},
                "weight_lambdas": w if isinstance(w, float) else {str(k): v for k, v in w.items()},
                "reduction": self.reduction, "power": self.power}

    def value_and_grad(self, arch: Architecture, params: Params, cache: Cache | None = None):
        """``(value, grads, dZ_extra)``, as :func:`regularizer_value_and_grad` for this spec."""
        return regularizer_value_and_grad(arch, params, cache, self)


Regularizer = Union[RowSumPenalty, SaturationPenalty]


def regularizer_from_dict(d: dict) -> Regularizer:
    """Inverse of ``as_dict`` (for JSON metadata)."""
    def lam(v):
        return float(v) if isinstance(v, (int, float)) else {int(k): x for k, x in v.items()}
    kind = d.get("kind")
    if kind == "row_sum":
        return RowSumPenalty(lam(d["lambdas"]))
    if kind == "saturation":
        return SaturationPenalty(lam(d["derivative_lambdas"]), lam(d["weight_lambdas"]),
                                 d["reduction"], int(d["power"]))
    raise ValueError(f"kind: unknown regularizer kind {kind!r}; known: row_sum, saturation")


# --- the equations ---------------------------------------------------------------------------
def row_sum_penalty(params: Params, lambdas: LayerLambdas) -> tuple[float, Params]:
    """Row-sum penalty and its gradient (Duque 2024, Eq. 4, p. 3).

    ``R = sum_l lambda_l sum_i |sum_j w_ij^(l)|``, ``dR/dw_ij^(l) = lambda_l sign(s_i^(l))`` for
    every ``j``, with ``s_i^(l) = sum_j w_ij^(l)`` the row sum of neuron ``i``'s incoming weights.
    At ``s_i = 0`` the subgradient is taken as 0 (``sign(0) = 0``, as PyTorch's ``abs``): a row
    that already meets the zero-sum condition is left alone.

    Parameters
    ----------
    params : Params
        ``W[l-1]`` of shape ``(n_out, n_in)``.
    lambdas : {layer: lambda} or float
        Penalised layers (float: every layer ``l >= 2``, the paper's default).

    Returns
    -------
    value : float
    grads : Params
        ``dR/dW^(l)``, shape ``(n_out, n_in)``; zero for unpenalised layers and all biases.
    """
    lam = resolve_layer_lambdas(lambdas, len(params.W), "lambdas")
    R = 0.0
    dW = [np.zeros_like(W) for W in params.W]
    for l, lambda_l in lam.items():
        W = params.W[l - 1]
        s = W.sum(axis=1)  # s_i = sum_j w_ij, shape (n_out,)
        R += lambda_l * float(np.abs(s).sum())
        dW[l - 1] = np.broadcast_to((lambda_l * np.sign(s))[:, None], W.shape).astype(W.dtype)
    return R, Params(tuple(dW), tuple(np.zeros_like(b) for b in params.b))


def derivative_penalty(activation, z: Array, lam: float, reduction: str = "mean",
                       power: int = 1) -> tuple[float, Array]:
    """Derivative term of Eq. 7 for one layer: ``lambda red_b sum_i f'(z_bi)^p``.

    (Duque 2024, Eq. 7, p. 5), first term, with ``z = z^(l)``. The paper writes ``sum_i f'(z_i)``
    for one sample, inside a batch-mean loss (``reduction="mean"``); the authors' code sums over
    the batch (``"sum"``) and until late August 2024 used ``f'^2`` (``power=2``).

    Parameters
    ----------
    activation : str or Activation
        ``f``, with ``d1 = f'`` and ``d2 = f''``.
    z : ndarray, shape (n_batch, n_neurons)
        Pre-activations fed to ``f`` (``cache.Zn[l-1]``).
    lam : float
        ``lambda_l >= 0``.

    Returns
    -------
    value : float
    dR_dz : ndarray, shape (n_batch, n_neurons)
        ``lambda p f'(z)^{p-1} f''(z) / n`` with ``n = n_batch`` for the mean, 1 for the sum.
    """
    f = get_activation(activation)
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"z: expected shape (n_batch, n_neurons), got {z.shape}")
    n = z.shape[0] if reduction == "mean" else 1
    f1, f2 = f.d1(z), f.d2(z)
    if power == 1:
        return lam * float(f1.sum()) / n, (lam / n) * f2
    return lam * float((f1 * f1).sum()) / n, (2.0 * lam / n) * f1 * f2


def weight_norm_penalty(weight_matrix: Array, lam: float) -> tuple[float, Array]:
    """Weight term of Eq. 7 for one layer: ``lambda ||W||_F^2``, gradient ``2 lambda W``.

    (Duque 2024, Eq. 7, p. 5), second term. ``weight_matrix`` has shape ``(n_out, n_in)``.
    """
    W = weight_matrix
    return lam * float(np.sum(W * W)), (2.0 * lam) * W


def _check_cache(arch: Architecture, cache: Cache, l: int) -> Array:
    z = cache.Zn[l - 1]
    want = (cache.A[0].shape[0], arch.sizes[l])
    if z.shape != want:
        raise ValueError(f"cache: Zn[{l - 1}] has shape {z.shape}, expected {want}")
    return z


def saturation_penalty(arch: Architecture, params: Params, cache: Cache,
                       spec: SaturationPenalty) -> tuple[float, Params, dict[int, Array]]:
    """Eq. 7 on a batch's forward pass (Duque 2024, Eq. 7, p. 5).

    Returns ``(value, grads, dZ_extra)``: ``grads`` holds the weight terms ``2 lambda_l W^(l)``
    (zero elsewhere and for biases); ``dZ_extra[l] = dR/dz^(l)`` of shape
    ``(n_batch, sizes[l])`` is the derivative term, for :func:`refnet.model.backward`.
    """
    L = arch.n_layers
    R = 0.0
    dZ_extra = {}
    for l, lam in resolve_layer_lambdas(dict(spec.derivative_lambdas), L,
                                        "derivative_lambdas").items():
        z = _check_cache(arch, cache, l)
        v, dz = derivative_penalty(arch.activations[l - 1], z, lam, spec.reduction, spec.power)
        R += v
        dZ_extra[l] = dz
    dW = [np.zeros_like(W) for W in params.W]
    for l, lam in resolve_layer_lambdas(_as_mapping(spec.weight_lambdas), L,
                                        "weight_lambdas").items():
        v, dW[l - 1] = weight_norm_penalty(params.W[l - 1], lam)
        R += v
    return R, Params(tuple(dW), tuple(np.zeros_like(b) for b in params.b)), dZ_extra


# --- combining and convenience ---------------------------------------------------------------
def _as_list(regs) -> list[Regularizer]:
    if regs is None:
        return []
    regs = [regs] if isinstance(regs, (RowSumPenalty, SaturationPenalty)) else list(regs)
    for r in regs:
        if not isinstance(r, (RowSumPenalty, SaturationPenalty)):
            raise TypeError(f"regs: expected RowSumPenalty or SaturationPenalty, got "
                            f"{type(r).__name__}")
    return regs


def regularizer_value_and_grad(arch: Architecture, params: Params, cache: Cache | None,
                               regs) -> tuple[float, Params, dict[int, Array]]:
    """Total value of ``regs`` (one spec, a sequence, or ``None``) with its gradients.

    Returns ``(value, grads, dZ_extra)``: ``grads`` are the direct weight gradients (Eq. 4 and
    Eq. 7's weight terms), ``dZ_extra = {l: dR/dz^(l)}`` the pre-activation gradients of Eq. 7's
    derivative terms, to pass to ``backward(arch, params, cache, d_loss, dZ_extra)`` together
    with the loss gradient, then add ``grads``. ``cache`` (from :func:`refnet.model.forward` on
    the same batch and params) may be ``None`` when no spec needs it.
    """
    check_params(arch, params)
    R = 0.0
    dW = [np.zeros_like(W) for W in params.W]
    dZ_extra: dict[int, Array] = {}
    for reg in _as_list(regs):
        if isinstance(reg, RowSumPenalty):
            v, g = row_sum_penalty(params, _as_mapping(reg.lambdas))
            extra = {}
        else:
            if cache is None:
                raise ValueError("cache: SaturationPenalty needs the batch's forward cache")
            v, g, extra = saturation_penalty(arch, params, cache, reg)
        R += v
        dW = [a + b for a, b in zip(dW, g.W)]
        for l, dz in extra.items():
            dZ_extra[l] = dZ_extra[l] + dz if l in dZ_extra else dz
    return R, Params(tuple(dW), tuple(np.zeros_like(b) for b in params.b)), dZ_extra


def regularizer_value(arch: Architecture, params: Params, cache: Cache | None, regs) -> float:
    """Value of ``regs`` alone, computed without any gradient (an independent check)."""
    check_params(arch, params)
    R = 0.0
    L = arch.n_layers
    for reg in _as_list(regs):
        if isinstance(reg, RowSumPenalty):
            for l, lam in resolve_layer_lambdas(_as_mapping(reg.lambdas), L).items():
                R += lam * float(np.abs(params.W[l - 1].sum(axis=1)).sum())
            continue
        if cache is None:
            raise ValueError("cache: SaturationPenalty needs the batch's forward cache")
        for l, lam in resolve_layer_lambdas(dict(reg.derivative_lambdas), L,
                                            "derivative_lambdas").items():
            z = _check_cache(arch, cache, l)
            f1 = get_activation(arch.activations[l - 1]).d1(z)
            n = z.shape[0] if reg.reduction == "mean" else 1
            R += lam * float((f1 ** reg.power).sum()) / n
        for l, lam in resolve_layer_lambdas(_as_mapping(reg.weight_lambdas), L,
                                            "weight_lambdas").items():
            R += lam * float(np.sum(params.W[l - 1] ** 2))
    return R


def value(arch: Architecture, params: Params, X, regs, noise=None, rng=None, draws=None) -> float:
    """Value of ``regs`` on batch ``X`` (runs :func:`refnet.model.forward` itself)."""
    _, cache = forward(arch, params, X, noise, rng, draws)
    return regularizer_value(arch, params, cache, regs)


def value_and_grad(arch: Architecture, params: Params, X, regs, noise=None, rng=None,
                   draws=None) -> tuple[float, Params]:
    """Value of ``regs`` on batch ``X`` and its full gradient with respect to ``params``.

    Runs the forward pass (``noise``, ``rng``, ``draws`` as in :func:`refnet.model.forward`),
    then backpropagates Eq. 7's ``dR/dz`` with a zero output gradient. For tests and finite
    differences; the trainer uses :func:`regularizer_value_and_grad` inside its own pass.
    """
    out, cache = forward(arch, params, X, noise, rng, draws)
    R, g, dZ_extra = regularizer_value_and_grad(arch, params, cache, regs)
    if not dZ_extra:
        return R, g
    back = backward(arch, params, cache, np.zeros_like(out), dZ_extra)
    return R, Params(tuple(a + b for a, b in zip(g.W, back.W)),
                     tuple(a + b for a, b in zip(g.b, back.b)))


# --- named presets ---------------------------------------------------------------------------
#: Names accepted by :func:`regularizer_preset`.
REGULARIZER_PRESETS = ("eq4", "custom_sum", "eq7", "addunc_sigm_mnist", "addunc_sigm_fashion",
                       "addunc_sigm_sq", "addunc_sigm_sq_fashion")

#: The authors' code coefficient sets (lambda, (c0, c1, c2)); see reference-code-facts.md.
_CODE_SETS = {"addunc_sigm_mnist": (6e-3, (0.01, 0.015, 3.0)),
              "addunc_sigm_fashion": (1.2e-2, (0.1, 0.015, 2.0)),
              "addunc_sigm_sq": (6e-3, (0.01, 0.015, 3.0)),
              "addunc_sigm_sq_fashion": (1.2e-2, (0.1, 0.015, 2.0))}


def regularizer_preset(name: str, lam: float | None = None) -> Regularizer:
    """A named regularizer: the paper's equations and the authors' code variants.

    * ``"eq4"``: (Duque 2024, Eq. 4, p. 3) as printed: ``lam`` on every layer ``l >= 2``.
      The paper gives no value: ``lam`` is required.
    * ``"custom_sum"``: the authors' code version of Eq. 4: ``lam (sum_i |s_i^(2)| +
      30 sum_i |s_i^(L)|)``. Differs from the paper by the factor 30 on the output layer (added
      two days before publication; 1:1 before) and by penalising only layers 2 and L (the same
      as the paper for 784-300-300-10). Lambda not recorded: ``lam`` is required (the code's
      final general lambda was 6e-3).
    * ``"eq7"``: (Duque 2024, Eq. 7, p. 5) as printed: ``lam sum_i f'(z_i^(2))`` averaged over
      the batch, plus ``lam ||W^(l)||_F^2`` for every ``l >= 2``. No published values: ``lam``
      is required and used for every lambda_l.
    * ``"addunc_sigm_mnist"`` / ``"addunc_sigm_fashion"``: the authors' code version of Eq. 7:
      ``lam (c0 sum_{batch, i} f'(z_i^(2)) + c1 ||W^(2)||^2 + c2 ||W^(L)||^2)``, **summed** over
      the batch (the paper: averaged) with ``(lam, c0, c1, c2) = (6e-3, 0.01, 0.015, 3.0)`` for
      MNIST and ``(1.2e-2, 0.1, 0.015, 2.0)`` for Fashion-MNIST; ``lam`` overrides the lambda.
    * ``"addunc_sigm_sq"`` / ``"addunc_sigm_sq_fashion"``: the same with ``f'(z)^2`` instead of
      ``f'(z)`` (the code until late August 2024) and the MNIST / Fashion-MNIST coefficients (the
      coefficients of that period are not recorded separately; the final sets are used).
    """
    if name not in REGULARIZER_PRESETS:
        raise ValueError(f"name: unknown regularizer preset {name!r}; known: "
                         f"{', '.join(REGULARIZER_PRESETS)}")
    if name in _CODE_SETS:
        lam0, (c0, c1, c2) = _CODE_SETS[name]
        lam = lam0 if lam is None else _check_lambda("lam", lam)
        return SaturationPenalty({2: lam * c0}, {2: lam * c1, -1: lam * c2}, "sum",
                                 2 if name.startswith("addunc_sigm_sq") else 1)
    if lam is None:
        raise ValueError(f"lam: preset {name!r} has no published lambda; pass lam=")
    lam = _check_lambda("lam", lam)
    if name == "eq4":
        return RowSumPenalty(lam)
    if name == "custom_sum":
        return RowSumPenalty({2: lam, -1: 30.0 * lam})
    return SaturationPenalty({2: lam}, lam, "mean", 1)
