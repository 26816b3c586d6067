"""Duque 2024, Sec. 4: the settings envelope of the printed numbers.

Runs:     every setting the paper did not record (baseline epochs, Eq. 7 variant and lambda,
          Eq. 4 lambda, noise-aware variance, QuickDraw rows per class), moved one at a time
          from the full preset's choice; each cell a real training run (cached models reused).
Computed: the printed quantities of Sec. 4 on each cell; envelope.json sums up the ranges.
Compared: whether each printed number lies inside its envelope (the full report's verdict
          "outside the envelope" reads envelope.json).

Code: refnet/reproduction/duque/fig_envelope.py and envelope.py (compute -> plot -> report).

    python validation/duque_envelope.py --preset envelope [--seed 0] [--out DIR]
"""
import sys

from refnet.reproduction import script_main
from refnet.reproduction.duque import fig_envelope as figure

if __name__ == "__main__":
    sys.exit(script_main(figure, description=__doc__))
