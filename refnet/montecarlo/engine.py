"""Monte-Carlo engine: many noisy passes of a trained network, fast and reproducible.

Public entry points are re-exported by :mod:`refnet.montecarlo` and used by
:mod:`refnet.montecarlo.sweep` (accuracy sweeps) and :mod:`refnet.montecarlo.stats`
(per-neuron statistics).

The reference semantics is :func:`refnet.model.forward` with a :class:`refnet.noise.NoiseConfig`;
this engine computes the same thing (equal to 1e-12 in float64 on the same draws when the
shortcuts are off) and adds exact shortcuts:

``"clean_prefix"``  layers before the first noisy one are computed once per input, not once
                    per repeat (identical numbers).
``"row_sums"``      the first noisy layer ``l0`` (post-activation, no uncorrelated
                    multiplicative noise) feeds the next layer through ``U = a @ W.T``
                    computed once per input: correlated noise becomes ``(1 + xi_MC) U +
                    xi_AC r + b`` with ``r`` the row sums of ``W`` (same draws, equal up to
                    rounding) and uncorrelated additive noise ``xi @ W.T`` is added.
                    With correlated noise alone, one kernel forms each row of the next
                    pre-activation and activates it in place
                    (:func:`~refnet.montecarlo.kernels.row_sum_activation`; the bits of the
                    two kernels in turn, without writing the pre-activation out).
``"narrow_draws"``  uncorrelated additive noise on a post-activation layer ``l`` feeding a
                    narrower layer (``n_{l+1} < n_l``): ``W xi`` with ``xi ~ N(0, s^2 I)`` is
                    ``N(0, s^2 W W^T)``, drawn as ``F eps`` with ``F F^T = W W^T`` (Cholesky)
                    and ``eps`` of dimension ``n_{l+1}`` (equal in distribution; different
                    draws). Not used on layers whose noisy values are kept (statistics).
``"triangular_draws"`` opt-in, not in :data:`DEFAULT_SHORTCUTS` (it changes the random
                    stream): with ``row_sums``, the uncorrelated additive noise of ``l0``
                    feeding a layer no wider is drawn in that layer's dimension ``m`` and mixed
                    by a triangular factor (:mod:`refnet.montecarlo.factors`): ``m`` normals
                    and ``m^2`` flops per sample instead of ``n_l0`` normals and ``2 n_l0 m``
                    (equal in distribution; different draws; tested to standard errors).

Randomness: every chunk of work has its own generator (:mod:`refnet.montecarlo.chunks`), so
results depend only on the seed and the chunk size, never on thread count or scheduling.
Draws of one chunk come in the order of :func:`refnet.model.forward` (layers 0..L, sources in
``NOISE_TYPES`` order; numba's Generator gives NumPy's numbers), so with the shortcuts off a
float64 engine reproduces ``forward(..., rng=chunk_generator)`` to rounding (tested at 1e-12).
A float32 engine rounds the float64 normals to float32 (faster than a float32 normal
generator; the stream differs from ``forward``'s float32 draws, not the distribution).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .. import _numba
from .._blas import on_fixed_blas_threads
from ..activations import get_activation
from ..model import Architecture, Params, check_input, check_params
from ..noise import NOISE_TYPES, LayerNoise, NoiseConfig, NoiseSpec
from . import kernels as K
from .chunks import map_chunks
from .factors import triangular_factor, triangular_mix, triangular_mix_numpy
from .options import (BACKENDS, DEFAULT_SHORTCUTS, OPT_IN_SHORTCUTS, SHORTCUTS,  # noqa: F401
                      check_backend, check_draws, check_dtype, parse_shortcuts, resolve_config)

__all__ = ["SHORTCUTS", "DEFAULT_SHORTCUTS", "OPT_IN_SHORTCUTS", "BACKENDS", "Engine",
           "CleanState", "prepare", "clean_state",
           "draw_noise", "propagate", "resolve_config", "check_backend", "check_dtype",
           "parse_shortcuts", "count_correct", "Workspace"]

Array = np.ndarray


def _narrow_factor(W: Array) -> Array:
    """``F.T`` with ``F F^T = W W^T`` (Cholesky; eigen-decomposition if W is rank deficient)."""
    C = W.astype(np.float64) @ W.T.astype(np.float64)
    try:
        F = np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        lam, V = np.linalg.eigh(C)
        F = V * np.sqrt(np.clip(lam, 0.0, None))
    return np.ascontiguousarray(F.T)


@dataclass(frozen=True)
class Engine:
    """A network prepared for repeated noisy passes with one noise placement.

    ``config.spec`` may be swapped cheaply with :meth:`with_spec`. ``factors[l]`` is the
    transposed narrow-draw factor for layer ``l`` (``None`` where not applicable) and
    ``row_sums[l-1]`` is ``W_l.sum(axis=1)``.
    """

    arch: Architecture
    params: Params
    config: NoiseConfig
    noisy: tuple[int, ...]
    backend: str
    shortcuts: frozenset
    factors: tuple = field(repr=False)
    row_sums: tuple = field(repr=False)
    #: lower-triangular factor of ``W_{l0+1} W_{l0+1}^T`` (m, m) for ``"triangular_draws"``
    tri: Array | None = field(default=None, repr=False)

    @property
    def dtype(self):
        return self.params.dtype

    @property
    def first_noisy(self) -> int:
        """``l0``, the first noisy layer (``L + 1`` for a clean network)."""
        return self.noisy[0] if self.noisy else self.arch.n_layers + 1

    def with_spec(self, spec: NoiseSpec) -> "Engine":
        """The same engine with ``spec`` on every noisy layer (per-layer specs dropped)."""
        return replace(self, config=self.config.with_spec(spec))

    def spec(self, l: int) -> NoiseSpec:
        """The variances at noisy layer ``l`` (``config.layer_specs`` honoured)."""
        return self.config.spec_for(l, self.arch.n_layers)

    def sd(self, l: int) -> Array:
        """The four standard deviations ``sqrt(variance)`` at layer ``l``, NOISE_TYPES order."""
        spec = self.spec(l)
        return np.sqrt(np.array([getattr(spec, t) for t in NOISE_TYPES])).astype(self.dtype)

    def narrow_layers(self, keep=()) -> frozenset:
        """Layers whose uncorrelated additive noise is drawn in the next layer's dimension."""
        if "narrow_draws" not in self.shortcuts:
            return frozenset()
        return frozenset(l for l in self.noisy if self.factors[l] is not None and l not in keep
                         and self.spec(l).add_unc > 0
                         and (l == 0 or self.config.position == "post"))

    def uses_row_sums(self, state: "CleanState", keep=()) -> bool:
        return (state.U is not None and self.spec(state.l0).mul_unc == 0
                and state.l0 not in keep)

    def uses_triangular(self, state: "CleanState", keep=()) -> bool:
        """True if the additive uncorrelated noise of ``l0`` goes through :attr:`tri`."""
        return (self.tri is not None and self.spec(state.l0).add_unc > 0
                and self.uses_row_sums(state, keep))

    def add_unc_width(self, state: "CleanState", l: int, keep=()) -> int:
        """Columns of layer ``l``'s ``add_unc`` draws: the next layer's width on a narrow-draw
        or triangular-draw layer, else the layer's own."""
        sizes = self.arch.sizes
        if l in self.narrow_layers(keep) or (l == state.l0 and self.uses_triangular(state, keep)):
            return sizes[l + 1]
        return sizes[l]


