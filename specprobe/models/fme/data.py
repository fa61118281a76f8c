"""Probe data for fme checkpoints: read by fme's own dataset code, or seeded synthetic red fields.

Real data (``data`` = netCDF file/directory/glob, zarr store, data YAML, ``config:train`` or
``config:validation``; see :mod:`.sources`): fme's ``DataLoaderConfig.get_dataset`` builds the
dataset for the stepper's requirements (its variable names; ``n_timesteps`` = initial condition +
forward steps) and reads each chosen sample; fme's ``BatchData.from_sample_tuples`` collates them
and the loader's augmentation (``RotateModifier``) is applied, seeded. Which samples: ``n_samples``
distinct indices drawn with ``seed`` (fme's sampler would shuffle the same index set). The data's
grid, latitudes and timestep must be the checkpoint's (checked by us for a clear message, then by
fme's ``DatasetInfo.assert_compatible_with``, as fme's inference does).

Synthetic (``data=None``): per variable, ``mean + std * z`` with z a unit-variance field whose
spherical-harmonic power falls as l^-2 (random a_lm, seeded, through the original torch-harmonics
``InverseRealSHT`` on the data grid; a_00 = 0 so the mean is exactly the checkpoint's). Each later
time adds ``tendency_std * z'`` with an independent red z' (tendency_std = the residual-normalisation
std where the checkpoint has one, else half the std), so the loss sees realistic step sizes.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ...errors import DataError
from ..base import Batch
from .sources import DataSource, apply_time_window, one_line, parse_loader, resolve_source


@dataclass
class DataSpec:
    """What the model needs from its data, in physical units."""

    names: list[str]  # every variable to read (inputs, outputs, forcings)
    input_names: list[str]  # network inputs at the initial time: fme refuses NaN there
    target_names: list[str]  # loss channels at the later times: NaN is zeroed (counted)
    nlat: int
    nlon: int
    grid: str  # data grid for the synthetic ISHT ("legendre-gauss" / "equiangular")
    lat: list[float] | None = None
    timestep_seconds: float | None = None
    means: dict = field(default_factory=dict)
    stds: dict = field(default_factory=dict)
    tendency_stds: dict = field(default_factory=dict)
    allow_nan_inputs: bool = False  # the checkpoint's normaliser fills NaN on normalise
    allow_missing_variables: bool = False  # the step config's: fme then masks missing variables
    n_ic_timesteps: int = 1
    training_dataset_info: object = None  # fme DatasetInfo the stepper was trained on (compatibility check)


def choose_indices(n_available: int, n_samples: int, seed: int, what: str) -> list[int]:
    import numpy as np

    if n_samples > n_available:
        raise DataError(f"{what}: only {n_available} sample(s) available, n_samples={n_samples} requested")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_available, size=n_samples, replace=False))


# ---------------------------------------------------------------- synthetic


def red_fields(n: int, n_channels: int, spec: DataSpec, generator, *, slope: float = -2.0):
    """(n, n_channels, nlat, nlon) float32 unit-variance fields with degree power ~ l**slope (l >= 1)."""
    from ..synthetic import red_fields as _red_fields

    return _red_fields(n, n_channels, spec.nlat, spec.nlon, spec.grid, generator, slope=slope)


def synthetic_series(spec: DataSpec, n: int, seed: int, n_timesteps: int = 2):
    """{name: (n, n_timesteps, nlat, nlon) float32}: an initial state and its later times, physical units.

    The first two draws are the same for every n_timesteps: a longer window extends a shorter one."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    names = list(spec.names)
    z0 = red_fields(n, len(names), spec, g)
    steps = [red_fields(n, len(names), spec, g) for _ in range(n_timesteps - 1)]
    out = {}
    for i, name in enumerate(names):
        mean, std = float(spec.means.get(name, 0.0)), float(spec.stds.get(name, 1.0))
        tend = float(spec.tendency_stds.get(name, 0.5 * std))
        series = [mean + std * z0[:, i]]
        for dz in steps:
            series.append(series[-1] + tend * dz[:, i])
        out[name] = torch.stack(series, dim=1)
    return out


def synthetic_times(n: int, start_index: int, timestep_seconds: float | None, n_timesteps: int = 2):
    """(n, n_timesteps) cftime datetimes (6 h apart unless the checkpoint says otherwise) for derived forcings."""
    import cftime
    import numpy as np

    dt = _dt.timedelta(seconds=timestep_seconds or 21600.0)
    t0 = cftime.DatetimeProlepticGregorian(2000, 1, 1)
    return np.array([[t0 + (start_index + i + k) * dt for k in range(n_timesteps)] for i in range(n)], dtype=object)


