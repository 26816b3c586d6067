"""Analytic noise propagation: one module per paper, each opening with its index table.

* :mod:`refnet.propagation.semenova` - Semenova 2022, Eqs. 1-13, 16-23, symmetric network;
* :mod:`refnet.propagation.taylor` - Semenova 2022, Eqs. 24-28, jets (derivatives of any order),
  Gaussian moments, the Gauss-Hermite reference;
* :mod:`refnet.propagation.trained` - Semenova 2022, Eqs. 14, 15, 29 (trained networks);
* :mod:`refnet.propagation.duque` - Duque 2024, Eqs. 1-3, 5, 6 (Eqs. 4 and 7 are the
  regularizers in :mod:`refnet.regularizers`);
* :mod:`refnet.propagation.sensitivity` - per-layer, per-noise-type sensitivity report;
* :mod:`refnet.propagation.moments` - moment propagation beyond first order (Gauss-Hermite
  neurons, exact correlated draws) and the predicted accuracy vs variance curve
  (steps in :mod:`~refnet.propagation.moment_steps`, single neurons in
  :mod:`~refnet.propagation.neuron_moments`, argmax probabilities in
  :mod:`~refnet.propagation.gaussian_argmax`, the whole curve in one pass in
  :mod:`~refnet.propagation.moment_curve`).

Nothing here imports numba: these are the slow, readable references.
"""
