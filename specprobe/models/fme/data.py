"""Probe data for fme checkpoints: ACE-format netCDF pairs, or seeded synthetic red-spectrum fields.

netCDF (``data`` = a file, a directory of ``*.nc`` files, or a glob): variables named as the
checkpoint's in/out names with dims ``(time, lat, lon)``; files are concatenated in sorted-name
order along time, as fme's ``XarrayDataConfig`` does; each pair of consecutive times (t, t+1)
separated by the checkpoint's timestep is one sample (input/forcing at t, target at t+1, forcings
at t+1 from the same files). ``time_start``/``time_stop`` (strings such as ``"2001-01-01"`` or
datetimes, inclusive) keep pairs with both times in range. Files are read lazily, one pair at a time.

Synthetic (``data=None``): per variable, ``mean + std * z`` with z a unit-variance field whose
spherical-harmonic power falls as l^-2 (random a_lm, seeded, through the original torch-harmonics
``InverseRealSHT`` on the data grid; a_00 = 0 so the mean is exactly the checkpoint's). The target is
``input + tendency_std * z'`` with an independent red z' (tendency_std = the residual-normalisation
std where the checkpoint has one, else half the std), so the loss sees realistic step sizes.
"""

from __future__ import annotations

import functools

import datetime as _dt
import glob as _glob
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DataError
from ..base import Batch


@dataclass
class DataSpec:
    """What the model needs from its data, in physical units."""

    names: list[str]  # every variable to read (inputs, outputs, forcings)
    input_names: list[str]  # network inputs at t: fme refuses NaN there
    target_names: list[str]  # loss channels at t+1: NaN is zeroed (counted)
    nlat: int
    nlon: int
    grid: str  # data grid for the synthetic ISHT ("legendre-gauss" / "equiangular")
    lat: list[float] | None = None
    timestep_seconds: float | None = None
    means: dict = field(default_factory=dict)
    stds: dict = field(default_factory=dict)
    tendency_stds: dict = field(default_factory=dict)
    allow_nan_inputs: bool = False  # the checkpoint's normaliser fills NaN on normalise


def choose_indices(n_available: int, n_samples: int, seed: int, what: str) -> list[int]:
    import numpy as np

    if n_samples > n_available:
        raise DataError(f"{what}: only {n_available} input/target pair(s) available, n_samples={n_samples} requested")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_available, size=n_samples, replace=False))


# ---------------------------------------------------------------- synthetic


@functools.lru_cache(maxsize=4)
def _synthesis_isht(nlat: int, nlon: int, grid: str):
    """Built once per grid: its Legendre tables cost more than the fields of a batch (measured 35 ms
    per batch of the 32 x 64 benchmark model, 5% of a K = 8 probe)."""
    from torch_harmonics.sht import InverseRealSHT  # the original class: fme replaces torch_harmonics.InverseRealSHT

    return InverseRealSHT(nlat, nlon, grid=grid, norm="ortho", csphase=True).double()


def red_fields(n: int, n_channels: int, spec: DataSpec, generator, *, slope: float = -2.0):
    """(n, n_channels, nlat, nlon) float32 unit-variance fields with degree power ~ l**slope (l >= 1)."""
    import torch

    isht = _synthesis_isht(spec.nlat, spec.nlon, spec.grid)
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


