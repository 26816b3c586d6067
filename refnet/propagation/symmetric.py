"""The symmetric network of Semenova 2022, Sec. III, layer by layer (derived).

Derived: from (Semenova 2022, Eqs. 5, 6, 9, 12, 17 and 23) by chaining them through a network
whose weights are all ``1 / I_{n-1}``; the functions of each equation are in
:mod:`refnet.propagation.semenova` and :mod:`refnet.propagation.taylor`.
"""
from __future__ import annotations

import numpy as np

from ..activations import Activation, get_activation
from .semenova import (initial_variances, noise_terms, nonlinear_variance_first_order,
                       nonlinear_variance_order_M, output_expectation, output_variance,
                       signal_to_noise_ratio)
from .taylor import (activation_taylor_coefficients, gauss_hermite_mean_variance,
                     gaussian_central_moments, taylor_mean)

__all__ = ["F_METHODS", "symmetric_network_moments"]


#: How ``F`` (the variance of ``f(x~)``) and ``E f(x~)`` are computed for nonlinear layers.
F_METHODS = ("first_order", "taylor", "gauss_hermite")


def _nonlinear_moments(act, mean_state, var_state, method, order):
    if act.name == "identity":
        return mean_state, var_state
    if method == "first_order":  # Eq. 9, mean f(E x~)
        return act.f(mean_state), nonlinear_variance_first_order(act, mean_state, var_state)
    if method == "taylor":  # Eqs. 12 and 25 with Gaussian V_m
        T = activation_taylor_coefficients(act, mean_state, order)
        V = gaussian_central_moments(var_state, 2 * order)
        return taylor_mean(T, V), nonlinear_variance_order_M(T, V)
    return gauss_hermite_mean_variance(act.f, mean_state, var_state)


def symmetric_network_moments(input_signal, hidden_activation: str | Activation,
                              n_layers: int = 4, width: int = 200, D_A_U_intensity: float = 0.0,
                              D_A_C_intensity: float = 0.0, D_M_U_intensity: float = 0.0,
                              D_M_C_intensity: float = 0.0, method: str = "first_order",
                              order: int = 15) -> dict:
    r"""Moments of every layer of Semenova's symmetric network (Semenova 2022, Sec. III, p. 4).

    Derived: from (Semenova 2022, Eqs. 6, 9, 12, 17, 23) by chaining them layer by layer.

    Network (reading of Sec. II A and III): ``N = n_layers`` layers; layer 1 is one linear
    input neuron ``x_1 = u``; layers 2..N-1 have ``width`` neurons with ``hidden_activation``;
    layer N is one linear output neuron; ``W^n_ij = 1/I_{n-1}`` (so ``W^2 = 1``), zero biases;
    every layer's output, input and output included, carries the noise of Eq. 3. Because all
    rows of ``W`` are equal, all neurons of a layer share one internal state, so Eq. 6 (with
    its ``O(1/I)`` terms kept) is exact given ``E(x)`` and ``Var(x)``; the only approximation
    is ``F`` and ``E f(x~)``:

    * ``"first_order"``: Eq. 9, ``E f(x~) ~ f(E x~)`` (the paper's black lines in Fig. 3);
    * ``"taylor"``: Eqs. 12 and 25 to ``order`` with Gaussian moments ``V_m`` of ``x~``;
    * ``"gauss_hermite"``: ``x~`` taken as Gaussian, ``f`` integrated exactly.

    Parameters
    ----------
    input_signal : array, shape (T,)
        ``u^t``.
    D_* : float
        Intensities (variance ``2 D``), the same in every layer.

    Returns
    -------
    dict of arrays, each of shape (n_layers, T) (row ``n - 1`` is layer ``n``):
    ``mean_state``, ``var_state`` (``x~``), ``mean_output``, ``var_output`` (``y``), ``snr``.
    """
    if method not in F_METHODS:
        raise ValueError(f"method: unknown {method!r}; known: {', '.join(F_METHODS)}")
    if int(n_layers) < 3 or int(width) < 1:
        raise ValueError(f"n_layers: need >= 3 (input, hidden, output), got {n_layers}")
    u = np.atleast_1d(np.asarray(input_signal, float))
    D = (D_A_U_intensity, D_A_C_intensity, D_M_U_intensity, D_M_C_intensity)
    act, lin = get_activation(hidden_activation), get_activation("identity")
    N = int(n_layers)
    out = {k: np.zeros((N, u.size)) for k in ("mean_state", "var_state", "mean_output",
                                             "var_output")}
    mean_state, var_state = u, initial_variances(u, *D)[0]  # Eq. 23, layer 1
    var_x = var_state  # layer 1 (linear) sets it before layer 2 reads it
    for n in range(1, N + 1):
        if n > 1:
            I_prev = 1 if n == 2 else int(width)
            I_n = 1 if n == N else int(width)
            W = np.full((I_n, I_prev), 1.0 / I_prev)
            # identical neurons: one column stands for the layer in the mu/eta averages
            N_C, N_U, N_prev = noise_terms(W, out["mean_output"][n - 2][:, None],
                                           var_x[:, None], *D)
            var_state = N_C + N_U + N_prev  # Eq. 6
            mean_state = out["mean_output"][n - 2]  # rows of W sum to 1, zero bias
        f_n = act if 1 < n < N else lin
        mean_x, var_x = _nonlinear_moments(f_n, mean_state, var_state, method, order)
        out["mean_state"][n - 1], out["var_state"][n - 1] = mean_state, var_state
        out["mean_output"][n - 1] = output_expectation(mean_x)  # Eq. 16
        out["var_output"][n - 1] = output_variance(mean_x, var_x, *D)  # Eq. 17
    out["snr"] = signal_to_noise_ratio(out["mean_output"], out["var_output"])
    return out
