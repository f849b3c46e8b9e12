"""Conformance checks for search spaces: a walk of decisions whose encodings are
canonical (one network, one encoding: NNI #2721), whose derived operations stay inside
the space, and whose table, when shipped, covers it."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.nas import InvalidArchitecture, SearchSpace
from benchtool.testing import Check, instance

SAMPLES = 60
ENUMERATE_LIMIT = 20_000  # spaces up to this size are enumerated to check `size`
PROBE_INFO = DatasetInfo("probe-8x8", "classification", (1, 8, 8), 10, (0.0, 1.0))


def _samples(space: SearchSpace, seed: int = 0) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    return [space.draw(rng) for _ in range(SAMPLES)]


def check_decisions_valid(plugin: Any) -> None:
    """At least one decision, unique names, every decision with a choice."""
    space = instance(plugin)
    decisions = space.decision_list
    assert decisions, "decisions() is empty"
    for decision in decisions:
        assert decision.choices, f"decision {decision.name!r} has no choices"


def check_samples_valid_canonical(plugin: Any) -> None:
    """Samples are canonical tuples of ints, visit each decision at most once, and the
    same seed gives the same samples."""
    space = instance(plugin)
    samples = _samples(space)
    for arch in samples:
        assert isinstance(arch, tuple) and all(type(c) is int for c in arch), f"{arch!r} is not a tuple of ints"
        assert space.canonical(arch) == arch
        walk = space.walk(arch)
        assert len(set(walk)) == len(walk), f"{arch}: the walk takes a decision twice ({walk})"
    assert samples == _samples(space), "two samplings with seed 0 differ"


def check_encoding_canonical(plugin: Any) -> None:
    """Distinct encodings describe distinct networks, and keys round-trip."""
    space = instance(plugin)
    seen: dict[tuple, tuple[int, ...]] = {}
    for arch in _samples(space, seed=1):
        described = tuple(sorted((k, repr(v)) for k, v in space.describe(arch).items()))
        other = seen.setdefault(described, arch)
        assert other == arch, f"encodings {other} and {arch} describe the same network"
        assert space.from_key(space.key(arch)) == arch


def check_invalid_rejected(plugin: Any) -> None:
    """Truncated, extended, out-of-range and non-integer encodings are rejected."""
    space = instance(plugin)
    arch = space.draw(np.random.default_rng(2))
    n_first = len(space.decision_list[space.walk(arch)[0]].choices)
    bad = [arch[:-1], (*arch, 0), (n_first, *arch[1:]), (-1, *arch[1:]), ("x", *arch[1:]), (True, *arch[1:])]
    for candidate in bad:
        try:
            space.canonical(candidate)
        except InvalidArchitecture:
            continue
        raise AssertionError(f"{candidate!r} was accepted as an architecture")


def check_mutate_and_neighbours(plugin: Any) -> None:
    """Mutations and neighbours are valid, canonical and differ from their parent."""
    space = instance(plugin)
    rng = np.random.default_rng(3)
    for arch in _samples(space, seed=3)[:15]:
        child = space.mutate(arch, rng)
        assert space.canonical(child) == child and child != arch, f"mutate({arch}) gave {child}"
        neighbours = space.neighbours(arch, rng)
        expected = sum(len(space.decision_list[d].choices) - 1 for d in space.walk(arch))
        assert len(neighbours) == expected == len(set(neighbours)), f"{arch}: neighbours are not distinct"
        assert arch not in neighbours and all(space.contains(n) for n in neighbours)


def check_size(plugin: Any) -> None:
    """``size`` counts the architectures (enumerated when the space is small)."""
    space = instance(plugin)
    size = space.size
    assert isinstance(size, int) and size >= 1, f"size is {size!r}"
    if size <= ENUMERATE_LIMIT:
        archs = list(space.enumerate())
        assert len(archs) == len(set(archs)) == size, f"size says {size}, enumeration finds {len(set(archs))}"
    else:
        assert len(set(_samples(space))) <= size


def check_table(plugin: Any) -> None:
    """A shipped table loads and holds every architecture of the space."""
    space = instance(plugin)
    if space.table_path() is None:
        return
    from benchtool.harness.nas.evaluators import TabularEvaluator

    TabularEvaluator(space)


def check_builds(plugin: Any) -> None:
    """A space that builds networks builds sampled ones for 8x8 images that give logits."""
    space = instance(plugin)
    if type(space).build is SearchSpace.build:
        return
    import torch

    for arch in _samples(space, seed=4)[:3]:
        model = space.build(arch, PROBE_INFO)
        out = model.eval()(torch.rand(2, *PROBE_INFO.input_shape))
        assert tuple(out.shape) == (2, PROBE_INFO.num_classes), f"{arch}: logits of shape {tuple(out.shape)}"


def checks(plugin: Any) -> list[Check]:
    """Every conformance check for a search space class or instance."""
    return [
        Check("decisions-valid", check_decisions_valid),
        Check("samples-valid-canonical", check_samples_valid_canonical),
        Check("encoding-canonical", check_encoding_canonical),
        Check("invalid-rejected", check_invalid_rejected),
        Check("mutate-and-neighbours", check_mutate_and_neighbours),
        Check("size", check_size),
        Check("table", check_table),
        Check("builds", check_builds),
    ]
