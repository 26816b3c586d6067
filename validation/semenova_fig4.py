"""Semenova 2022, Fig. 4: noise through a 12-layer symmetric network, first vs higher order.

Network:  the symmetric network, 12 layers, alpha = 2, 3 (b) and 1.5, 3, 4 (c).
Noise:    additive uncorrelated only, D_A^U = 1e-4 (variance 2e-4), every layer's output.
Compared: Monte-Carlo Var(x~_n) in layers 3, 6, 9, 12 vs the first order (Eqs. 9/10) and the
          order-15 Taylor expansion (Eq. 12); the Lamerey diagram S_n vs S_{n-1} (c); the error
          of the order-M approximation at u = 0.5 (d).

Code: refnet/reproduction/semenova/fig4.py (compute -> plot -> report).

    python validation/semenova_fig4.py [--preset quick|full] [--quick] [--seed 0] [--out DIR]
"""
import sys

from refnet.reproduction import script_main
from refnet.reproduction.semenova import fig4 as figure

if __name__ == "__main__":
    sys.exit(script_main(figure, description=__doc__))
