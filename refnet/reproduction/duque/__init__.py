"""Duque 2024: the training protocol (:mod:`.protocol`) and one module per figure.

``fig2``  per-row weight statistics, standard vs regularized (Eq. 4)
``fig3``  why saturation suppresses uncorrelated noise (Eq. 6 PDF, layer distributions)
``fig4``  accuracy vs noise variance and the numbers of Sec. 4
``envelope``      the settings envelope: one unrecorded setting moved per cell
``fig_envelope``  its runs, plot and report (``refnet reproduce --preset envelope``)
"""
from .protocol import MODES, DuqueData, DuqueSetup, load_data, mode_config, train_models

__all__ = ["DuqueSetup", "MODES", "DuqueData", "load_data", "train_models", "mode_config"]