def synthetic_pairs(spec: DataSpec, n: int, seed: int):
    """{name: (n, 2, nlat, nlon) float32}: input time t and target time t+1, physical units."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    names = list(spec.names)
    z0 = red_fields(n, len(names), spec, g)
    dz = red_fields(n, len(names), spec, g)
    out = {}
    for i, name in enumerate(names):
        mean, std = float(spec.means.get(name, 0.0)), float(spec.stds.get(name, 1.0))
        tend = float(spec.tendency_stds.get(name, 0.5 * std))
        x0 = mean + std * z0[:, i]
        out[name] = torch.stack([x0, x0 + tend * dz[:, i]], dim=1)
    return out


def synthetic_times(n: int, start_index: int, timestep_seconds: float | None):
    """(n, 2) cftime datetimes (6 h apart unless the checkpoint says otherwise) for derived forcings."""
    import cftime
    import numpy as np

    dt = _dt.timedelta(seconds=timestep_seconds or 21600.0)
    t0 = cftime.DatetimeProlepticGregorian(2000, 1, 1)
    return np.array([[t0 + (start_index + i) * dt, t0 + (start_index + i + 1) * dt] for i in range(n)], dtype=object)


# ---------------------------------------------------------------- netCDF


def resolve_files(data) -> list[Path]:
    p = Path(str(data))
    if p.is_dir():
        files = sorted(p.glob("*.nc"))
        if not files:
            raise DataError(f"{p}: directory holds no *.nc files")
        return files
    if p.is_file():
        return [p]
    files = sorted(Path(f) for f in _glob.glob(str(data)))
    if not files:
        raise DataError(f"{data}: no such file, directory or glob match")
    return files


class NetcdfPairs:
    """Consecutive-time (input, target) pairs over a time-concatenated set of netCDF files."""

    def __init__(self, data, spec: DataSpec, *, time_start=None, time_stop=None):
        import xarray as xr

        self.spec = spec
        self.files = resolve_files(data)
        self._ds, index = [], []  # index: (file number, local time index, time value)
        for k, f in enumerate(self.files):
            try:
                ds = xr.open_dataset(f, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
            except Exception as e:  # noqa: BLE001 - any unreadable file is a one-line DataError
                raise DataError(f"{f}: cannot open as netCDF: {type(e).__name__}: {e}") from None
            self._check(f, ds)
            self._ds.append(ds)
            times = ds["time"].values
            keep = range(len(times))
            if time_start is not None or time_stop is not None:
                idx = ds.indexes["time"]
                try:
                    sl = idx.slice_indexer(time_start, time_stop)
                except (KeyError, TypeError, ValueError) as e:
                    raise DataError(f"{f}: cannot select time_start={time_start!r}, time_stop={time_stop!r}: {e}") from None
                keep = range(*sl.indices(len(times)))
            index.extend((k, i, times[i]) for i in keep)
        self.pairs, wrong_step = [], []
        for a, b in zip(index, index[1:]):
            dt = (b[2] - a[2]).total_seconds() if hasattr(b[2] - a[2], "total_seconds") else None
            if spec.timestep_seconds is None or dt is None or abs(dt - spec.timestep_seconds) < 1e-3:
                self.pairs.append((a, b))
            else:
                wrong_step.append(dt)
        if not self.pairs:
            detail = (f"; time differences {sorted(set(wrong_step))[:3]} s differ from the checkpoint's "
                      f"timestep {spec.timestep_seconds} s" if wrong_step else "")
            raise DataError(f"{data}: no consecutive-time input/target pair in the selected times{detail}")

    def _check(self, f, ds):
        spec = self.spec
        missing = [n for n in spec.names if n not in ds.variables]
        if missing:
            raise DataError(f"{f}: missing variable(s) the model needs: {missing}")
        if "time" not in ds.dims:
            raise DataError(f"{f}: no 'time' dimension")
        for n in spec.names:
            dims = ds[n].dims
            if len(dims) != 3 or dims[0] != "time":
                raise DataError(f"{f}: variable {n!r} has dims {dims}, expected (time, lat, lon)")
            shape = tuple(ds[n].shape[1:])
            if shape != (spec.nlat, spec.nlon):
                raise DataError(f"{f}: variable {n!r} is on a {shape[0]}x{shape[1]} grid, "
                                f"the checkpoint's grid is {spec.nlat}x{spec.nlon}")
        lat_dim = ds[spec.names[0]].dims[1]
        if spec.lat is not None and lat_dim in ds.coords:
            import numpy as np

            got = np.asarray(ds[lat_dim].values, dtype=float)
            if not np.allclose(got, np.asarray(spec.lat), atol=1e-3):
                raise DataError(f"{f}: latitudes ({got[0]:.3f} .. {got[-1]:.3f}) differ from the checkpoint's "
                                f"({spec.lat[0]:.3f} .. {spec.lat[-1]:.3f}): a different grid")

    def __len__(self):
        return len(self.pairs)

    def read(self, indices):
        """({name: (k, 2, nlat, nlon) float32}, times (k, 2))."""
        import numpy as np
        import torch

        data = {n: np.empty((len(indices), 2, self.spec.nlat, self.spec.nlon), dtype=np.float32) for n in self.spec.names}
        times = np.empty((len(indices), 2), dtype=object)
        for j, i in enumerate(indices):
            for s, (k, t, tv) in enumerate(self.pairs[i]):
                times[j, s] = tv
                ds = self._ds[k]
                for n in self.spec.names:
                    data[n][j, s] = ds[n].isel(time=t).values
        return {n: torch.from_numpy(v) for n, v in data.items()}, times


def iter_batches(data, spec: DataSpec, *, n_samples: int, batch_size: int, seed: int,
                 time_start=None, time_stop=None) -> Iterator[Batch]:
    """Batches with payload {"data": {name: (B, 2, H, W)}, "time": (B, 2) datetimes}."""
    if not isinstance(n_samples, int) or n_samples < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"n_samples and batch_size must be integers >= 1, got {n_samples!r}, {batch_size!r}")
    if data is None:
        if time_start is not None or time_stop is not None:
            raise DataError("time_start/time_stop select times in netCDF data; synthetic data has none")
        for start in range(0, n_samples, batch_size):
            b = min(batch_size, n_samples - start)
            fields = synthetic_pairs(spec, b, seed * 7919 + start)
            times = synthetic_times(b, start, spec.timestep_seconds)
            yield _batch(fields, times, spec, {"source": "synthetic", "synthetic": True,
                                               "synthetic_recipe": "mean + std * red(l^-2); target = input + tendency_std * red(l^-2)"})
        return
    source = NetcdfPairs(data, spec, time_start=time_start, time_stop=time_stop)
    chosen = choose_indices(len(source), n_samples, seed, str(data))
    for start in range(0, len(chosen), batch_size):
        idx = chosen[start:start + batch_size]
        fields, times = source.read(idx)
        yield _batch(fields, times, spec, {"source": "netcdf", "synthetic": False,
                                           "files": sorted({str(source.files[source.pairs[i][0][0]]) for i in idx})})


def _batch(fields, times, spec: DataSpec, meta: dict) -> Batch:
    import torch

    if not spec.allow_nan_inputs:
        for n in spec.input_names:
            bad = torch.isnan(fields[n][:, 0])
            if bad.any():
                j = int(bad.flatten(1).any(1).nonzero()[0])
                raise DataError(f"NaN in input variable {n!r} at {times[j, 0]}: fme refuses NaN network inputs "
                                "(its normaliser has fill_nans_on_normalize off)")
    nan_targets = {n: int(torch.isnan(fields[n][:, 1]).sum()) for n in spec.target_names}
    meta = {**meta, "times": [str(t) for t in times[:, 0]], "nan_targets": nan_targets,
            "n_nan_targets": sum(nan_targets.values()),
            "nan_handling": "NaN targets zeroed in both target and generated fields (fme WeightedMappingLoss)"}
    size = next(iter(fields.values())).shape[0]
    return Batch(payload={"data": fields, "time": times}, size=size, meta=meta)
