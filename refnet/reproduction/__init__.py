"""The reproduction of both papers: presets, protocols, one module per figure, the report.

``presets``   the ``quick`` and ``full`` presets of ``refnet reproduce``
``results``   compute -> cache -> plot bookkeeping (result files, figure files, ``script_main``)
``report``    the report writer (``report.md`` / ``report.html``)
``figures``   figure code shared with ``refnet evaluate`` (accuracy vs variance)
``registry``  script name (``duque_fig4``, ...) -> figure module
``duque``     Duque 2024: the training protocol (``DuqueSetup``) and Figs. 2, 3, 4
``semenova``  Semenova 2022: the trained networks, the symmetric network and Figs. 3-6

Nothing here is imported by refnet's math, Monte-Carlo or propagation modules.
"""
from .registry import MODULES, QUICK_SCRIPTS, SCRIPTS, figure_module
from .results import script_main

__all__ = ["MODULES", "QUICK_SCRIPTS", "SCRIPTS", "figure_module", "script_main"]