# ---------------------------------------------------------------- fme's dataset


class FmeData:
    """The dataset fme builds for ``source``, checked against the checkpoint, read sample by sample."""

    def __init__(self, source: DataSource, spec: DataSpec, *, n_timesteps: int, time_start=None, time_stop=None):
        from fme.ace.data_loading.batch_data import BatchData  # noqa: F401 - fail here, not mid-probe
        from fme.core.dataset.schedule import IntSchedule
        from fme.core.labels import LabelEncoding

        self.source, self.spec, self.n_timesteps = source, spec, int(n_timesteps)
        config = parse_loader(source)
        apply_time_window(config.dataset, time_start, time_stop, source.label)
        self.window = (time_start, time_stop)
        try:
            self.dataset, self.properties = config.get_dataset(
                list(spec.names), IntSchedule(start_value=self.n_timesteps, milestones=[]),
                allow_missing_variables=spec.allow_missing_variables)
        except Exception as e:  # noqa: BLE001 - fme raises ValueError, KeyError, FileNotFoundError, ...
            missing = re.fullmatch(r"Required variable not found in dataset: (.*)\.", str(e))
            if missing:
                raise DataError(f"{source.label}: missing variable {missing.group(1)!r} the model needs "
                                f"(fme: {str(e)}); it reads {list(spec.names)}") from None
            raise DataError(f"{source.label}: fme cannot load the data: {one_line(e)}") from None
        self._check_grid()
        self.modifier = config.augmentation.build_modifier()
        self.augmentation = config.augmentation.rotate_probability
        labels = config.available_labels
        self.label_encoding = LabelEncoding(sorted(labels)) if labels is not None else None

    def _check_grid(self):
        import numpy as np
        from fme.core.coordinates import LatLonCoordinates
        from fme.core.dataset_info import DatasetInfo

        spec, props, label = self.spec, self.properties, self.source.label
        hc = props.horizontal_coordinates
        if not isinstance(hc, LatLonCoordinates):
            raise DataError(f"{label}: {type(hc).__name__} data; the checkpoint is on a {spec.nlat}x{spec.nlon} lat-lon grid")
        if tuple(hc.shape) != (spec.nlat, spec.nlon):
            raise DataError(f"{label}: data on a {hc.shape[0]}x{hc.shape[1]} grid, "
                            f"the checkpoint's grid is {spec.nlat}x{spec.nlon}")
        got = hc.lat.double().numpy()
        if spec.lat is not None and not np.allclose(got, np.asarray(spec.lat, dtype=float), atol=1e-3):
            raise DataError(f"{label}: latitudes ({got[0]:.3f} .. {got[-1]:.3f}) differ from the checkpoint's "
                            f"({spec.lat[0]:.3f} .. {spec.lat[-1]:.3f}): a different grid")
        step = props.timestep
        if spec.timestep_seconds is not None and step is not None and abs(step.total_seconds() - spec.timestep_seconds) > 1e-3:
            raise DataError(f"{label}: data timestep {step} differs from the checkpoint's timestep "
                            f"{_dt.timedelta(seconds=spec.timestep_seconds)}")
        if spec.training_dataset_info is not None:  # what fme's inference checks: coordinates, mask, timestep
            # variable_metadata left out: units/long-name differences are only logged by fme, and the probe never uses them
            data_info = DatasetInfo(horizontal_coordinates=hc, vertical_coordinate=props.vertical_coordinate,
                                    spatial_mask_provider=props.spatial_mask_provider, timestep=step)
            try:
                spec.training_dataset_info.assert_compatible_with(data_info)
            except ValueError as e:
                raise DataError(f"{label}: not the checkpoint's data: {one_line(e)}") from None

    def __len__(self):
        return len(self.dataset)

    def start_times(self, indices) -> list[str]:
        times = self.dataset.sample_start_times
        return [str(times[i]) for i in indices]

    def describe_available(self) -> str:
        times = self.dataset.sample_start_times
        window = "" if self.window == (None, None) else f" in the time window {list(self.window)}"
        span = f" (initial times {times[0]} .. {times[-1]})" if len(times) else ""
        return f"{self.source.label}{window}{span}"

    def read(self, indices, seed: int):
        """fme's ``BatchData`` of the samples at ``indices``, augmentation applied with a seeded generator."""
        import torch
        from fme.ace.data_loading.batch_data import BatchData

        try:
            samples = [self.dataset[int(i)] for i in indices]
            batch = BatchData.from_sample_tuples(samples, horizontal_dims=list(self.properties.horizontal_coordinates.dims),
                                                 label_encoding=self.label_encoding,
                                                 allow_missing_variables=self.spec.allow_missing_variables)
        except Exception as e:  # noqa: BLE001 - a read failing mid-probe is still one line
            raise DataError(f"{self.source.label}: fme cannot read samples {list(indices)}: {one_line(e)}") from None
        if self.augmentation > 0:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                batch = self.modifier(batch)
        return batch


