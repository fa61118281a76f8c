"""Statistics of a per-degree curve g(l): band means, decline ratio, Spearman rho, log-log slope.

Default bands for L degrees (l = 0 .. L-1), with n = max(1, L // 8):
    low  = [1, n]               the largest scales, l = 0 (the global mean) left out
    mid  = [n + 1, L - n - 1]
    high = [L - n, L - 1]       the smallest eighth of scales
decline ratio = mean(g over low) / mean(g over high). At L = 64: low 1-8, high 56-63.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Band:
    """A named range of degrees lo..hi, both inclusive.

    Attributes:
        name: the band's name (``low``, ``mid``, ``high`` for :func:`default_bands`).
        lo: the first degree (>= 0).
        hi: the last degree (inclusive, >= lo).

    Raises:
        ValueError: on construction, lo < 0 or hi < lo.
    """

    name: str
    lo: int
    hi: int  # inclusive

    def __post_init__(self):
        if self.lo < 0 or self.hi < self.lo:
            raise ValueError(f"band {self.name!r}: expected 0 <= lo <= hi, got {self.lo}..{self.hi}")

    def label(self) -> str:
        """The degree range as text: ``"lo-hi"``, or ``"lo"`` for a single degree."""
        return f"{self.lo}-{self.hi}" if self.hi > self.lo else f"{self.lo}"


def default_bands(n_degrees: int) -> list[Band]:
    """The low, mid and high bands of the module docstring for degrees 0 .. n_degrees - 1.

    Args:
        n_degrees: the number of degrees L (>= 4).

    Returns:
        ``[low, mid, high]`` with n = max(1, L // 8): low = 1..n, mid = n+1..L-n-1 (left out when empty),
        high = L-n..L-1.

    Raises:
        ValueError: ``n_degrees`` < 4.
    """
    if n_degrees < 4:
        raise ValueError(f"n_degrees: need at least 4 degrees for bands, got {n_degrees}")
    n = max(1, n_degrees // 8)
    bands = [Band("low", 1, n)]
    if n_degrees - n - 1 >= n + 1:
        bands.append(Band("mid", n + 1, n_degrees - n - 1))
    bands.append(Band("high", n_degrees - n, n_degrees - 1))
    return bands


def parse_bands(spec: str | None, n_degrees: int) -> list[Band]:
    """``low=1:8,high=56:63`` (inclusive ranges); must include bands named low and high.

    Args:
        spec: comma-separated ``NAME=LO:HI`` items; None, ``""`` or ``"default"``: :func:`default_bands`.
        n_degrees: the number of degrees L; every band must end at or below L - 1.

    Returns:
        The bands, in the order given.

    Raises:
        ValueError: an item does not parse, a band is invalid or exceeds the largest degree, or the names
            are not distinct or lack ``low`` or ``high``.
    """
    if spec is None or spec.strip() in ("", "default"):
        return default_bands(n_degrees)
    bands = []
    for item in spec.split(","):
        m = re.fullmatch(r"\s*([A-Za-z_][\w-]*)=(\d+):(\d+)\s*", item)
        if not m:
            raise ValueError(f"bands: cannot parse {item!r}; expected NAME=LO:HI, e.g. low=1:8,high=56:63")
        band = Band(m.group(1), int(m.group(2)), int(m.group(3)))
        if band.hi >= n_degrees:
            raise ValueError(f"bands: {band.name}={band.lo}:{band.hi} exceeds the largest degree {n_degrees - 1}")
        bands.append(band)
    names = [b.name for b in bands]
    if "low" not in names or "high" not in names or len(set(names)) != len(names):
        raise ValueError(f"bands: need distinct names including 'low' and 'high', got {names}")
    return bands


def band_mean(curve: ArrayLike, band: Band) -> float:
    """Mean of ``curve`` (index = degree) over the band's degrees, ignoring non-finite values.

    Args:
        curve: per-degree values g(l), 1-d, index l.
        band: the degrees to average.

    Returns:
        The mean; NaN when the band holds no finite value.
    """
    values = np.asarray(curve, dtype=float)[band.lo : band.hi + 1]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as Spearman's rho needs."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def spearman_rho(curve: ArrayLike, degrees: ArrayLike | None = None) -> float:
    """Spearman rank correlation of g(l) with l over finite values (nan if fewer than 3 or constant).

    Ties share their mean rank.

    Args:
        curve: per-degree values g(l), 1-d.
        degrees: the degree of each value, same length; None (default): 0 .. len(curve) - 1.

    Returns:
        rho in [-1, 1]; NaN with fewer than 3 finite values or when either ranking is constant.
    """
    y = np.asarray(curve, dtype=float)
    x = np.arange(len(y), dtype=float) if degrees is None else np.asarray(degrees, dtype=float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) < 3:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else math.nan


def loglog_slope(curve: ArrayLike, degrees: ArrayLike | None = None) -> float:
    """Least-squares slope of log g against log l, over l >= 1 with g > 0 (nan if fewer than 2).

    Args:
        curve: per-degree values g(l), 1-d; non-finite and non-positive values are left out.
        degrees: the degree of each value, same length; None (default): 0 .. len(curve) - 1.

    Returns:
        The slope; NaN with fewer than 2 usable points.
    """
    y = np.asarray(curve, dtype=float)
    x = np.arange(len(y), dtype=float) if degrees is None else np.asarray(degrees, dtype=float)
    ok = np.isfinite(y) & (y > 0) & (x >= 1)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def curve_stats(curve: ArrayLike, bands: list[Band], *, first_degree: int = 1) -> dict:
    """Decline ratio (low/high), Spearman rho and log-log slope of a curve over l >= first_degree.

    Args:
        curve: per-degree values g(l), 1-d, index l = 0 .. L-1.
        bands: the bands to average over; must include bands named ``low`` and ``high``.
        first_degree: the smallest degree Spearman rho and the log-log slope use (default 1: l = 0, the
            global mean, left out). The band means use each band's own degrees.

    Returns:
        ``{"decline_ratio": mean over low / mean over high (NaN unless the high mean is > 0),
        "spearman_rho", "loglog_slope", "band_means": {band name: mean}}``.
    """
    y = np.asarray(curve, dtype=float)
    degrees = np.arange(len(y))
    keep = degrees >= first_degree
    by_name = {b.name: b for b in bands}
    low, high = band_mean(y, by_name["low"]), band_mean(y, by_name["high"])
    return {
        "decline_ratio": low / high if high > 0 else math.nan,
        "spearman_rho": spearman_rho(y[keep], degrees[keep]),
        "loglog_slope": loglog_slope(y[keep], degrees[keep]),
        "band_means": {b.name: band_mean(y, b) for b in bands},
    }
