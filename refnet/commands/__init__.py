"""Subcommands of the ``refnet`` command line; see :mod:`refnet.cli`."""
