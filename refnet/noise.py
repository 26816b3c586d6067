"""The noise contract: one model of neuron noise for training, evaluation and analysis.

Contract (stated once, here; the README repeats it and ``tests/test_noise.py`` checks it)
----------------------------------------------------------------------------------------
* Four zero-mean Gaussian sources act on a noisy layer's signal ``x`` (Semenova 2022, Eq. 3,
  p. 3; the authors' code of Duque 2024)::

      y = x * (1 + xi_MU) * (1 + xi_MC) + xi_AU + xi_AC

  U = uncorrelated (independent per sample and neuron), C = correlated (one draw per
  (sample, layer), shared by all neurons of that layer), A = additive, M = multiplicative.
* Every level is a **variance**: ``xi_AU ~ N(0, add_unc)``, i.e. std ``sqrt(add_unc)``.
  Semenova's intensity ``D`` means variance ``2 D`` (:meth:`NoiseSpec.from_intensities`).
* Every layer draws its own noise, independent across samples, layers and forward passes.
* Which layers carry noise is an explicit setting: layer 0 is the input, layer ``l`` (1..L)
  is the output of the l-th weight layer; the last is the network output. A layer may have
  variances of its own (``NoiseConfig.layer_specs``); the others share ``spec``. Whether noise acts
  after the activation (on ``f(z)``) or before it (on ``z``) is an explicit setting too.
* Backward pass: the noise draws are held fixed, so ``dy/dx = (1 + xi_MU)(1 + xi_MC)``: the
  multiplicative factors enter the gradient, additive noise passes it straight through. This is
  the exact derivative of the noisy forward for the drawn noise, and what the authors' PyTorch
  code does.
* Draws can be supplied explicitly (:class:`LayerNoise`, standard normals), so a noisy
  forward/backward is exactly reproducible and comparable with another framework.

Presets (:func:`noise_config`)
------------------------------
``"duque"``     noise after the activation of every hidden layer; none on input or logits
                (Duque 2024, Sec. 2 and Fig. 1; the authors' code).
``"semenova"``  noise after the activation of every layer, input and output included. Reading
                of Semenova 2022: Eq. 23 gives the second layer's pre-activation the variance
                ``sigma_+^2 + sigma_x^2 E[x_1]^2``, so the (linear) input neurons' outputs are
                noisy; Sec. II says hidden and output neurons are noisy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ._model_kernels import plus_scaled
from ._random_kernels import standard_normal

__all__ = ["NoiseSpec", "NoiseConfig", "LayerNoise", "noise_config", "NOISE_PRESETS",
           "NOISE_TYPES", "draw_layer_noise", "draw_network_noise", "apply_noise",
           "noise_gradient_factor"]

Array = np.ndarray

#: The four sources by their short names, in the order used everywhere (draws, CSV columns).
NOISE_TYPES = ("add_unc", "add_cor", "mul_unc", "mul_cor")


def _check_variance(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: a noise variance must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: a noise variance must be finite, got {v}")
    if v < 0:
        raise ValueError(f"{name}: a noise variance must be >= 0, got {v}")
    return v


@dataclass(frozen=True)
class NoiseSpec:
    """Variances of the four Gaussian noise sources of one layer (all >= 0, finite).

    (Semenova 2022, Eq. 3, p. 3) with ``2 D`` written as a variance.
    """

    add_unc: float = 0.0  #: variance of xi_AU, Semenova's 2 D_A^U (per neuron)
    add_cor: float = 0.0  #: variance of xi_AC, Semenova's 2 D_A^C (shared by the layer)
    mul_unc: float = 0.0  #: variance of xi_MU, Semenova's 2 D_M^U (per neuron)
    mul_cor: float = 0.0  #: variance of xi_MC, Semenova's 2 D_M^C (shared by the layer)

    def __post_init__(self):
        for name in NOISE_TYPES:
            object.__setattr__(self, name, _check_variance(name, getattr(self, name)))

    @classmethod
    def from_intensities(cls, D_A_U: float = 0.0, D_A_C: float = 0.0, D_M_U: float = 0.0,
                         D_M_C: float = 0.0) -> "NoiseSpec":
        """From Semenova's intensities ``D`` (Semenova 2022, Eq. 3): each variance is ``2 D``."""
        for name, d in (("D_A_U", D_A_U), ("D_A_C", D_A_C), ("D_M_U", D_M_U), ("D_M_C", D_M_C)):
            _check_variance(name, d)
        return cls(2.0 * D_A_U, 2.0 * D_A_C, 2.0 * D_M_U, 2.0 * D_M_C)

    @classmethod
    def single(cls, noise_type: str, variance: float) -> "NoiseSpec":
        """One source alone, e.g. ``NoiseSpec.single("add_cor", 0.1)``."""
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"noise_type: unknown {noise_type!r}; known: {', '.join(NOISE_TYPES)}")
        return cls(**{noise_type: variance})

    @property
    def is_zero(self) -> bool:
        return not (self.add_unc or self.add_cor or self.mul_unc or self.mul_cor)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in NOISE_TYPES}


