"""Seeded index splits: the same seed gives the same partition on every machine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Salts keep the random streams of one seed independent (splitting vs. noise vs. shifts).
SPLIT_STREAM = 0
SHIFT_STREAM = 1
GENERATE_STREAM = 2


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """A generator for one purpose (``stream``) of one seed."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, stream])


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    parts = np.asarray(fractions, dtype=np.float64)
    if parts.ndim != 1 or len(parts) < 2 or (parts < 0).any() or abs(parts.sum() - 1.0) > 1e-9:
        raise ValueError(f"fractions must be >= 0, at least two, and sum to 1; got {list(fractions)}")
    return parts


def _cut(indices: np.ndarray, parts: np.ndarray) -> list[np.ndarray]:
    bounds = np.rint(np.cumsum(parts) * len(indices)).astype(np.int64)
    bounds[-1] = len(indices)
    return np.split(indices, bounds[:-1])


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Partition ``range(len(labels))`` into ``len(fractions)`` sorted index arrays whose
    sizes follow ``fractions`` overall (within one example) and in every class (within one
    example).

    Each class is shuffled and its members placed at evenly spaced positions in [0, 1];
    all examples are ordered by position (ties broken at random) and cut once, so small
    classes are never rounded away from a part. Where that cut leaves a class a whole
    example or more off its share of a part (a few tiny classes tied at one position), the
    (class x part) counts are rounded under control instead (:func:`controlled_counts`)."""
    parts = _check_fractions(fractions)
    labels = np.asarray(labels)
    rng = rng_for(seed, SPLIT_STREAM)
    classes = np.unique(labels)
    members, positions = [], []
    for cls in classes:
        shuffled = rng.permutation(np.flatnonzero(labels == cls))
        members.append(shuffled)
        positions.append((np.arange(len(shuffled)) + 0.5) / len(shuffled))
    if not members:
        return [np.empty(0, dtype=np.int64) for _ in parts]
    everyone, position = np.concatenate(members), np.concatenate(positions)
    order = np.lexsort((rng.random(len(everyone)), position))
    pieces = _cut(everyone[order], parts)
    sizes = np.array([len(m) for m in members])
    counts = np.array([[(labels[piece] == cls).sum() for piece in pieces] for cls in classes])
    if (np.abs(counts - np.outer(sizes, parts)) >= 1).any():
        counts = controlled_counts(sizes, parts)
        pieces = [np.concatenate(chunks) for chunks in zip(*(
            np.split(m, np.cumsum(row)[:-1]) for m, row in zip(members, counts)))]
    return [np.sort(piece) for piece in pieces]


def controlled_counts(sizes: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """(classes x parts) counts, each the floor or ceiling of ``size * fraction``, rows
    summing to the class sizes and columns to the floor or ceiling of ``fraction * total``:
    a controlled rounding of the table (Cox 1987), found as a flow. The units each class
    owes after the floors go to parts where its share has a fractional part, filling every
    column to its floor first, then up to its ceiling."""
    exact = np.outer(sizes, parts)
    floors = np.floor(exact + 1e-9).astype(np.int64)
    may_round_up = exact - floors > 1e-9
    up = np.zeros_like(may_round_up)
    owed = sizes - floors.sum(1)
    totals = parts * sizes.sum()
    for column_cap in (np.floor(totals + 1e-9), np.ceil(totals - 1e-9)):
        room = column_cap.astype(np.int64) - floors.sum(0) - up.sum(0)
        while owed.any() and _augment(up, may_round_up, owed, room):
            pass
    if owed.any():  # cannot happen: a controlled rounding always exists (Cox 1987)
        raise AssertionError(f"no controlled rounding of sizes {sizes.tolist()} into {parts.tolist()}")
    return floors + up


def _augment(up: np.ndarray, may_round_up: np.ndarray, owed: np.ndarray, room: np.ndarray) -> bool:
    """Round one more entry up along an alternating path, breadth first: from a class that
    owes a unit to a part it may round up in; from a part without room, back to a class
    rounded up there, which then owes its unit elsewhere. False when no path reaches a part
    with room."""
    n_classes, n_parts = up.shape
    came_from: dict[tuple[str, int], tuple[str, int] | None] = {("class", c): None for c in np.flatnonzero(owed)}
    frontier = list(came_from)
    while frontier:
        node = frontier.pop(0)
        kind, i = node
        if kind == "class":
            nexts = [("part", p) for p in range(n_parts) if may_round_up[i, p] and not up[i, p]]
        else:
            nexts = [("class", c) for c in range(n_classes) if up[c, i]]
        for step in nexts:
            if step in came_from:
                continue
            came_from[step] = node
            if step[0] == "part" and room[step[1]] > 0:
                room[step[1]] -= 1
                while came_from[step] is not None:
                    before = came_from[step]
                    if step[0] == "part":  # class -> part: round up there
                        up[before[1], step[1]] = True
                    else:  # part -> class: that class gives its unit at this part back
                        up[step[1], before[1]] = False
                    step = before
                owed[step[1]] -= 1
                return True
            frontier.append(step)
    return False


def random_split(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Partition ``range(n)`` into sorted index arrays of the given fractions."""
    parts = _check_fractions(fractions)
    return [np.sort(piece) for piece in _cut(rng_for(seed, SPLIT_STREAM).permutation(n), parts)]
