"""Refuse grids that cannot fit before allocating anything.

A checkpoint's declared grid decides the size of every spherical-harmonic transform: torch-harmonics
precomputes Legendre weights of shape (mmax, lmax, nlat) ~ (nlon/2) * nlat * nlat values in float64,
so memory grows as nlat^3. A hostile or mistaken file declaring a 100000 x 200000 grid must be
refused with an estimate, not crash the machine.
"""

from __future__ import annotations

import os

from ..errors import CheckpointError

_SAFETY = 0.8  # leave room for activations, the model and the OS


def sht_weight_bytes(nlat: int, nlon: int, *, bytes_per_value: int = 8) -> int:
    """Bytes of one torch-harmonics RealSHT/InverseRealSHT weight buffer (float64 at build time)."""
    lmax, mmax = nlat, nlon // 2 + 1
    return int(mmax) * int(lmax) * int(nlat) * bytes_per_value


def available_bytes(device=None) -> int:
    """Free memory where the transforms will live (GPU memory for cuda, else MemAvailable)."""
    dev = str(device or "cpu")
    if dev.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(dev))
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def check_grid_fits(nlat, nlon, *, n_transforms: int = 3, device=None, what: str = "checkpoint") -> None:
    """Raise CheckpointError if ``n_transforms`` SHTs on this grid would not fit in free memory."""
    for name, v in (("nlat", nlat), ("nlon", nlon)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 2:
            raise CheckpointError(f"{what}: declared grid {name}={v!r} is not an integer >= 2")
    need = n_transforms * sht_weight_bytes(nlat, nlon)
    have = available_bytes(device)
    if need > _SAFETY * have:
        raise CheckpointError(
            f"{what}: declared grid {nlat}x{nlon} needs about {need / 2**30:,.1f} GiB for its spherical-harmonic "
            f"transforms alone ({n_transforms} x (nlon/2+1) x nlat^2 float64 weights), but only "
            f"{have / 2**30:,.1f} GiB is free; refusing before allocation"
        )
