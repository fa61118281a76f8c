"""Reduce a tensor to one number per spherical-harmonic degree l.

A per-degree ("dhconv") filter weight has l on one axis; everything else (channels, groups, the
(re, im) pair, orders m of a diagonal filter) belongs to that degree. Binning = for each l, take the
slice at that index along the degree axis and reduce over all of its elements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

STATS = ("l2", "rms", "sum_sq", "count")


def degree_slices(t: torch.Tensor, degree_axis: int) -> torch.Tensor:
    """View ``t`` as (L, N): row l holds every element at degree l (complex -> modulus).

    Args:
        t: a tensor with at least one dimension; a complex tensor is replaced by its modulus first.
        degree_axis: the axis of ``t`` that indexes the degree l (negative values count from the end).

    Returns:
        A real tensor of shape (L, N), L = ``t.shape[degree_axis]`` and N the product of all other
        dimensions (1 for a 1-d ``t``), in ``t``'s (real) dtype; a view of ``t`` where the reshape allows.

    Raises:
        ValueError: ``t`` is not a torch.Tensor, is 0-d, or ``degree_axis`` is not one of its axes.
    """
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


def bin_by_degree(t: torch.Tensor, degree_axis: int, *, stat: str = "l2") -> torch.Tensor:
    """Per-degree statistic (L,): ``l2`` norm, ``rms``, ``sum_sq`` (sum of squares) or ``count``.

    Every element at degree l (see :func:`degree_slices`; complex elements count by their modulus)
    enters the statistic of that degree.

    Args:
        t: a tensor with the degree on ``degree_axis``, e.g. a per-degree filter weight or its gradient.
        degree_axis: the axis of ``t`` that indexes the degree l.
        stat: ``"l2"`` (default; sqrt of the sum of squares), ``"rms"`` (sqrt of the mean square),
            ``"sum_sq"`` (sum of squares) or ``"count"`` (number of elements per degree).

    Returns:
        A tensor of shape (L,) on ``t``'s device. ``l2``, ``rms`` and ``sum_sq`` are float64 (the squares
        are accumulated in float64); ``count`` has the real dtype of ``t``.

    Raises:
        ValueError: ``stat`` is not one of ``STATS``, or ``t`` / ``degree_axis`` are invalid (see
            :func:`degree_slices`).
    """
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
