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

LOSS_GRID = "legendre-gauss"
GRIDS = ("legendre-gauss", "equiangular", "lobatto")


@dataclass(frozen=True)
class SHTConvention:
    """What a set of spectral coefficients means; written into every result's provenance."""

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
        if self.lmax is not None:
            return self.lmax
        return self.nlat - 1 if self.grid == "lobatto" else self.nlat

    @property
    def n_orders(self) -> int:
        return self.mmax if self.mmax is not None else self.nlon // 2 + 1

    def describe(self) -> dict:
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
             mmax: int | None = None, device=None, dtype=None):
    """A torch-harmonics ``RealSHT``, built once per (grid, truncation, device, dtype) and cached."""
    import torch

    SHTConvention(nlat, nlon, grid, lmax, mmax)  # validates
    dtype = dtype or torch.float32
    device = torch.device(device or "cpu")
    return _cached_sht(nlat, nlon, grid, lmax, mmax, str(device), str(dtype).removeprefix("torch."))


def to_spectral(x, *, grid: str = LOSS_GRID):
    """Forward real SHT of the last two (lat, lon) axes of a real tensor, in its own dtype."""
    import torch

    if not isinstance(x, torch.Tensor) or x.is_complex() or x.ndim < 2:
        raise ValueError("x: expected a real tensor (..., nlat, nlon)")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    sht = real_sht(x.shape[-2], x.shape[-1], grid=grid, device=x.device, dtype=x.dtype)
    return sht(x)
