"""refnet: a reference implementation of noisy analog neural networks.

Companion code to Duque et al. 2024 (explainable regularizers against hardware noise) and
Semenova et al. 2022 (noise propagation in trained deep networks). See README.md.
"""
__version__ = "0.1.0"

from .activations import Activation, get_activation  # noqa: E402
from .losses import cross_entropy, mse  # noqa: E402
from .model import Architecture, Cache, Params, backward, forward, init_params, mlp, predict  # noqa: E402
from .noise import LayerNoise, NoiseConfig, NoiseSpec, apply_noise, noise_config  # noqa: E402
from .optim import SGD, Adagrad, Adam, get_optimizer  # noqa: E402
from .regularizers import (REGULARIZER_PRESETS, RowSumPenalty, SaturationPenalty,  # noqa: E402
                           regularizer_preset, regularizer_value_and_grad)
from .step import LossAndGrad, loss_and_grad, train_step  # noqa: E402

__all__ = ["__version__", "Activation", "get_activation", "cross_entropy", "mse", "Architecture",
           "Cache", "Params", "backward", "forward", "init_params", "mlp", "predict", "LayerNoise",
           "NoiseConfig", "NoiseSpec", "apply_noise", "noise_config", "SGD", "Adagrad", "Adam",
           "get_optimizer", "REGULARIZER_PRESETS", "RowSumPenalty", "SaturationPenalty",
           "regularizer_preset", "regularizer_value_and_grad", "LossAndGrad", "loss_and_grad",
           "train_step"]
