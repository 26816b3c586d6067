"""SGD (with momentum), Adagrad and Adam, written out to match ``torch.optim`` (2.13) exactly.

Functional style: an optimizer is a frozen dataclass of hyperparameters;
``state = opt.init(arrays)`` and ``new_arrays, new_state = opt.step(arrays, grads, state)``
work on lists of arrays (e.g. ``Params.arrays()``: W1, b1, W2, b2, ...). Nothing is modified
in place: every updated array and state entry is newly allocated. ``opt.step_inplace`` is the
same update written into the caller's arrays and state (the trainer's loop, which owns them).

The state is a plain ``dict[str, ndarray]``, so it can be saved with ``np.savez`` and read back
with ``dict(np.load(path, allow_pickle=False))``. Keys use PyTorch's state names with the array
index: ``"step"`` (int64, shape ``(n_arrays,)``, one count per array as PyTorch keeps one per
parameter), ``"momentum_buffer.k"`` (SGD), ``"sum.k"`` (Adagrad), ``"exp_avg.k"``,
``"exp_avg_sq.k"``, ``"max_exp_avg_sq.k"`` (Adam).

Frozen arrays (``trainable[k]`` false, or a ``None`` gradient, as PyTorch skips parameters
whose ``.grad`` is ``None``) are returned unchanged and their state (including their step
count) is not advanced. Arithmetic follows PyTorch's single-tensor CPU code operation by
operation, so float64 results agree to rounding (tested at rtol 1e-10); float32 arrays stay
float32.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Sequence

import numpy as np

from ._optim_kernels import (adagrad_update, adagrad_update_inplace, adagrad_update_numpy,
                             adam_update_inplace)

__all__ = ["SGD", "Adagrad", "Adam", "OPTIMIZERS", "get_optimizer", "optimizer_from_dict",
           "pack", "packed_step"]

Array = np.ndarray
State = dict


def _nonneg(name: str, v) -> None:
    if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {v!r}")


class _Optimizer:
    """Shared bookkeeping; subclasses define ``name``, ``slots`` and ``_update``."""

    name: ClassVar[str]

    def slots(self) -> tuple[str, ...]:
        raise NotImplementedError

    def init(self, arrays: Sequence[Array]) -> State:
        """Fresh state for ``arrays`` (step counts 0; buffers as PyTorch initialises them)."""
        arrays = [np.asarray(a) for a in arrays]
        state = {"step": np.zeros(len(arrays), dtype=np.int64)}
        for k, p in enumerate(arrays):
            if p.dtype.kind != "f":
                raise TypeError(f"arrays: array {k} has dtype {p.dtype}, expected float")
            for s in self.slots():
                state[f"{s}.{k}"] = self._initial(s, p)
        return state

    def _initial(self, slot: str, p: Array) -> Array:
        return np.zeros_like(p)

    def _check(self, arrays, grads, state, trainable):
        n = len(arrays)
        if len(grads) != n:
            raise ValueError(f"grads: expected {n} arrays (one per parameter array), got {len(grads)}")
        if trainable is None:
            trainable = [True] * n
        elif len(trainable) != n:
            raise ValueError(f"trainable: expected {n} flags, got {len(trainable)}")
        want = {"step"} | {f"{s}.{k}" for s in self.slots() for k in range(n)}
        if set(state) != want:
            missing, extra = sorted(want - set(state)), sorted(set(state) - want)
            raise ValueError(f"state: does not fit {self.name} on {n} arrays "
                             f"(missing {missing}, unexpected {extra})")
        if np.shape(state["step"]) != (n,):
            raise ValueError(f"state: 'step' has shape {np.shape(state['step'])}, expected ({n},)")
        for k in range(n):
            shape = np.shape(arrays[k])
            if grads[k] is not None and np.shape(grads[k]) != shape:
                raise ValueError(f"grads: array {k} has shape {np.shape(grads[k])}, "
                                 f"expected {shape}")
            for s in self.slots():
                if np.shape(state[f"{s}.{k}"]) != shape:
                    raise ValueError(f"state: '{s}.{k}' has shape {np.shape(state[f'{s}.{k}'])}, "
                                     f"expected {shape}")
        return trainable

    def step(self, arrays: Sequence[Array], grads: Sequence[Array | None], state: State,
             trainable: Sequence[bool] | None = None) -> tuple[list[Array], State]:
        """One update. Returns ``(new_arrays, new_state)``; the inputs are not modified.

        ``trainable``: one flag per array (default all true); a frozen array, or one whose
        gradient is ``None``, is returned as is (the same object) with its state untouched.
        """
        trainable = self._check(arrays, grads, state, trainable)
        new_arrays = list(arrays)
        new_state = dict(state)
        steps = np.array(state["step"], dtype=np.int64)
        for k, (p, g) in enumerate(zip(arrays, grads)):
            if not trainable[k] or g is None:
                continue
            steps[k] += 1
            p = np.asarray(p)
            g = np.asarray(g, dtype=p.dtype)
            old = {s: np.asarray(state[f"{s}.{k}"]) for s in self.slots()}
            new_arrays[k], new = self._update(p, g, old, int(steps[k]))
            for s, v in new.items():
                new_state[f"{s}.{k}"] = v
        new_state["step"] = steps
        return new_arrays, new_state

    def step_inplace(self, arrays: Sequence[Array], grads: Sequence[Array | None],
                     state: State, trainable: Sequence[bool] | None = None, *,
                     limit: float = math.inf) -> int | None:
        """:meth:`step` writing into ``arrays`` and ``state`` instead of returning new ones.

        The same numbers as :meth:`step` (tested); a training loop that owns its arrays uses
        it to skip allocating and copying every parameter and buffer each batch. ``arrays``
        and every state array must be writeable. Returns how many of the updated values lie
        outside ``+-limit`` (by default: are NaN or infinite) when every update counted them
        on its way (the fused Adagrad and Adam kernels), else None (then the caller checks the arrays
        itself); arrays left alone (frozen, or without a gradient) are not counted.
        """
        trainable = self._check(arrays, grads, state, trainable)
        steps = state["step"]
        bad = 0
        for k, (p, g) in enumerate(zip(arrays, grads)):
            if not trainable[k] or g is None:
                continue
            steps[k] += 1
            g = np.asarray(g, dtype=p.dtype)
            n = self._update_inplace(p, g, {s: state[f"{s}.{k}"] for s in self.slots()},
                                     int(steps[k]), limit)
            bad = None if bad is None or n is None else bad + n
        return bad

    def _update_inplace(self, p, g, slots, step, limit=math.inf) -> int | None:
        """Generic: :meth:`_update`'s results copied back (optimizers override to fuse). Returns
        how many values of the new ``p`` lie outside ``+-limit`` when the update counts them (a
        fused kernel), else None."""
        new_p, new = self._update(p, g, slots, step)
        p[...] = new_p
        for s, v in new.items():
            slots[s][...] = v
        return None

    def as_dict(self) -> dict:
        """Name and hyperparameters, for JSON metadata."""
        d = asdict(self)
        if "betas" in d:
            d["betas"] = list(d["betas"])
        return {"name": self.name, **d}


@dataclass(frozen=True)
class SGD(_Optimizer):
    """``torch.optim.SGD``: ``g <- g + wd p``; with momentum ``mu``, ``b <- g`` on the first step,
    then ``b <- mu b + (1 - dampening) g``, and ``g <- b`` (or ``g + mu b`` with Nesterov);
    ``p <- p - lr g``."""

    lr: float = 1e-3
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    name: ClassVar[str] = "sgd"

    def __post_init__(self):
        for f in ("lr", "momentum", "dampening", "weight_decay"):
            _nonneg(f, getattr(self, f))
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov: requires momentum > 0 and dampening = 0")

    def slots(self):
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _update(self, p, g, old, step):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        new = {}
        if self.momentum != 0:
            mu = self.momentum
            if step == 1:
                buf = g.copy()  # PyTorch: the buffer starts as the first (decayed) gradient
            else:
                buf = old["momentum_buffer"] * mu
                buf += (1 - self.dampening) * g
            new["momentum_buffer"] = buf
            g = g + mu * buf if self.nesterov else buf
        upd = g * (-self.lr)  # p - lr g, as PyTorch's p.add_(g, alpha=-lr)
        upd += p
        return upd, new


@dataclass(frozen=True)
class Adagrad(_Optimizer):
    """``torch.optim.Adagrad``: ``g <- g + wd p``; ``clr = lr / (1 + (t - 1) lr_decay)``;
    ``s <- s + g^2`` (``s`` starts at ``initial_accumulator_value``);
    ``p <- p - clr g / (sqrt(s) + eps)`` (eps added after the square root)."""

    lr: float = 1e-2
    lr_decay: float = 0.0
    weight_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10
    name: ClassVar[str] = "adagrad"

    def __post_init__(self):
        for f in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            _nonneg(f, getattr(self, f))

    def slots(self):
        return ("sum",)

    def _initial(self, slot, p):
        return np.full_like(p, self.initial_accumulator_value)

    def _update(self, p, g, old, step):
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        clr = self.lr / (1 + (step - 1) * self.lr_decay)
        # PyTorch's order per element: s = s + g^2; p + (-clr g) / (sqrt(s) + eps). The fused
        # numba kernel makes one pass over memory; its NumPy twin handles any layout.
        s_old = old["sum"]
        p_new, s_new = np.empty_like(p), np.empty_like(p)
        contiguous = all(a.flags.c_contiguous for a in (p, g, s_old)) and s_old.dtype == p.dtype
        update = adagrad_update if contiguous else adagrad_update_numpy
        update(p, g, s_old, clr, self.eps, p_new, s_new)
        return p_new, {"sum": s_new}

    def _update_inplace(self, p, g, slots, step, limit=math.inf):
        s = slots["sum"]
        if (self.weight_decay != 0 or s.dtype != p.dtype
                or not all(a.flags.c_contiguous for a in (p, g, s))):
            return super()._update_inplace(p, g, slots, step)
        clr = self.lr / (1 + (step - 1) * self.lr_decay)
        return adagrad_update_inplace(p, g, s, clr, self.eps, limit)


@dataclass(frozen=True)
class Adam(_Optimizer):
    """``torch.optim.Adam``: ``g <- g + wd p`` (or ``p <- p (1 - lr wd)`` when
    ``decoupled_weight_decay``, i.e. AdamW); ``m <- lerp(m, g, 1 - beta1)``;
    ``v <- beta2 v + (1 - beta2) g^2``; with AMSGrad ``v_max <- max(v_max, v)`` replaces ``v``
    below; ``p <- p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)``, ``bc_i = 1 - beta_i^t``."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    decoupled_weight_decay: bool = False
    name: ClassVar[str] = "adam"

    def __post_init__(self):
        for f in ("lr", "eps", "weight_decay"):
            _nonneg(f, getattr(self, f))
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas: need two values in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", betas)

    def slots(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _update_inplace(self, p, g, slots, step, limit=math.inf):
        # the fused kernel for the plain case; AMSGrad, weight decay, mixed dtypes or layouts
        # (and no numba) take the generic copy-back of _update, the kernel's twin
        m, v = slots["exp_avg"], slots["exp_avg_sq"]
        if (self.amsgrad or self.weight_decay != 0 or m.dtype != p.dtype or v.dtype != p.dtype
                or not all(a.flags.c_contiguous for a in (p, g, m, v))):
            return super()._update_inplace(p, g, slots, step)
        beta1, beta2 = self.betas
        bad = adam_update_inplace(p, g, m, v, beta1=beta1, beta2=beta2,
                                  step_size=self.lr / (1 - beta1 ** step),
                                  bias_correction2=1 - beta2 ** step, eps=self.eps, limit=limit)
        return super()._update_inplace(p, g, slots, step) if bad is None else bad

    def _update(self, p, g, old, step):
        beta1, beta2 = self.betas
        if self.weight_decay != 0:
            if self.decoupled_weight_decay:
                p = p * (1 - self.lr * self.weight_decay)
            else:
                g = g + self.weight_decay * p
        w = 1 - beta1
        m_old = old["exp_avg"]
        if w < 0.5:  # PyTorch's lerp(start, end, w), both branches as in its CPU kernel
            m = g - m_old
            m *= w
            m += m_old
        else:
            m = m_old - g
            m *= 1 - w
            m = g + m
        v = g * (1 - beta2)
        v *= g
        v += old["exp_avg_sq"] * beta2
        new = {"exp_avg": m, "exp_avg_sq": v}
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = self.lr / bias_correction1
        if self.amsgrad:
            v = np.maximum(old["max_exp_avg_sq"], v)
            new["max_exp_avg_sq"] = v
        denom = np.sqrt(v)
        denom /= bias_correction2 ** 0.5
        denom += self.eps
        upd = m * (-step_size)
        upd /= denom
        upd += p
        return upd, new


def pack(arrays: Sequence[Array]) -> tuple[Array, list[Array]]:
    """``(flat, views)``: the ``arrays`` copied one after another into one new 1-D
    C-contiguous buffer ``flat`` (their total size, their common dtype), and views of ``flat``
    with each array's shape (each C-contiguous)."""
    arrays = [np.asarray(a) for a in arrays]
    flat = np.empty(sum(a.size for a in arrays), np.result_type(*arrays))
    views, start = [], 0
    for a in arrays:
        view = flat[start:start + a.size].reshape(a.shape)
        view[...] = a
        views.append(view)
        start += a.size
    return flat, views


def packed_step(optimizer, arrays: list[Array], state: State, trainable: Sequence[bool]):
    """:meth:`~_Optimizer.step_inplace` over all trainable arrays in one update call.

    Every update here is element-wise, so updating the concatenation of the arrays gives the
    numbers of updating them one by one (tested); what it saves is the per-array work around
    the update (one kernel launch and its checks per array, six per step of a 3-layer
    network). The trainable entries of ``arrays`` and of each optimizer slot in ``state`` are
    replaced by views of one flat buffer each (:func:`pack`: new arrays, same values).

    Returns ``(grads, step)``: gradient buffers shaped like ``arrays`` (the trainable ones
    views of one flat buffer; a gradient computed into them needs no copy) and
    ``step(grads, limit)``, which does ``step_inplace(arrays, grads, state, trainable,
    limit=limit)``, every trainable array having a gradient. ``step`` is None when the
    trainable arrays' step counts differ (a state not made by stepping them together).
    """
    index = [k for k, t in enumerate(trainable) if t]
    steps = state["step"]
    flat_p, views = pack([arrays[k] for k in index])
    flat_g, grad_views = pack([np.zeros_like(arrays[k]) for k in index])
    grads = [np.empty_like(a) for a in arrays]
    packed = {"step": np.zeros(1, np.int64)}
    for j, k in enumerate(index):
        arrays[k], grads[k] = views[j], grad_views[j]
    for s in optimizer.slots():
        packed[f"{s}.0"], slot_views = pack([state[f"{s}.{k}"] for k in index])
        for j, k in enumerate(index):
            state[f"{s}.{k}"] = slot_views[j]
    if len(set(steps[index].tolist())) != 1:
        return grads, None
    index = np.array(index)

    def step(grads_now: Sequence[Array], limit: float = math.inf) -> int | None:
        for k, view in zip(index, grad_views):
            if grads_now[k] is not view:   # computed elsewhere: into the flat buffer
                view[...] = grads_now[k]
        packed["step"][0] = steps[index[0]]
        bad = optimizer.step_inplace([flat_p], [flat_g], packed, limit=limit)
        steps[index] += 1
        return bad

    return grads, step


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}


def get_optimizer(name: str, **hyperparameters) -> SGD | Adagrad | Adam:
    """An optimizer by name (``"sgd"``, ``"adagrad"``, ``"adam"``) with PyTorch's defaults."""
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"name: unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    cls = OPTIMIZERS[key]
    known = {f.name for f in fields(cls)}
    bad = sorted(set(hyperparameters) - known)
    if bad:
        raise ValueError(f"{', '.join(bad)}: not a hyperparameter of {key}; known: "
                         f"{', '.join(sorted(known))}")
    return cls(**hyperparameters)


def optimizer_from_dict(d: dict) -> SGD | Adagrad | Adam:
    """Inverse of ``as_dict``."""
    d = dict(d)
    name = d.pop("name", None)
    if "betas" in d:
        d["betas"] = tuple(d["betas"])
    return get_optimizer(name, **d)
