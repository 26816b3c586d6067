"""Duque 2024, Fig. 3: why saturation suppresses uncorrelated noise.

(a) Eq. 6 (Duque 2024, p. 4): the PDF of a = sigmoid(z), z ~ N(mu, 0.2) (a variance), for
    mu = 0..4, drawn over histograms of sampled activations; Var(a) both ways.
(b)-(d) clean forward pass over MNIST test images: pre-activations z^(2), post-activations a^(2)
    and output weights W^(3) of the standard, noise-aware (uncorrelated) and regularized (Eq. 7)
    models of duque_fig4 (trained here if missing).
Compared: how far each model pushes hidden layer 2 into the saturated ends of the sigmoid.

Code: refnet/reproduction/duque/fig3.py (compute -> plot -> report).

    python validation/duque_fig3.py [--preset quick|full] [--quick] [--seed 0] [--out DIR]
"""
import sys

from refnet.reproduction import script_main
from refnet.reproduction.duque import fig3 as figure

if __name__ == "__main__":
    sys.exit(script_main(figure, description=__doc__))
