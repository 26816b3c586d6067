"""Semenova 2022: the trained networks A, B, C (:mod:`.protocol`), the symmetric network
(:mod:`.symmetric`) and one module per figure.

``fig3``  output SNR of the symmetric network, six noise panels (Eqs. 4-6, 9, 17, 23)
``fig4``  noise through a 12-layer symmetric network, first vs higher order (Eqs. 9-12)
``fig5``  SNR of the output layer of A, B, C (Eq. 14 with p* by Eq. 29)
``fig6``  SNR of every layer of A for three choices of p*
"""
from .protocol import (NETWORKS, TARGET_CLASS, SemenovaData, SemenovaSetup, figure5_inputs,
                       load_data, predict_outputs, setup_for, task_errors, train_network)
from .symmetric import symmetric_network, symmetric_state_moments

__all__ = ["NETWORKS", "TARGET_CLASS", "SemenovaSetup", "SemenovaData", "setup_for", "load_data",
           "train_network", "task_errors", "predict_outputs", "figure5_inputs",
           "symmetric_network", "symmetric_state_moments"]
