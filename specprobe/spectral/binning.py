"""Reduce a tensor to one number per spherical-harmonic degree l.

A per-degree ("dhconv") filter weight has l on one axis; everything else (channels, groups, the
(re, im) pair, orders m of a diagonal filter) belongs to that degree. Binning = for each l, take the
slice at that index along the degree axis and reduce over all of its elements.
"""

from __future__ import annotations

STATS = ("l2", "rms", "sum_sq", "count")


def degree_slices(t, degree_axis: int):
    """View ``t`` as (L, N): row l holds every element at degree l (complex -> modulus)."""
    import torch

    if not isinstance(t, torch.Tensor):
        raise ValueError(f"t: expected a torch.Tensor, got {type(t).__name__}")
    if t.ndim == 0:
        raise ValueError("t: expected at least one dimension (the degree axis)")
    if not -t.ndim <= degree_axis < t.ndim:
        raise ValueError(f"degree_axis: expected an axis of a {t.ndim}-d tensor, got {degree_axis}")
    if t.is_complex():
        t = t.abs()
    return t.movedim(degree_axis, 0).reshape(t.shape[degree_axis], -1)


def bin_by_degree(t, degree_axis: int, *, stat: str = "l2"):
    """Per-degree statistic (L,): ``l2`` norm, ``rms``, ``sum_sq`` (sum of squares) or ``count``."""
    if stat not in STATS:
        raise ValueError(f"stat: expected one of {STATS}, got {stat!r}")
    rows = degree_slices(t, degree_axis)
    if stat == "count":
        return rows.new_full((rows.shape[0],), rows.shape[1])
    # Accumulate in float64: a degree row can hold millions of small float32 gradients.
    sum_sq = rows.double().pow(2).sum(dim=1)
    if stat == "sum_sq":
        return sum_sq
    if stat == "l2":
        return sum_sq.sqrt()
    return (sum_sq / rows.shape[1]).sqrt()
