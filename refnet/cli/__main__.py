"""``python -m refnet.cli``: the same as the ``refnet`` console script."""
import sys

from . import main

sys.exit(main())