@on_fixed_blas_threads
def prepare(arch: Architecture, params: Params, noise: NoiseConfig, backend: str = "numba",
            shortcuts="all", dtype=None) -> Engine:
    """An :class:`Engine` for ``arch``/``params`` with noise placed as in ``noise``.

    ``shortcuts``: ``"all"`` (default), ``"none"`` (the straightforward twin) or a subset of
    :data:`SHORTCUTS`. ``dtype``: float64 (default: the params' dtype) or float32. Without
    numba, a numba ``backend`` becomes ``"numpy"`` (``Engine.backend`` says which ran).
    """
    check_params(arch, params)
    backend = check_backend(backend)
    if not isinstance(noise, NoiseConfig):
        raise TypeError(f"noise: expected a NoiseConfig, got {type(noise).__name__}")
    dtype = check_dtype(params.dtype if dtype is None else dtype)
    if backend != "numpy" and not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the Monte-Carlo kernels")
        backend = "numpy"
    params = params.astype(dtype)
    short = parse_shortcuts(shortcuts)
    L = arch.n_layers
    noisy = noise.resolved_layers(L) if noise.layers else ()
    sizes = arch.sizes
    factors = tuple(_narrow_factor(params.W[l]).astype(dtype)
                    if "narrow_draws" in short and l < L and sizes[l + 1] < sizes[l] and l in noisy
                    else None for l in range(L + 1))
    row_sums = tuple(np.ascontiguousarray(W.sum(axis=1)) for W in params.W)
    tri = None
    l0 = noisy[0] if noisy else L + 1
    if "triangular_draws" in short and l0 < L and sizes[l0 + 1] <= sizes[l0]:
        tri = triangular_factor(params.W[l0], dtype)
    return Engine(arch, params, noise, noisy, backend, short, factors, row_sums, tri)


