"""Which figure module computes which figure: the names ``refnet reproduce`` and ``validation/`` use.

Each name (``duque_fig4``, ``semenova_fig5``, ...) is both the ``validation/<name>.py`` entry
point and the ``--only`` name of ``refnet reproduce``; its module lives in this package, so the
reproduction runs from an installed refnet without a checkout.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigError

__all__ = ["SCRIPTS", "QUICK_SCRIPTS", "ENVELOPE_SCRIPTS", "PRESET_SCRIPTS", "MODULES",
           "figure_module"]

#: Script name -> figure module, in the order ``refnet reproduce`` runs them (duque_fig4 first:
#: it trains the Duque models that fig2 and fig3 reuse).
MODULES = {
    "duque_fig4": "refnet.reproduction.duque.fig4",
    "duque_fig2": "refnet.reproduction.duque.fig2",
    "duque_fig3": "refnet.reproduction.duque.fig3",
    "semenova_fig3": "refnet.reproduction.semenova.fig3",
    "semenova_fig4": "refnet.reproduction.semenova.fig4",
    "semenova_fig5": "refnet.reproduction.semenova.fig5",
    "semenova_fig6": "refnet.reproduction.semenova.fig6",
    "duque_envelope": "refnet.reproduction.duque.fig_envelope",
}
#: The envelope preset runs only the envelope (its own report; the full report reads its
#: ``envelope.json`` for the verdict "outside the envelope").
ENVELOPE_SCRIPTS = ("duque_envelope",)
SCRIPTS = tuple(s for s in MODULES if s not in ENVELOPE_SCRIPTS)
#: The ``quick`` preset uses MNIST only (plus generated data), so it leaves out semenova_fig5,
#: whose network B needs Fashion-MNIST.
QUICK_SCRIPTS = tuple(s for s in SCRIPTS if s != "semenova_fig5")
#: Preset name -> the scripts ``refnet reproduce --preset NAME`` runs.
PRESET_SCRIPTS = {"quick": QUICK_SCRIPTS, "full": SCRIPTS, "envelope": ENVELOPE_SCRIPTS}


def figure_module(name: str) -> ModuleType:
    """The figure module of script ``name`` (it defines ``compute``, ``plot`` and ``report``)."""
    try:
        return importlib.import_module(MODULES[name])
    except KeyError:
        raise ConfigError(f"figure {name!r}: unknown; known: {', '.join(MODULES)}") from None
