"""Hot path of MC dropout: T = 30 stochastic passes of lenet on the digits test batch, as
the adaptive chunks ``mc-dropout`` uses, next to the plain loop and the fully batched call
it must not fall behind (``scripts/bench_mc_sampling.py`` prints the ratios side by side)."""

from __future__ import annotations


import pytest
import torch

from benchtool.contracts.data import DatasetInfo
from benchtool.models.nets import LeNet
from benchtool_uncertainty._sampling import stochastic_passes
from benchtool_uncertainty.mc_dropout import sampling_copy

PASSES = 30
DIGITS = DatasetInfo("digits", "classification", (1, 8, 8), 10, (0.0, 1.0))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lenet_with_dropout() -> torch.nn.Module:
    torch.manual_seed(0)
    return sampling_copy(LeNet(DIGITS))


def sample(network: torch.nn.Module, x: torch.Tensor, per_call: int | None) -> int:
    with torch.no_grad():
        return sum(len(torch.softmax(chunk, -1)) for chunk in stochastic_passes(network, x, PASSES,
                                                                                 passes_per_call=per_call))


@pytest.mark.parametrize("batch", [8, 360], ids=["n8", "n360"])
@pytest.mark.parametrize("mode", ["adaptive", "loop", "batched"])
def test_mc_dropout_sampling(benchmark, lenet_with_dropout, mode: str, batch: int) -> None:
    benchmark.group = f"mc-sampling-{batch}"
    per_call = {"adaptive": None, "loop": 1, "batched": PASSES}[mode]
    x = torch.rand(batch, *DIGITS.input_shape, generator=torch.Generator().manual_seed(0))
    assert benchmark(sample, lenet_with_dropout, x, per_call) == PASSES