def _layer_desc(arch: Architecture, l: int, pos: int) -> tuple[int, float, int]:
    if l == 0:
        return (K.ACT_CODES["identity"], 0.0, pos)
    act = get_activation(arch.activations[l - 1])
    return (int(K.ACT_CODES[act.name]), float(act.alpha or 0.0), int(pos))


class Workspace:
    """Arrays one thread reuses from chunk to chunk (not shared between threads).

    A fresh array per chunk costs more than the arithmetic on it: glibc hands a freed
    multi-megabyte block back to the system, so every chunk page-faults its buffers in again
    (measured: float64 add_unc, 10.0 -> 6.1 us per sample with the blocks kept). Values are
    computed exactly as into fresh arrays (same operations, ``out=`` and in-place forms), so no
    number changes. Only for work whose arrays do not outlive the chunk (:func:`count_correct`).
    """

    def __init__(self):
        self._arrays = {}

    def empty(self, name, shape, dtype) -> Array:
        key = (name, tuple(shape), np.dtype(dtype))
        a = self._arrays.get(key)
        if a is None:
            a = self._arrays[key] = np.empty(shape, dtype=dtype)
        return a


def _empty(ws: Workspace | None, name, shape, dtype) -> Array:
    return np.empty(shape, dtype=dtype) if ws is None else ws.empty(name, shape, dtype)


def _product(ws: Workspace | None, name, A: Array, B: Array) -> Array:
    """``A @ B``, into a workspace array when there is one (the same BLAS call)."""
    if ws is None:
        return A @ B
    return np.matmul(A, B, out=ws.empty(name, (A.shape[0], B.shape[1]), A.dtype))


def _activation_args(engine: Engine, layer, sd, d: LayerNoise | None, skip_au=False) -> list:
    """The noise arguments of the activation kernels for one layer: ``[sd, au, ac, mu, mc]``
    (zeros and empty arrays where the layer is clean; ``skip_au``: its additive uncorrelated
    noise is carried by the next layer's draws)."""
    e = np.empty((0, 0), dtype=engine.dtype)
    if d is None or layer[2] == K.POS_CLEAN:
        sd, d = np.zeros(4, dtype=engine.dtype), LayerNoise()
    elif skip_au:
        sd = sd.copy()
        sd[0] = 0.0
    args = [e if x is None else x for x in (d.add_unc, d.add_cor, d.mul_unc, d.mul_cor)]
    if skip_au:
        args[0] = e
    return [sd, *args]


def _noisy_activation(engine: Engine, Z, layer, sd, d: LayerNoise | None, skip_au=False,
                      out=None) -> Array:
    out = np.empty(Z.shape, dtype=engine.dtype) if out is None else out
    K.KERNELS[engine.backend][0](np.ascontiguousarray(Z), layer,
                                 *_activation_args(engine, layer, sd, d, skip_au), out)
    return out


