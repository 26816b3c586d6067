"""Everything sampled, behind one front door: ``from refnet.montecarlo import accuracy_sweep``.

===============  ==============================================================================
module           what lives there
===============  ==============================================================================
``sweep``        :func:`accuracy_sweep` (accuracy vs variance, each noise type alone; Duque
                 2024's protocol), :class:`SweepSettings`, :class:`SweepResult`
``stats``        :func:`neuron_statistics`: per-neuron mean, variance, SNR (Semenova 2022,
                 Eq. 4, p. 3) and confidence intervals over K repeats per input
``engine``       the engine: :func:`prepare` a network once, :func:`clean_state`,
                 :func:`draw_noise`, :func:`propagate` (with exact shortcuts)
``factors``      the triangular factor of the opt-in ``triangular_draws`` shortcut
``chunks``       root seeds, one generator per chunk of work, the worker pool
``kernels``      numba kernels, each beside its NumPy twin (which calls
                 :func:`refnet.noise.apply_noise`, the one Eq. 3)
``samples``      :func:`layer_samples`: raw noisy outputs of any layers (K, T, n), for
                 distribution tests such as ``refnet crosscheck stat``
``reference``    the plain NumPy Monte-Carlo (repeated :func:`refnet.model.forward`)
===============  ==============================================================================

numba is an accelerator: without it the numba backends fall back to the NumPy twins (one
warning, same draws, results equal to rounding).
"""
from .chunks import (check_workers, chunk_generator, iter_chunks, map_chunks, resolve_seed,
                     single_threaded_blas, worker_pool)
from .engine import (BACKENDS, DEFAULT_SHORTCUTS, OPT_IN_SHORTCUTS, SHORTCUTS, CleanState, Engine,
                     Workspace, clean_state, count_correct, draw_noise, parse_shortcuts, prepare,
                     propagate, resolve_config)
from .reference import monte_carlo_outputs
from .samples import layer_samples
from .stats import (LayerStatistics, NeuronStatistics, combine_moments, confidence_intervals,
                    neuron_statistics)
from .sweep import DEFAULT_VARIANCES, SweepResult, SweepSettings, accuracy_sweep

__all__ = ["SweepSettings", "SweepResult", "accuracy_sweep", "DEFAULT_VARIANCES",
           "LayerStatistics", "NeuronStatistics", "neuron_statistics", "combine_moments",
           "confidence_intervals", "BACKENDS", "SHORTCUTS", "DEFAULT_SHORTCUTS",
           "OPT_IN_SHORTCUTS", "parse_shortcuts", "count_correct", "Workspace", "Engine",
           "CleanState", "prepare",
           "clean_state", "draw_noise", "propagate", "resolve_config", "chunk_generator",
           "resolve_seed", "check_workers", "worker_pool", "iter_chunks", "map_chunks",
           "single_threaded_blas",
           "monte_carlo_outputs", "layer_samples"]
