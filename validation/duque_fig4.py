"""Duque 2024, Fig. 4 and Sec. 4: accuracy vs noise variance, three training modes.

Models:   per dataset of the preset (MNIST; full: also Fashion-MNIST, QuickDraw) the standard,
          noise-aware and regularized (Eq. 4 correlated, Eq. 7 uncorrelated) 784-300-300-C
          sigmoid models (refnet.reproduction.duque.protocol).
Noise:    one kind alone after both hidden layers, additive correlated and additive
          uncorrelated, variances log-spaced in [1e-3, 1], repeated over the whole test set.
Compared: the paper's clean accuracies and accuracy drops at variance 1 (Sec. 4).

Code: refnet/reproduction/duque/fig4.py (compute -> plot -> report).

    python validation/duque_fig4.py [--preset quick|full] [--quick] [--seed 0] [--out DIR]
"""
import sys

from refnet.reproduction import script_main
from refnet.reproduction.duque import fig4 as figure

if __name__ == "__main__":
    sys.exit(script_main(figure, description=__doc__))
