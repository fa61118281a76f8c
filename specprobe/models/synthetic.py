"""Seeded synthetic probe data shared by the families: unit-variance red-spectrum fields on a grid.

Used when no ``--data`` is given for a model that has no bundled sample (fme checkpoints, torch-harmonics
state dicts): the fields are random spherical-harmonic coefficients with degree power ~ l**slope
(l >= 1, so the mean is exactly zero), synthesised with the original torch-harmonics ``InverseRealSHT``
on the model's own data grid. No torch at module level.
"""

from __future__ import annotations

import functools
import math


@functools.lru_cache(maxsize=4)
def synthesis_isht(nlat: int, nlon: int, grid: str):
    """Built once per grid: its Legendre tables cost more than the fields of a batch (measured 35 ms
    per batch of a 32 x 64 model, 5% of a K = 8 probe)."""
    from torch_harmonics.sht import InverseRealSHT  # the original class: fme replaces torch_harmonics.InverseRealSHT

    return InverseRealSHT(nlat, nlon, grid=grid, norm="ortho", csphase=True).double()


def red_fields(n: int, n_channels: int, nlat: int, nlon: int, grid: str, generator, *, slope: float = -2.0):
    """(n, n_channels, nlat, nlon) float32 unit-variance fields with degree power ~ l**slope (l >= 1)."""
    import torch

    isht = synthesis_isht(nlat, nlon, grid)
    L, M = isht.lmax, isht.mmax
    l_idx = torch.arange(L, dtype=torch.float64)
    power = torch.where(l_idx > 0, l_idx.clamp(min=1) ** slope, torch.zeros(()))  # no l = 0: keep the mean
    power = power * (4 * math.pi / power.sum())  # sum_l P(l) = 4 pi <=> unit mean square on the sphere
    sigma = (power / (2 * l_idx + 1)).sqrt()[:, None]  # per-mode std: P(l) = (2l + 1) sigma_l^2
    shape = (n, n_channels, L, M)
    re = torch.randn(shape, generator=generator, dtype=torch.float64)
    im = torch.randn(shape, generator=generator, dtype=torch.float64)
    im[..., 0] = 0.0
    scale = torch.full((M,), 1 / math.sqrt(2.0), dtype=torch.float64)
    scale[0] = 1.0  # m = 0 is real with variance sigma^2; m > 0 splits it over (re, im)
    valid = torch.arange(M)[None, :] <= torch.arange(L)[:, None]
    alm = torch.complex(re * scale, im * scale) * sigma * valid
    return isht(alm).float()
