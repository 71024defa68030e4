"""Score fusion of full-text and vector results (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Distribution-based fusion maps mean ± this many standard deviations onto [0, 1].
SPREAD = 3.0


def normalise_distribution(scores: Sequence[tuple[int, float]]) -> dict[int, float]:
    """Distribution-based: mean - 3σ maps to 0 and mean + 3σ to 1, within one result list.

    Unlike min-max, one outlying best score does not squash the rest of its list, and the list's
    worst candidate is not pinned to 0 (a candidate missing from a list still is)."""
    if not scores:
        return {}
    values = [s for _, s in scores]
    mean = math.fsum(values) / len(values)
    deviation = math.sqrt(math.fsum((s - mean) ** 2 for s in values) / len(values))
    if deviation == 0:
        return {i: 1.0 for i, _ in scores}
    low, span = mean - SPREAD * deviation, 2 * SPREAD * deviation
    return {i: (s - low) / span for i, s in scores}


def convex(
    text: Sequence[tuple[int, float]],
    vector: Sequence[tuple[int, float]],
    *,
    text_weight: float,
    vector_weight: float,
) -> list[tuple[int, float]]:
    """Weighted sum of distribution-normalised scores; a chunk missing from a list scores 0
    there."""
    t, v = normalise_distribution(text), normalise_distribution(vector)
    total = (text_weight + vector_weight) or 1.0
    fused = {
        i: (text_weight * t.get(i, 0.0) + vector_weight * v.get(i, 0.0)) / total
        for i in t.keys() | v.keys()
    }
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