@dataclass(frozen=True)
class NoiseConfig:
    """Where the noise of a :class:`NoiseSpec` acts in a network.

    ``layers`` lists the noisy layers: 0 is the input, ``l`` = 1..L the output of the l-th
    weight layer; negative numbers count from the output (-1 = the network output).
    ``position`` is ``"post"`` (on ``f(z)``, after the activation) or ``"pre"`` (on ``z``).
    The input layer has no activation, so ``position`` does not matter there.
    ``layer_specs`` optionally gives some noisy layers their own variances,
    ``{layer: NoiseSpec}`` (stored as sorted ``(layer, spec)`` pairs so the config is
    hashable); the other noisy layers use ``spec``. Each of its layers must be in ``layers``.
    """

    spec: NoiseSpec = field(default_factory=NoiseSpec)
    layers: tuple[int, ...] = ()
    position: str = "post"
    layer_specs: tuple[tuple[int, NoiseSpec], ...] = ()

    def __post_init__(self):
        if not isinstance(self.spec, NoiseSpec):
            raise TypeError(f"spec: expected a NoiseSpec, got {type(self.spec).__name__}")
        if self.position not in ("pre", "post"):
            raise ValueError(f"position: must be 'pre' or 'post', got {self.position!r}")
        object.__setattr__(self, "layers", tuple(int(l) for l in self.layers))
        items = self.layer_specs.items() if isinstance(self.layer_specs, Mapping) else self.layer_specs
        pairs = {}
        for l, s in items:
            if not isinstance(s, NoiseSpec):
                raise TypeError(f"layer_specs[{l}]: expected a NoiseSpec, got {type(s).__name__}")
            if int(l) in pairs:
                raise ValueError(f"layer_specs: layer {l} given twice")
            pairs[int(l)] = s
        object.__setattr__(self, "layer_specs", tuple(sorted(pairs.items())))

    def resolved_layers(self, n_weight_layers: int) -> tuple[int, ...]:
        """The noisy layer numbers in 0..L for a network with ``L = n_weight_layers``."""
        out = {self._resolve(l, n_weight_layers, "layers") for l in self.layers}
        named = {}  # resolved layer -> its number in layer_specs: -1 and L are one layer
        for l, _ in self.layer_specs:
            r = self._resolve(l, n_weight_layers, "layer_specs")
            if r not in out:
                raise ValueError(f"layer_specs: layer {l} is not a noisy layer (layers "
                                 f"{self.layers}); add it to layers or drop its spec")
            if r in named:  # spec_for would take the first without a word
                raise ValueError(f"layer_specs: layers {named[r]} and {l} are the same layer "
                                 f"{r} of a network with {n_weight_layers} weight layers; give "
                                 "its variances once")
            named[r] = l
        return tuple(sorted(out))

    @staticmethod
    def _resolve(l: int, L: int, name: str) -> int:
        r = l + L + 1 if l < 0 else l
        if not 0 <= r <= L:
            raise ValueError(f"{name}: layer {l} does not exist in a network with "
                             f"{L} weight layers (valid: 0..{L})")
        return r

    def spec_for(self, layer: int, n_weight_layers: int) -> NoiseSpec:
        """The variances at ``layer`` (0..L): its ``layer_specs`` entry, else ``spec``."""
        for l, s in self.layer_specs:
            if self._resolve(l, n_weight_layers, "layer_specs") == layer:
                return s
        return self.spec

    @property
    def is_zero(self) -> bool:
        return not self.layers or (self.spec.is_zero and
                                   all(s.is_zero for _, s in self.layer_specs))

    def with_spec(self, spec: NoiseSpec) -> "NoiseConfig":
        """The same placement with ``spec`` on every noisy layer (``layer_specs`` dropped)."""
        return NoiseConfig(spec, self.layers, self.position)

    def as_dict(self) -> dict:
        d = {"spec": self.spec.as_dict(), "layers": list(self.layers), "position": self.position}
        if self.layer_specs:  # only when used, so older files and checkpoints compare equal
            d["layer_specs"] = {str(l): s.as_dict() for l, s in self.layer_specs}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NoiseConfig":
        per = {int(l): NoiseSpec(**s) for l, s in d.get("layer_specs", {}).items()}
        return cls(NoiseSpec(**d["spec"]), tuple(d["layers"]), d["position"], per)


#: Named placements; the hidden layers are 1..L-1, resolved per network.
NOISE_PRESETS = ("duque", "semenova", "none")


def noise_config(preset: str, spec: NoiseSpec | None = None, n_weight_layers: int = 3) -> NoiseConfig:
    """A :class:`NoiseConfig` from a preset name (see the module docstring).

    ``n_weight_layers`` is L, the number of weight layers (3 for 784-300-300-10).
    """
    spec = NoiseSpec() if spec is None else spec
    L = int(n_weight_layers)
    if L < 1:
        raise ValueError(f"n_weight_layers: must be >= 1, got {n_weight_layers}")
    if preset == "duque":
        return NoiseConfig(spec, tuple(range(1, L)), "post")
    if preset == "semenova":
        return NoiseConfig(spec, tuple(range(0, L + 1)), "post")
    if preset == "none":
        return NoiseConfig(NoiseSpec(), (), "post")
    raise ValueError(f"preset: unknown noise preset {preset!r}; known: {', '.join(NOISE_PRESETS)}")


