"""Semenova 2022, Fig. 5: output-layer SNR of the trained networks A, B and C.

Networks: A (MNIST, T images of digit 5), B (Fashion-MNIST, T pullovers), C (Mackey-Glass,
          T test windows), trained without noise (refnet.reproduction.semenova.protocol).
Noise:    Fig. 3's intensities, all four types at once, on every layer's output incl. the input.
Compared: Monte-Carlo output mean and SNR (K repeats per input) vs Eq. 14 chained through the
          layers with p* approximated by Eq. 29, and vs the first-order Jacobian prediction;
          the training/test errors against the paper's (Sec. IV).

Code: refnet/reproduction/semenova/fig5.py (compute -> plot -> report).

    python validation/semenova_fig5.py [--preset quick|full] [--quick] [--seed 0] [--out DIR]
"""
import sys

from refnet.reproduction import script_main
from refnet.reproduction.semenova import fig5 as figure

if __name__ == "__main__":
    sys.exit(script_main(figure, description=__doc__))
