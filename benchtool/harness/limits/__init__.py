"""Shared machinery of the limits suites: label corruption and memorization training
(Zhang et al. 2017), shallow-network approximation (Hornik et al. 1989) and the multi-task
digits problem (Kendall et al. 2018)."""