@dataclass(frozen=True)
class CleanState:
    """What stays the same across repeats of the inputs ``X`` (n_inputs rows).

    ``P``: clean value at the first noisy layer ``l0``: its pre-activation ``z`` (kind "z",
    pre-activation noise) or its output ``a`` (kind "a"); for ``clean_prefix`` off, ``P`` is
    ``X`` itself (kind "x") and the prefix is recomputed per chunk. ``U = P @ W_{l0+1}.T``
    for the ``row_sums`` shortcut, or ``None``.
    """

    P: Array
    kind: str
    l0: int
    U: Array | None


def _prefix(engine: Engine, X: Array) -> tuple[Array, str]:
    arch, W, b = engine.arch, engine.params.W, engine.params.b
    l0 = min(engine.first_noisy, arch.n_layers)
    a = X
    for l in range(1, l0 + 1):
        z = a @ W[l - 1].T + b[l - 1]
        if l == l0 and engine.noisy and engine.config.position == "pre":
            return z, "z"
        a = _noisy_activation(engine, z, _layer_desc(arch, l, K.POS_CLEAN), None, None)
    return a, "a"


#: Rows per block of the clean state's products, which run on the caller's worker pool. The
#: blocks depend on the row count alone, so the bits never depend on the workers. Cut at a
#: multiple of 384 rows they also equal one product over all rows with the OpenBLAS kernels
#: measured here (cuts at multiples of 24 rows keep every bit; other cuts change the last rows,
#: which a remainder kernel computes); a BLAS with other kernels may round them differently.
CLEAN_BLOCK_ROWS = 384


@on_fixed_blas_threads
def clean_state(engine: Engine, X, *, pool=None) -> CleanState:
    """The per-input clean part of the forward pass for inputs ``X`` (n_inputs, sizes[0]),
    in blocks of :data:`CLEAN_BLOCK_ROWS` rows, on the threads of ``pool`` (a worker pool
    of :func:`refnet.montecarlo.worker_pool`) when given: the same numbers either way."""
    X = check_input(X, engine.arch.sizes[0]).astype(engine.dtype, copy=False)
    l0, L = engine.first_noisy, engine.arch.n_layers
    if "clean_prefix" not in engine.shortcuts:
        return CleanState(X, "x", l0, None)
    n = len(X)
    P0, kind = _prefix(engine, X[:0])                 # no rows: the width and the kind
    P = np.empty((n, P0.shape[1]), dtype=engine.dtype)
    U = (np.empty((n, engine.arch.sizes[l0 + 1]), dtype=engine.dtype)
         if "row_sums" in engine.shortcuts and kind == "a" and l0 < L else None)

    def block(rows):
        P[rows] = _prefix(engine, X[rows])[0]
        if U is not None:
            U[rows] = P[rows] @ engine.params.W[l0].T

    map_chunks(block, [slice(i, i + CLEAN_BLOCK_ROWS) for i in range(0, n, CLEAN_BLOCK_ROWS)],
               pool)
    return CleanState(P, kind, l0, U)


def _draw_layer(spec: NoiseSpec, n: int, m_au: int, m: int, gen, dtype, fill,
                ws: Workspace | None = None, l: int = 0) -> LayerNoise:
    shapes = {"add_unc": (n, m_au), "add_cor": (n, 1), "mul_unc": (n, m), "mul_cor": (n, 1)}
    draws = {}
    for t in NOISE_TYPES:
        if getattr(spec, t) > 0:
            draws[t] = _empty(ws, ("draw", l, t), shapes[t], dtype)
            fill(gen, draws[t].reshape(-1))
    return LayerNoise(**draws)


def draw_noise(engine: Engine, state: CleanState, n_rows: int, gen, keep=()) -> tuple:
    """Standard-normal draws for one chunk of ``n_rows`` noisy passes: one entry per layer
    0..L (``None`` for clean layers), in the order of :func:`refnet.model.forward`. On a
    narrow-draw (or triangular-draw) layer ``l`` the ``add_unc`` entry has the next layer's
    width (:meth:`Engine.add_unc_width`)."""
    return _draw_noise(engine, state, n_rows, gen, keep, None)


