"""Duque et al.'s explainable regularizers, with hand-derived gradients.

=========================================  ======================================  ==========================
equation                                   function                                test
=========================================  ======================================  ==========================
(Duque 2024, Eq. 4, p. 3) row sums         :func:`row_sum_penalty`                 test_regularizers.py
(Duque 2024, Eq. 7, p. 5) f'(z) term       :func:`derivative_penalty`              test_regularizers.py
(Duque 2024, Eq. 7, p. 5) ||W||^2 term     :func:`weight_norm_penalty`             test_regularizers.py
(Duque 2024, Eq. 7, p. 5) whole            :func:`saturation_penalty`              test_torch_crosscheck_reg_optim.py
derived: E[CE] to 2nd order in the noise   :func:`expected_loss_penalty`           test_expected_loss.py
=========================================  ======================================  ==========================

One room per concern:

* :mod:`.lambdas` - lambdas per layer, validated once into one canonical form;
* :mod:`.equations` - the equations (value and hand-derived gradient);
* :mod:`.specs` - the frozen specs :class:`RowSumPenalty` (Eq. 4), :class:`SaturationPenalty`
  (Eq. 7), their JSON form and the named presets (the paper's and the authors' code variants);
* :mod:`.expected_loss` - the noise-level objective ``CE + 1/2 tr(H Sigma)`` (no lambda: its one
  parameter is the hardware's noise variance), spec :class:`ExpectedLoss`;
* :mod:`.combine` - several specs in the trainer's single forward/backward pass.

Layer numbering follows the paper: ``W^(l)``, ``l = 1..L``, is ``params.W[l-1]``. In every
``{layer: lambda}`` mapping a negative layer counts from the output (-1 = ``W^(L)``).
"""
from .combine import regularizer_value, regularizer_value_and_grad, value, value_and_grad
from .equations import derivative_penalty, row_sum_penalty, saturation_penalty, weight_norm_penalty
from .expected_loss import cross_entropy_hessian, expected_loss, expected_loss_penalty
from .lambdas import LayerLambdas, resolve_layer_lambdas
from .specs import (REGULARIZER_PRESETS, ExpectedLoss, Regularizer, RowSumPenalty,
                    SaturationPenalty, regularizer_from_dict, regularizer_preset)

__all__ = ["RowSumPenalty", "SaturationPenalty", "ExpectedLoss", "expected_loss",
           "expected_loss_penalty", "cross_entropy_hessian", "Regularizer", "LayerLambdas", "row_sum_penalty",
           "derivative_penalty", "weight_norm_penalty", "saturation_penalty",
           "regularizer_value", "regularizer_value_and_grad", "value", "value_and_grad",
           "regularizer_preset", "REGULARIZER_PRESETS", "regularizer_from_dict",
           "resolve_layer_lambdas"]
