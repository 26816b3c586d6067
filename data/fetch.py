#!/usr/bin/env python3
"""Fetch and verify the datasets: ``python3 data/fetch.py [mnist] [fashion-mnist] [quickdraw]``.

Same as ``refnet fetch``; ``--help`` lists the options. Needs only the Python standard library.
"""
import sys
import types
from pathlib import Path

# This script must run from a fresh clone, before `pip install` (and without numpy), so it
# finds the package beside itself; it loads only refnet.datasets, skipping refnet/__init__.py,
# whose imports need numpy.
ROOT = Path(__file__).resolve().parent.parent
if "refnet" not in sys.modules:
    pkg = types.ModuleType("refnet")
    pkg.__path__ = [str(ROOT / "refnet")]
    sys.modules["refnet"] = pkg

from refnet.datasets.fetch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
