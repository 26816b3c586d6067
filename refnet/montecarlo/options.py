"""The Monte-Carlo engine's options and the checks of its arguments: backends, dtypes,
shortcuts (what each does: :mod:`refnet.montecarlo.engine`), noise configs and explicit draws.
Kept apart from the engine so that the engine holds the computation only."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..model import Architecture
from ..noise import NOISE_TYPES, NoiseConfig, noise_config

__all__ = ["SHORTCUTS", "DEFAULT_SHORTCUTS", "OPT_IN_SHORTCUTS", "BACKENDS", "check_backend",
           "check_dtype", "parse_shortcuts", "check_draws", "resolve_config"]

#: The default shortcuts, which ``"all"`` names (their results are the defaults' bits).
SHORTCUTS = ("clean_prefix", "row_sums", "narrow_draws")
DEFAULT_SHORTCUTS = SHORTCUTS
#: Shortcuts used only when named: they change the random stream of a default result.
OPT_IN_SHORTCUTS = ("triangular_draws",)
#: "numba": serial compiled kernels (the default: on small chunks, threads of a parallel
#: kernel compete with the BLAS threads of the matrix products); "numba-parallel": the same
#: kernels with ``prange`` over rows; "numpy": the NumPy twins (what both numba backends fall
#: back to, with one warning, when numba is not installed).
BACKENDS = ("numba", "numba-parallel", "numpy")


def check_backend(backend: str) -> str:
    """``backend`` if it names one of :data:`BACKENDS`, else a :class:`ConfigError`."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend: unknown {backend!r}; known: {', '.join(BACKENDS)}")
    return backend


def check_dtype(dtype) -> np.dtype:
    """``dtype`` as a NumPy dtype if it is float32 or float64, else a :class:`ConfigError`."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ConfigError(f"dtype: must be float32 or float64, got {dtype}")
    return dtype


def parse_shortcuts(shortcuts) -> frozenset:
    """``"all"`` (:data:`DEFAULT_SHORTCUTS`), ``"none"``/``None`` or names from
    :data:`SHORTCUTS` and :data:`OPT_IN_SHORTCUTS`, as a frozenset."""
    if isinstance(shortcuts, str) and shortcuts == "all":
        return frozenset(DEFAULT_SHORTCUTS)
    if shortcuts is None or (isinstance(shortcuts, str) and shortcuts == "none"):
        return frozenset()
    out = frozenset(shortcuts)
    known = SHORTCUTS + OPT_IN_SHORTCUTS
    bad = out - set(known)
    if bad:
        raise ConfigError(f"shortcuts: unknown {sorted(bad)}; known: {', '.join(known)}")
    return out


def check_draws(engine, state, draws, n: int, keep) -> None:
    """The kernels do not bounds-check: every needed draw of ``n`` rows must have the shape
    that ``engine`` (:class:`~refnet.montecarlo.engine.Engine`) and its clean ``state`` need."""
    L, sizes = engine.arch.n_layers, engine.arch.sizes
    if len(draws) != L + 1:
        raise ValueError(f"draws: need one entry per layer 0..{L}, got {len(draws)}")
    for l in engine.noisy:
        d = draws[l]
        if d is None:
            raise ValueError(f"draws: layer {l} is noisy but draws[{l}] is None")
        want = {"add_unc": (n, engine.add_unc_width(state, l, keep)), "add_cor": (n, 1),
                "mul_unc": (n, sizes[l]), "mul_cor": (n, 1)}
        for t in NOISE_TYPES:
            x = getattr(d, t)
            if getattr(engine.spec(l), t) > 0 and (x is None or x.shape != want[t]):
                got = None if x is None else x.shape
                raise ValueError(f"draws: layer {l} {t} needs shape {want[t]}, got {got}")


def resolve_config(noise, arch: Architecture) -> NoiseConfig:
    """``noise`` as a :class:`NoiseConfig`: a preset name, or a config passed through."""
    if isinstance(noise, str):
        return noise_config(noise, None, arch.n_layers)
    if not isinstance(noise, NoiseConfig):
        raise TypeError("noise: expected a NoiseConfig or a preset name, got "
                        f"{type(noise).__name__}")
    return noise
