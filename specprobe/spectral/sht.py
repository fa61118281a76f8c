"""The spherical-harmonic transform of the loss, with fme's conventions.

fme computes its energy score on ``torch_harmonics.RealSHT(nlat, nlon, grid="legendre-gauss")``
with torch-harmonics 0.8.0 defaults: lmax = nlat, mmax = nlon // 2 + 1, orthonormal ("ortho")
harmonics with the Condon-Shortley phase. We always build the *original* torch-harmonics class
(``torch_harmonics.sht.RealSHT``): importing fme replaces ``torch_harmonics.RealSHT`` with its own
fork, which casts to float32 and would spoil float64 work.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

LOSS_GRID = "legendre-gauss"
GRIDS = ("legendre-gauss", "equiangular", "lobatto")


@dataclass(frozen=True)
class SHTConvention:
    """What a set of spectral coefficients means; written into every result's provenance.

    Attributes:
        nlat: number of latitudes of the grid (>= 2).
        nlon: number of longitudes of the grid (>= 2).
        grid: ``"legendre-gauss"`` (default, fme's loss grid), ``"equiangular"`` or ``"lobatto"``.
        lmax: number of degrees L; None: torch-harmonics 0.8.0's default, nlat (nlat - 1 on ``lobatto``).
        mmax: number of orders M; None: nlon // 2 + 1.

    Raises:
        ValueError: on construction, an unknown ``grid`` or a grid smaller than 2 x 2.
    """

    nlat: int
    nlon: int
    grid: str = LOSS_GRID
    lmax: int | None = None
    mmax: int | None = None

    def __post_init__(self):
        if self.grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {self.grid!r}")
        if self.nlat < 2 or self.nlon < 2:
            raise ValueError(f"grid must be at least 2x2, got nlat={self.nlat}, nlon={self.nlon}")

    @property
    def n_degrees(self) -> int:
        """The number of degrees L (``lmax``, or its default when None)."""
        if self.lmax is not None:
            return self.lmax
        return self.nlat - 1 if self.grid == "lobatto" else self.nlat

    @property
    def n_orders(self) -> int:
        """The number of orders M (``mmax``, or nlon // 2 + 1 when None)."""
        return self.mmax if self.mmax is not None else self.nlon // 2 + 1

    def describe(self) -> dict:
        """The convention as a JSON-ready dict.

        Returns:
            ``{library, grid, nlat, nlon, lmax, mmax, norm, csphase, layout}`` with lmax = L and mmax = M
            resolved, norm ``"ortho"`` and the Condon-Shortley phase on.
        """
        return {
            "library": "torch-harmonics RealSHT",
            "grid": self.grid,
            "nlat": self.nlat,
            "nlon": self.nlon,
            "lmax": self.n_degrees,
            "mmax": self.n_orders,
            "norm": "ortho",
            "csphase": True,
            "layout": "(..., l, m), complex; entries with m > l are zero",
        }


class _ConventionSHT:
    """A torch-harmonics ``RealSHT`` whose output always has the convention's (L, M) layout.

    torch-harmonics 0.9 forces lmax = mmax = min(lmax, mmax), so on the usual nlon = 2 nlat grids it
    returns M = nlat orders instead of fme's nlon // 2 + 1. The orders it drops (m >= L) hold only
    m > l slots, which are zero; padding them back keeps fme's 2 sqrt(L M) scaling and every (l, m)
    index as torch-harmonics 0.8.0 (fme's pin) gives them. Dropped degrees could not be restored:
    that is refused when the transform is built."""

    def __init__(self, sht, n_orders: int):
        self.sht, self.n_orders = sht, n_orders

    def __call__(self, x):
        c = self.sht(x)
        missing = self.n_orders - c.shape[-1]
        if missing > 0:
            import torch

            c = torch.nn.functional.pad(c, (0, missing))
        return c

    def __getattr__(self, name):
        return getattr(self.sht, name)


@functools.lru_cache(maxsize=32)
def _cached_sht(nlat: int, nlon: int, grid: str, lmax, mmax, device: str, dtype_name: str):
    import torch
    from torch_harmonics.sht import RealSHT

    conv = SHTConvention(nlat, nlon, grid, lmax, mmax)
    # lmax and mmax explicit: torch-harmonics 0.9 changed the defaults (equiangular lmax (nlat+1)//2)
    sht = RealSHT(nlat, nlon, lmax=conv.n_degrees, mmax=conv.n_orders, grid=grid, norm="ortho", csphase=True)
    if sht.lmax < conv.n_degrees:
        import torch_harmonics

        raise ValueError(f"torch-harmonics {torch_harmonics.__version__} truncates the {nlat}x{nlon} {grid} transform "
                         f"to {sht.lmax} degrees, not the {conv.n_degrees} of fme's loss (torch-harmonics 0.8.0)")
    # Store the Legendre weights in the working dtype once, so forward() does not recast them.
    sht.weights = sht.weights.to(device=device, dtype=getattr(torch, dtype_name))
    return _ConventionSHT(sht, conv.n_orders)


def real_sht(nlat: int, nlon: int, *, grid: str = LOSS_GRID, lmax: int | None = None,
             mmax: int | None = None, device: torch.device | str | None = None,
             dtype: torch.dtype | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A torch-harmonics ``RealSHT``, built once per (grid, truncation, device, dtype) and cached.

    The transform is the original ``torch_harmonics.sht.RealSHT`` (orthonormal, Condon-Shortley phase),
    wrapped so that its output always has the convention's (L, M) layout: orders a newer torch-harmonics
    drops (m >= L, all zero) are padded back with zeros.

    Args:
        nlat: number of latitudes of the grid.
        nlon: number of longitudes of the grid.
        grid: ``"legendre-gauss"`` (default), ``"equiangular"`` or ``"lobatto"``.
        lmax: number of degrees L; None: nlat (nlat - 1 on ``lobatto``), as fme's torch-harmonics 0.8.0.
        mmax: number of orders M; None: nlon // 2 + 1.
        device: where the transform's weights live; None: CPU.
        dtype: the working real dtype; None: float32.

    Returns:
        A callable mapping a real tensor (..., nlat, nlon) to complex coefficients (..., L, M); other
        attributes are those of the wrapped ``RealSHT``.

    Raises:
        ValueError: the convention is invalid (see :class:`SHTConvention`), or the installed torch-harmonics
            would truncate the transform to fewer than L degrees.
    """
    import torch

    SHTConvention(nlat, nlon, grid, lmax, mmax)  # validates
    dtype = dtype or torch.float32
    device = torch.device(device or "cpu")
    return _cached_sht(nlat, nlon, grid, lmax, mmax, str(device), str(dtype).removeprefix("torch."))


def to_spectral(x: torch.Tensor, *, grid: str = LOSS_GRID) -> torch.Tensor:
    """Forward real SHT of the last two (lat, lon) axes of a real tensor, in its own dtype.

    Uses :func:`real_sht` with its default truncation (L = nlat, or nlat - 1 on ``lobatto``;
    M = nlon // 2 + 1) on ``x``'s device.

    Args:
        x: a real tensor (..., nlat, nlon); float32 and float64 are kept, any other dtype is cast to float32.
        grid: the grid of ``x`` (default ``"legendre-gauss"``, fme's loss grid).

    Returns:
        Complex coefficients (..., L, M) (complex64 or complex128); entries with m > l are zero.

    Raises:
        ValueError: ``x`` is not a real tensor with at least 2 dims, or the grid is invalid.
    """
    import torch

    if not isinstance(x, torch.Tensor) or x.is_complex() or x.ndim < 2:
        raise ValueError("x: expected a real tensor (..., nlat, nlon)")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    sht = real_sht(x.shape[-2], x.shape[-1], grid=grid, device=x.device, dtype=x.dtype)
    return sht(x)
