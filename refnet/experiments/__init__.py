"""Experiment protocols shared by the validation scripts and ``refnet reproduce``.

``duque``: the training protocol of Duque 2024 (cached, resumable model training);
``presets``: the ``quick`` and ``full`` presets of ``refnet reproduce``;
``results``: compute -> cache -> plot bookkeeping for the scripts in ``validation/``.
"""
