"""Cross-checking another framework against refnet (three modes).

* ``make`` (:func:`make_bundle`, :func:`write_bundle`): one noisy batch with its explicit
  noise draws and refnet's float64 answers (layer outputs, loss, gradients of the loss and of
  each regularizer, one optimizer step), framework-neutral (:mod:`refnet.crosscheck.bundle`);
* ``check`` (:func:`check_results`): the framework's answers against refnet's, tensor by
  tensor, with stated float32 and float64 tolerances (:mod:`refnet.crosscheck.check`);
* ``stat`` (:func:`compare_samples`): for simulators that own their random numbers, the
  distribution of their noisy outputs against refnet's Monte-Carlo
  (:mod:`refnet.crosscheck.stat`).

The command line is ``refnet crosscheck make|check|stat``.
"""
from .bundle import (BUNDLE_REGULARIZERS, bundle_draws, bundle_model, bundle_noise,
                     make_bundle, read_bundle, write_bundle)
from .check import TOLERANCES, TensorCheck, check_results, format_table, merge_results
from .stat import LayerComparison, StatComparison, compare_samples, format_report, holm

__all__ = ["BUNDLE_REGULARIZERS", "bundle_draws", "bundle_model", "bundle_noise", "make_bundle",
           "read_bundle", "write_bundle", "TOLERANCES", "TensorCheck", "check_results",
           "format_table", "merge_results", "LayerComparison", "StatComparison",
           "compare_samples", "format_report", "holm"]
