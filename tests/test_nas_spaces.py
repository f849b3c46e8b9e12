"""Search spaces: the canonical encoding, the derived walk operations and the conv-chain
spaces, property-tested with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.nas import InvalidArchitecture
from benchtool.errors import UsageError
from benchtool.testing import check_plugin, registered
from benchtool.testing.strategies import ToyChain, ToyGrid
from benchtool_nas.spaces import ConvChain, ConvChainSmall

SPACES = [ToyGrid(), ToyChain(), ConvChainSmall(), ConvChain()]
seeds = st.integers(min_value=0, max_value=2**32 - 1)
space_ids = st.sampled_from(range(len(SPACES)))
DIGITS_INFO = DatasetInfo("digits-like", "classification", (1, 8, 8), 10, (0.0, 1.0))


@given(space_ids, seeds)
def test_samples_are_canonical_and_round_trip(index: int, seed: int) -> None:
    space = SPACES[index]
    arch = space.draw(np.random.default_rng(seed))
    assert space.canonical(arch) == arch
    assert space.from_key(space.key(arch)) == arch
    assert space.canonical(list(arch)) == arch  # any sequence canonicalizes to the tuple


@given(space_ids, seeds)
def test_mutation_changes_one_decision_and_stays_inside(index: int, seed: int) -> None:
    space = SPACES[index]
    rng = np.random.default_rng(seed)
    arch = space.draw(rng)
    child = space.mutate(arch, rng)
    assert space.contains(child) and child != arch
    described, child_described = space.describe(arch), space.describe(child)
    changed = {k for k in described.keys() & child_described.keys() if described[k] != child_described[k]}
    # one decision changed; a changed layer count also adds or drops whole layers
    assert len(changed) == 1


@given(space_ids, seeds)
def test_neighbours_are_every_single_change(index: int, seed: int) -> None:
    space = SPACES[index]
    arch = space.draw(np.random.default_rng(seed))
    neighbours = space.neighbours(arch)  # without rng: activated decisions take their first value
    assert len(neighbours) == len(set(neighbours)) == sum(
        len(space.decision_list[d].choices) - 1 for d in space.walk(arch)
    )
    assert all(space.contains(n) for n in neighbours) and arch not in neighbours
    assert neighbours == space.neighbours(arch)


def test_same_network_same_encoding_nni_2721() -> None:
    """Decisions of absent layers are not part of the encoding: a 1-layer network has
    one encoding however the walk got there (NNI #2721)."""
    space = ConvChainSmall()
    one_layer = (0, 1, 1, 0, 0, 1)
    assert space.canonical(one_layer) == one_layer
    with pytest.raises(InvalidArchitecture, match="complete after 6"):
        space.canonical((0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0))  # unused second-layer slots
    two_layer = space.mutate(one_layer, np.random.default_rng(0))
    assert len(two_layer) in (6, 11)
    keys = {space.key(a) for a in space.enumerate()}
    descriptions = {tuple(sorted(space.describe(a).items())) for a in space.enumerate()}
    assert len(keys) == len(descriptions) == space.size == 1056


@pytest.mark.parametrize("bad, message", [
    ((), "incomplete"),
    ((0, 1, 1, 0, 0), "incomplete"),
    ((2, 0, 0, 0, 0, 0), r"position 0 \(layers\) is 2"),
    ((0, 1, 1, 0, 0, -1), "position 5"),
    ((0, 1, 1, 0, 0, 1.0), "expected an int"),
    ("0.1.1.0.0.1", "sequence of choice indices"),
])
def test_invalid_encodings_name_the_problem(bad: object, message: str) -> None:
    with pytest.raises(InvalidArchitecture, match=message):
        ConvChainSmall().canonical(bad)


def test_from_key_rejects_garbage() -> None:
    with pytest.raises(InvalidArchitecture, match="not a key"):
        ConvChainSmall().from_key("1.x.0")


def test_conv_chain_size_closed_form_matches_enumeration() -> None:
    per_layer = 4 * 4 * 3 * 3 * 4
    assert ConvChain().size == sum(per_layer**k for k in (1, 2, 3, 4))
    assert ToyChain().size == sum(12**k for k in (1, 2, 3)) == len(list(ToyChain().enumerate()))


def test_conv_chain_builds_the_described_network() -> None:
    space = ConvChain()
    arch = (1, 2, 1, 1, 2, 3, 0, 3, 0, 0, 0)  # 2 layers: 5x3 s(2,3) 64 filters; 1x7 s(1,1) 24
    layers = space.layers(arch)
    assert layers == [
        {"filter_height": 5, "filter_width": 3, "stride_height": 2, "stride_width": 3, "filters": 64},
        {"filter_height": 1, "filter_width": 7, "stride_height": 1, "stride_width": 1, "filters": 24},
    ]
    model = space.build(arch, DIGITS_INFO)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.out_channels) for c in convs] == [((5, 3), (2, 3), 64), ((1, 7), (1, 1), 24)]
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_build_rejects_non_images() -> None:
    info = DatasetInfo("toy", "regression", (1,), None, (-1.0, 1.0))
    with pytest.raises(UsageError, match="builds image classifiers"):
        ConvChain().build(ConvChain().draw(np.random.default_rng(0)), info)


def test_a_space_without_build_says_so() -> None:
    with pytest.raises(UsageError, match="cannot build networks"):
        ToyGrid().build((0, 0, 0, 0), DIGITS_INFO)


@pytest.mark.parametrize("space", [ToyGrid, ToyChain, *registered("search_spaces")], ids=lambda s: s.name)
def test_spaces_pass_conformance(space: type) -> None:
    check_plugin(space)
