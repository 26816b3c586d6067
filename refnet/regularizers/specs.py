"""The regularizer specs (frozen, hashable, JSON round-trip) and the named presets.

A spec validates its lambdas once, when it is made (:mod:`refnet.regularizers.lambdas`); the
equations trust it. ``as_dict``/:func:`regularizer_from_dict` are the JSON form stored in model
and checkpoint metadata, so their format is kept stable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

from ..errors import ConfigError
from ..model import Architecture, Cache, Params
from ..noise import NoiseConfig
from .lambdas import LayerLambdas, check_lambda, lambdas_to_json, normalise_lambdas

__all__ = ["RowSumPenalty", "SaturationPenalty", "ExpectedLoss", "Regularizer", "regularizer_from_dict",
           "REGULARIZER_PRESETS", "regularizer_preset"]


class _Spec:
    def value_and_grad(self, arch: Architecture, params: Params, cache: Cache | None = None):
        """``(value, grads, dZ_extra)``, as :func:`regularizer_value_and_grad` for this spec."""
        from .combine import regularizer_value_and_grad
        return regularizer_value_and_grad(arch, params, cache, self)


@dataclass(frozen=True)
class RowSumPenalty(_Spec):
    """Eq. 4 against correlated noise: ``sum_l lambda_l sum_i |sum_j w_ij^(l)|``.

    (Duque 2024, Eq. 4, p. 3). ``lambdas`` is ``{layer: lambda}`` or one float for every layer
    ``l >= 2`` (the paper's sum starts at ``l = 2``: noise never reaches the input weights).
    A mapping is stored as sorted ``(layer, lambda)`` pairs so that the spec is hashable.
    """

    lambdas: LayerLambdas

    def __post_init__(self):
        object.__setattr__(self, "lambdas", normalise_lambdas("lambdas", self.lambdas))

    def as_dict(self) -> dict:
        return {"kind": "row_sum", "lambdas": lambdas_to_json(self.lambdas)}


@dataclass(frozen=True)
class SaturationPenalty(_Spec):
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
                           normalise_lambdas("derivative_lambdas", self.derivative_lambdas))
        object.__setattr__(self, "weight_lambdas",
                           normalise_lambdas("weight_lambdas", self.weight_lambdas))
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"reduction: must be 'mean' or 'sum', got {self.reduction!r}")
        if isinstance(self.power, bool) or self.power not in (1, 2):
            raise ValueError(f"power: must be 1 (f') or 2 (f'^2), got {self.power!r}")

    def as_dict(self) -> dict:
        return {"kind": "saturation",
                "derivative_lambdas": lambdas_to_json(self.derivative_lambdas),
                "weight_lambdas": lambdas_to_json(self.weight_lambdas),
                "reduction": self.reduction, "power": self.power}


@dataclass(frozen=True)
class ExpectedLoss(_Spec):
    """The noise-level objective: cross-entropy expected under the hardware's noise, 2nd order.

    Derived (docs/expected_loss.md): ``E[CE] ~ CE(y) + 1/2 tr(H Sigma)`` with
    ``H = diag(p) - p p^T`` and ``Sigma`` the first-order logit covariance of ``noise``. As a
    regularizer it adds the penalty ``1/2 tr(H Sigma)`` (batch mean) to the training loss,
    which must be the cross-entropy and is evaluated on the clean network (no noise-aware
    training at the same time). Its one parameter is ``noise``: the variances the hardware has
    (not a tuned weight) and where they act, after the activation (``position="post"``); e.g.
    ``ExpectedLoss(noise_config("duque", NoiseSpec(add_unc=0.1)))``.
    """

    noise: NoiseConfig

    def __post_init__(self):
        if not isinstance(self.noise, NoiseConfig):
            raise ConfigError(f"noise: expected a NoiseConfig, got {type(self.noise).__name__}")
        if self.noise.position != "post":
            raise ConfigError("noise: the expected-loss objective supports noise after the "
                              f"activation only (position='post'), got {self.noise.position!r}")

    def as_dict(self) -> dict:
        return {"kind": "expected_loss", "noise": self.noise.as_dict()}


Regularizer = Union[RowSumPenalty, SaturationPenalty, ExpectedLoss]
SPEC_TYPES = (RowSumPenalty, SaturationPenalty, ExpectedLoss)


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
    if kind == "expected_loss":
        return ExpectedLoss(NoiseConfig.from_dict(d["noise"]))
    raise ValueError(f"kind: unknown regularizer kind {kind!r}; known: row_sum, saturation, "
                     "expected_loss")


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
        lam = lam0 if lam is None else check_lambda("lam", lam)
        return SaturationPenalty({2: lam * c0}, {2: lam * c1, -1: lam * c2}, "sum",
                                 2 if name.startswith("addunc_sigm_sq") else 1)
    if lam is None:
        raise ValueError(f"lam: preset {name!r} has no published lambda; pass lam=")
    lam = check_lambda("lam", lam)
    if name == "eq4":
        return RowSumPenalty(lam)
    if name == "custom_sum":
        return RowSumPenalty({2: lam, -1: 30.0 * lam})
    return SaturationPenalty({2: lam}, lam, "mean", 1)