@dataclass(frozen=True)
class LayerNoise:
    """Standard-normal draws for one noisy layer; ``None`` where the source's variance is 0.

    Shapes: ``add_unc`` and ``mul_unc`` are ``(n_batch, n_neurons)``; ``add_cor`` and
    ``mul_cor`` are ``(n_batch, 1)``, one draw per sample shared by the layer's neurons.
    Multiply by ``sqrt(variance)`` to get the noise (done by :func:`apply_noise`).
    """

    add_unc: Array | None = None
    add_cor: Array | None = None
    mul_unc: Array | None = None
    mul_cor: Array | None = None


def draw_layer_noise(spec: NoiseSpec, n_batch: int, n_neurons: int,
                     rng: np.random.Generator, dtype=np.float64) -> LayerNoise:
    """Draw standard normals for the sources of ``spec`` with nonzero variance.

    Fixed order, for reproducibility: add_unc, add_cor, mul_unc, mul_cor; a source with zero
    variance draws nothing (so it also consumes no random numbers). Each source is
    ``rng.standard_normal(shape, dtype=dtype)`` (float64 through numba's Generator: the same
    numbers, faster; :mod:`refnet._random_kernels`).
    """
    shapes = {"add_unc": (n_batch, n_neurons), "add_cor": (n_batch, 1),
              "mul_unc": (n_batch, n_neurons), "mul_cor": (n_batch, 1)}
    draws = {}
    for name in NOISE_TYPES:
        if getattr(spec, name) > 0:
            draws[name] = standard_normal(rng, shapes[name], dtype)
    return LayerNoise(**draws)


def draw_network_noise(config: NoiseConfig | None, sizes, n_batch: int,
                       rng: np.random.Generator, dtype=np.float64) -> list[LayerNoise | None]:
    """The draws of one forward pass, one entry per layer 0..L (``None`` for clean layers).

    The draw order, defined once: layers 0..L in turn, each by :func:`draw_layer_noise`.
    :func:`refnet.model.forward` draws in this order while it computes, and
    :mod:`refnet.draw_ahead` draws the next batch's noise ahead with this function, so both
    take the same numbers from the same stream. ``sizes`` are the layer widths
    ``(sizes[0], ..., sizes[L])``.
    """
    L = len(sizes) - 1
    noisy = () if config is None or config.is_zero else config.resolved_layers(L)
    return [draw_layer_noise(config.spec_for(l, L), n_batch, int(sizes[l]), rng, dtype)
            if l in noisy else None for l in range(L + 1)]


def _check_draw(name: str, xi: Array, shape: tuple[int, int]) -> None:
    if xi.shape != shape:
        raise ValueError(f"noise draw {name}: expected shape {shape}, got {xi.shape}")


def noise_gradient_factor(spec: NoiseSpec, draws: LayerNoise, x_shape: tuple[int, int]) -> Array | None:
    """``dy/dx = (1 + xi_MU)(1 + xi_MC)`` for the drawn noise, or ``None`` when it is 1.

    Shape broadcastable to ``x_shape = (n_batch, n_neurons)``.
    """
    factor = None
    n_batch = x_shape[0]
    if spec.mul_unc > 0:
        _check_draw("mul_unc", draws.mul_unc, x_shape)
        factor = 1.0 + math.sqrt(spec.mul_unc) * draws.mul_unc
    if spec.mul_cor > 0:
        _check_draw("mul_cor", draws.mul_cor, (n_batch, 1))
        f_c = 1.0 + math.sqrt(spec.mul_cor) * draws.mul_cor
        factor = f_c if factor is None else factor * f_c
    return factor


def apply_noise(x: Array, spec: NoiseSpec, draws: LayerNoise) -> Array:
    """``y = x (1 + xi_MU)(1 + xi_MC) + xi_AU + xi_AC`` (Semenova 2022, Eq. 3, p. 3).

    Parameters
    ----------
    x : ndarray, shape (n_batch, n_neurons)
        The clean signal of one layer.
    spec : NoiseSpec
        Variances of the four sources.
    draws : LayerNoise
        Standard normals for every source with nonzero variance (see :func:`draw_layer_noise`).

    Returns
    -------
    ndarray, shape (n_batch, n_neurons)
        A new array; ``x`` is not modified.
    """
    shape = x.shape
    factor = noise_gradient_factor(spec, draws, shape)
    if factor is None and spec.add_unc > 0:   # noise-aware training's case: one fused pass
        _check_draw("add_unc", draws.add_unc, shape)
        y = plus_scaled(x, math.sqrt(spec.add_unc), draws.add_unc)
    else:
        y = x * factor if factor is not None else x.copy()
        if spec.add_unc > 0:
            _check_draw("add_unc", draws.add_unc, shape)
            y += math.sqrt(spec.add_unc) * draws.add_unc
    if spec.add_cor > 0:
        _check_draw("add_cor", draws.add_cor, (shape[0], 1))
        y += math.sqrt(spec.add_cor) * draws.add_cor
    return y
