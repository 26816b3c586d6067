"""refnet: a reference implementation of noisy analog neural networks.

Companion code to Duque et al. 2024 (explainable regularizers against hardware noise) and
Semenova et al. 2022 (noise propagation in trained deep networks). See README.md.
"""
__version__ = "0.1.0"

#: Where each name of the top-level API lives. They load on first use (PEP 562), so that
#: ``import refnet.cli`` (the ``refnet`` command) runs no numpy or numba import before the
#: command's own error handling: a Ctrl-C during those imports ended in a traceback.
_API = {".activations": ("Activation", "get_activation"),
        ".losses": ("cross_entropy", "mse"),
        ".model": ("Architecture", "Cache", "Params", "backward", "forward", "init_params", "mlp",
                   "predict"),
        ".noise": ("LayerNoise", "NoiseConfig", "NoiseSpec", "apply_noise", "noise_config"),
        ".optim": ("SGD", "Adagrad", "Adam", "get_optimizer"),
        ".regularizers": ("REGULARIZER_PRESETS", "RowSumPenalty", "SaturationPenalty",
                          "regularizer_preset", "regularizer_value_and_grad"),
        ".step": ("LossAndGrad", "loss_and_grad", "train_step")}
_HOME = {name: module for module, names in _API.items() for name in names}

__all__ = ["__version__", *_HOME]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'refnet' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(_HOME[name], __name__), name)
    globals()[name] = value   # once: later lookups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME))