def iter_batches(data, spec: DataSpec, *, n_samples: int, batch_size: int, seed: int, n_timesteps: int = 2,
                 time_start=None, time_stop=None, checkpoint_path=None) -> Iterator[Batch]:
    """Batches with payload {"data": {name: (B, T, H, W)}, "time": (B, T) datetimes[, "labels", "data_mask"]}.

    T = ``n_timesteps`` (the initial condition plus the forward steps the forward needs).
    ``checkpoint_path`` locates the experiment config.yaml for ``config:train`` / ``config:validation``.
    """
    if not isinstance(n_samples, int) or n_samples < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"n_samples and batch_size must be integers >= 1, got {n_samples!r}, {batch_size!r}")
    if not isinstance(n_timesteps, int) or n_timesteps < 2:
        raise DataError(f"n_timesteps must be an integer >= 2 (an initial time and a target), got {n_timesteps!r}")
    if data is None:
        if time_start is not None or time_stop is not None:
            raise DataError("time_start/time_stop select times in real data; synthetic data has none")
        for start in range(0, n_samples, batch_size):
            b = min(batch_size, n_samples - start)
            fields = synthetic_series(spec, b, seed * 7919 + start, n_timesteps)
            times = synthetic_times(b, start, spec.timestep_seconds, n_timesteps)
            yield _batch({"data": fields, "time": times}, spec, {
                "source": "synthetic", "synthetic": True,
                "synthetic_recipe": "mean + std * red(l^-2); each later time adds tendency_std * red(l^-2)"})
        return
    source = resolve_source(data, checkpoint_path)
    fme_data = FmeData(source, spec, n_timesteps=n_timesteps, time_start=time_start, time_stop=time_stop)
    chosen = choose_indices(len(fme_data), n_samples, seed, fme_data.describe_available())
    for start in range(0, len(chosen), batch_size):
        idx = chosen[start:start + batch_size]
        batch = fme_data.read(idx, seed * 7919 + start)
        payload = {"data": dict(batch.data), "time": batch.time.values}
        if batch.labels is not None:
            payload["labels"] = batch.labels
        if batch.data_mask is not None:
            payload["data_mask"] = batch.data_mask
        yield _batch(payload, spec, {"source": source.kind, "synthetic": False, "data_source": source.label,
                                     "sample_indices": list(idx),
                                     "augmentation_rotate_probability": fme_data.augmentation})


def _batch(payload: dict, spec: DataSpec, meta: dict) -> Batch:
    import torch

    fields, times = payload["data"], payload["time"]
    n_ic = spec.n_ic_timesteps
    if not spec.allow_nan_inputs:
        for n in spec.input_names:
            if n not in fields:
                continue  # allow_missing_variables: fme masks it
            bad = torch.isnan(fields[n][:, :n_ic])
            if bad.any():
                j = int(bad.flatten(1).any(1).nonzero()[0])
                raise DataError(f"NaN in input variable {n!r} at {times[j, 0]}: fme refuses NaN network inputs "
                                "(its normaliser has fill_nans_on_normalize off; the data config's fill_nans fills them)")
    nan_targets = {n: int(torch.isnan(fields[n][:, n_ic:]).sum()) for n in spec.target_names if n in fields}
    meta = {**meta, "times": [str(t) for t in times[:, 0]], "nan_targets": nan_targets,
            "n_nan_targets": sum(nan_targets.values()),
            "nan_handling": "NaN targets zeroed in both target and generated fields (fme WeightedMappingLoss)"}
    size = next(iter(fields.values())).shape[0]
    return Batch(payload=payload, size=size, meta=meta)
