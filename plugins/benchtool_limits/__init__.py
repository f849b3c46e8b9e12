"""The built-in plugins of the limits suites, each module loaded through its own entry point:

- ``weightings`` (entry point ``loss-weightings``): multi-task loss weightings ``equal``,
  ``fixed`` (a hand-tuning grid), ``uncertainty`` (Kendall, Gal & Cipolla 2018) and
  ``gradnorm`` (Chen et al. 2018), run by ``suites/test_multitask.py``.
- ``targets`` (entry point ``target-functions``): target functions ``sine``, ``abs``,
  ``triangle-wave`` and ``product-sine`` for ``suites/test_approximation.py`` (Hornik,
  Stinchcombe & White 1989).

Third-party packages add their own through the hooks ``benchtool_register_loss_weightings``
and ``benchtool_register_target_functions`` (contracts in :mod:`benchtool.contracts.limits`).
"""