def _draw_noise(engine: Engine, state: CleanState, n_rows: int, gen, keep, ws) -> tuple:
    sizes = engine.arch.sizes
    fill = K.KERNELS[engine.backend][2]
    return tuple(_draw_layer(engine.spec(l), n_rows, engine.add_unc_width(state, l, keep),
                             sizes[l], gen, engine.dtype, fill, ws, l)
                 if l in engine.noisy else None
                 for l in range(engine.arch.n_layers + 1))


@on_fixed_blas_threads
def propagate(engine: Engine, state: CleanState, idx, draws, keep=()) -> tuple[Array, dict]:
    """Noisy outputs for rows ``idx`` (indices into the inputs of ``state``) with ``draws``.

    ``idx``: a 1-D int array, or a ``slice`` with step 1 (contiguous rows are then read as a
    view, not copied; same numbers). Returns ``(out, kept)``: ``out`` of shape
    (n_rows, sizes[-1]) and ``kept[l]`` the noisy output of layer ``l`` (n_rows, sizes[l]) for
    each ``l`` in ``keep``; ``keep`` may only name layers from the first noisy one on (earlier
    layers are clean: use :func:`refnet.model.forward`).
    """
    return _propagate(engine, state, idx, draws, keep, pre_output=False)


def _rows(idx, n_inputs: int):
    """``idx`` checked: a step-1 slice inside 0..n_inputs, or an int64 array of indices."""
    if isinstance(idx, slice):
        start, stop, step = idx.indices(n_inputs)
        if step != 1:
            raise ValueError(f"idx: a slice needs step 1, got {step}")
        return slice(start, max(start, stop))
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n_inputs)):
        raise ValueError(f"idx: need a 1-D array of input indices in 0..{n_inputs - 1}")
    return idx


def _n_rows(idx) -> int:
    return idx.stop - idx.start if isinstance(idx, slice) else len(idx)


