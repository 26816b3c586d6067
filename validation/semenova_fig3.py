"""Semenova 2022, Fig. 3: output SNR of the symmetric 1-200-200-1 network, six noise panels.

Network:  the symmetric network, alpha = 4 (Semenova 2022, Sec. III).
Noise:    uncorrelated (top) and correlated (bottom); additive D_A = 1e-4, multiplicative
          D_M = 1e-3, and both (intensities D, variance 2D), on every layer's output.
Compared: Monte-Carlo SNR (Eq. 4) over K repeats of T inputs u in [0, 1] vs the analytic first
          order (Eqs. 6, 9, 17, 23) and a single noisy neuron (Eq. 5 with F = 0).

Code: refnet/reproduction/semenova/fig3.py (compute -> plot -> report).

    python validation/semenova_fig3.py [--preset quick|full] [--quick] [--seed 0] [--out DIR]
"""
import sys

from refnet.reproduction import script_main
from refnet.reproduction.semenova import fig3 as figure

if __name__ == "__main__":
    sys.exit(script_main(figure, description=__doc__))
