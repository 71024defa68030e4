"""Rank fusion of full-text and vector results (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence


def normalise(scores: Sequence[tuple[int, float]]) -> dict[int, float]:
    """Min-max to [0, 1] within one result list (the best gets 1)."""
    if not scores:
        return {}
    values = [s for _, s in scores]
    low, high = min(values), max(values)
    span = high - low
    return {i: (s - low) / span if span > 0 else 1.0 for i, s in scores}


def convex(
    text: Sequence[tuple[int, float]],
    vector: Sequence[tuple[int, float]],
    *,
    text_weight: float,
    vector_weight: float,
) -> list[tuple[int, float]]:
    """Weighted sum of normalised scores; a chunk missing from a list scores 0 there."""
    t, v = normalise(text), normalise(vector)
    total = (text_weight + vector_weight) or 1.0
    fused = {
        i: (text_weight * t.get(i, 0.0) + vector_weight * v.get(i, 0.0)) / total
        for i in t.keys() | v.keys()
    }
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