def _propagate(engine: Engine, state: CleanState, idx, draws, keep, pre_output: bool,
               ws: Workspace | None = None):
    """:func:`propagate`; with ``pre_output`` and a clean output layer, ``out`` is the output
    layer's pre-activation ``z_L`` (its activation left to the caller, e.g. a fused kernel).
    With ``ws``, every array is a workspace array (overwritten by the thread's next chunk)."""
    dt = engine.dtype
    arch, (W, b) = engine.arch, (engine.params.W, engine.params.b)
    L, pos = arch.n_layers, engine.config.position
    idx = _rows(idx, len(state.P))
    n = _n_rows(idx)
    if any(not state.l0 <= l <= L for l in keep):
        raise ValueError(f"keep: layers must lie in {state.l0}..{L} (the first noisy layer on)")
    check_draws(engine, state, draws, n, keep)
    sd = [engine.sd(l) if l in engine.noisy else None for l in range(L + 1)]
    narrow = engine.narrow_layers(keep)
    kept, l0 = {}, state.l0
    if state.kind == "x":
        state = replace(state, **dict(zip(("P", "kind"), _prefix(engine, state.P[idx]))))
        idx = slice(0, n)
    if l0 > L:
        return state.P[idx], {}
    z = extra = a_next = None
    if engine.uses_row_sums(state, keep):
        d = draws[l0]
        e = np.empty((0, 0), dtype=dt)
        rows = np.arange(idx.start, idx.stop) if isinstance(idx, slice) else idx
        corr = (e if d.add_cor is None else d.add_cor, e if d.mul_cor is None else d.mul_cor)
        l1 = l0 + 1
        if not sd[l0][0] > 0 and not (pre_output and l1 == L and l1 not in engine.noisy):
            # nothing else enters z_(l0+1) and its activation follows here: one kernel forms
            # each row and activates it in place (the bits of the two kernels in turn)
            where = ((K.POS_PRE if pos == "pre" else K.POS_POST) if l1 in engine.noisy
                     else K.POS_CLEAN)
            layer = _layer_desc(arch, l1, where)
            a_next = _empty(ws, ("a", l1), (n, arch.sizes[l1]), dt)
            K.KERNELS[engine.backend][4](
                state.U, rows, engine.row_sums[l0], b[l0], sd[l0], *corr, layer,
                *_activation_args(engine, layer, sd[l1], draws[l1], skip_au=l1 in narrow),
                a_next)
        else:
            z = _empty(ws, ("z", l1), (n, arch.sizes[l1]), dt)
            K.KERNELS[engine.backend][1](state.U, rows, engine.row_sums[l0], b[l0], sd[l0],
                                         *corr, z)
            if engine.uses_triangular(state, keep):
                mix = triangular_mix_numpy if engine.backend == "numpy" else triangular_mix
                z += mix(engine.tri, sd[l0][0], d.add_unc)
            elif sd[l0][0] > 0:
                mix = _product(ws, "mix", d.add_unc,
                               engine.factors[l0] if l0 in narrow else W[l0].T)
                mix *= sd[l0][0]       # in place: the bits of sd * (...)
                z += mix
    else:
        P = state.P[idx]
        if state.kind == "z":
            a = _noisy_activation(engine, P, _layer_desc(arch, l0, K.POS_PRE), sd[l0], draws[l0],
                                  out=None if ws is None else ws.empty(("a", l0), P.shape, dt))
        else:
            a = _noisy_activation(engine, P, _layer_desc(arch, 0, K.POS_POST), sd[l0], draws[l0],
                                  skip_au=l0 in narrow,
                                  out=None if ws is None else ws.empty(("a", l0), P.shape, dt))
        if l0 in narrow:
            extra = _product(ws, ("extra", l0), draws[l0].add_unc, engine.factors[l0])
            extra *= sd[l0][0]
        if l0 in keep:
            kept[l0] = a
    for l in range(l0 + 1, L + 1):
        if a_next is not None:     # layer l0 + 1, formed and activated by one kernel above
            a, a_next = a_next, None
        else:
            if z is None:
                z = _product(ws, ("z", l), a, W[l - 1].T)
                z += b[l - 1]          # in place: the bits of a @ W.T + b
                if extra is not None:
                    z += extra
            noisy = l in engine.noisy
            if pre_output and l == L and not noisy:
                return z, kept
            where = (K.POS_PRE if pos == "pre" else K.POS_POST) if noisy else K.POS_CLEAN
            a = _noisy_activation(engine, z, _layer_desc(arch, l, where), sd[l], draws[l],
                                  skip_au=l in narrow,
                                  out=None if ws is None else ws.empty(("a", l), z.shape, dt))
        extra = None
        if l in narrow:
            extra = _product(ws, ("extra", l), draws[l].add_unc, engine.factors[l])
            extra *= sd[l][0]
        z = None
        if l in keep:
            kept[l] = a
    return a, kept


def count_correct(engine: Engine, state: CleanState, rows: slice, labels, gen,
                  workspace: Workspace | None = None) -> int:
    """How many of the inputs ``rows`` (a step-1 slice of ``state``'s inputs) one noisy pass
    classifies as ``labels`` (int64, one per row), with the noise of ``gen``.

    The draws and every number are those of ``propagate`` followed by ``argmax``; with a clean
    output layer the activation, argmax and count run in one kernel
    (:func:`refnet.montecarlo.kernels.tail_count`), so no outputs are kept beyond the last
    pre-activation of this chunk. ``workspace``: a :class:`Workspace` of the calling thread,
    whose arrays hold every intermediate (none are allocated per chunk)."""
    rows = _rows(rows, len(state.P))
    ws = workspace
    draws = _draw_noise(engine, state, _n_rows(rows), gen, (), ws)
    L = engine.arch.n_layers
    z, _ = _propagate(engine, state, rows, draws, (), pre_output=True, ws=ws)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if state.l0 < L and L not in engine.noisy:
        return int(K.KERNELS[engine.backend][3](z, _layer_desc(engine.arch, L, K.POS_CLEAN),
                                                 labels))
    return int(np.count_nonzero(np.argmax(z, axis=1) == labels))
