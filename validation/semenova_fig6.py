"""Semenova 2022, Fig. 6: SNR in every layer of network A, three choices of p*.

Network:  A (MNIST), T images of digit 5, K noisy repeats each.
Noise:    as semenova_fig5 (Fig. 3's intensities, all four types, every layer's output).
Compared: Monte-Carlo SNR of layers 2, 3, 4 vs Eqs. 14-15 with p*_n uniform, normal and Eq. 29's
          g, each fitted to the clean internal states x~_n; their histograms with the three
          densities (d-f).

Code: refnet/reproduction/semenova/fig6.py (compute -> plot -> report).

    python validation/semenova_fig6.py [--preset quick|full] [--quick] [--seed 0] [--out DIR]
"""
import sys

from refnet.reproduction import script_main
from refnet.reproduction.semenova import fig6 as figure

if __name__ == "__main__":
    sys.exit(script_main(figure, description=__doc__))
