"""Every built-in uncertainty estimator passes the conformance checks plugin authors run."""

from __future__ import annotations

from benchtool.testing import parametrize_with_checks
from benchtool_uncertainty.ddu import DDU
from benchtool_uncertainty.deep_ensemble import DeepEnsemble
from benchtool_uncertainty.evidential import Evidential
from benchtool_uncertainty.heteroscedastic import Heteroscedastic
from benchtool_uncertainty.laplace_last_layer import LaplaceLastLayer
from benchtool_uncertainty.mc_dropout import MCDropout
from benchtool_uncertainty.softmax import Softmax
from benchtool_uncertainty.temperature_scaling import TemperatureScaling

BUILT_IN = [Softmax, MCDropout, DeepEnsemble, TemperatureScaling, LaplaceLastLayer, Heteroscedastic, DDU, Evidential]


@parametrize_with_checks(BUILT_IN)
def test_conformance(plugin, check) -> None:
    check(plugin)
