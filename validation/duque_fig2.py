"""Duque 2024, Fig. 2: the weights of the standard and the regularized (Eq. 4) MNIST models.

Models:   standard and regularized_cor (Duque 2024, Eq. 4, row-sum penalty), the MNIST models
          of duque_fig4 (trained here if missing; settings: refnet.reproduction.duque.DuqueSetup).
Computed: for each weight matrix, the mean and std of every row (one neuron's incoming weights),
          rows sorted by mean; and the mean |row sum|.
Compared: standard vs regularized: Eq. 4 should drive the row means of W2 and W3 toward zero.

Code: refnet/reproduction/duque/fig2.py (compute -> plot -> report).

    python validation/duque_fig2.py [--preset quick|full] [--quick] [--seed 0] [--out DIR]
"""
import sys

from refnet.reproduction import script_main
from refnet.reproduction.duque import fig2 as figure

if __name__ == "__main__":
    sys.exit(script_main(figure, description=__doc__))
