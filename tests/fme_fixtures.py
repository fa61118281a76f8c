"""Real fme checkpoints for the fme adapter tests, written with fme's own code (no mocks).

Small grids (16 x 32, Legendre-Gauss latitudes) and tiny networks keep every build under a second.
``trained_run`` runs fme's own trainer (``fme.ace.train.train.main``) once per process on a tiny
netCDF dataset written with xarray; its checkpoints are what a user would point specprobe at.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import pathlib

import numpy as np
import pytest

NLAT, NLON = 16, 32
IN_NAMES = ["h", "u", "f"]  # f: a forcing
OUT_NAMES = ["h", "u", "d"]  # d: a diagnostic output
MEANS = {"h": 5500.0, "u": 0.0, "f": 1.0, "d": 2.0}
STDS = {"h": 300.0, "u": 10.0, "f": 0.5, "d": 3.0}
RESIDUAL_STDS = {"h": 30.0, "u": 2.0, "f": 0.5, "d": 3.0}
TIMESTEP = datetime.timedelta(hours=6)


@contextlib.contextmanager
def one_thread():
    """This shared 2-core machine makes torch's 2 OpenMP threads ~100x slower on tiny tensors."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def lg_lat(nlat: int = NLAT) -> np.ndarray:
    return np.degrees(np.arcsin(np.polynomial.legendre.leggauss(nlat)[0]))


def dataset_info(nlat: int = NLAT, nlon: int = NLON):
    import torch
    from fme.core.coordinates import LatLonCoordinates, NullVerticalCoordinate
    from fme.core.dataset.data_typing import VariableMetadata
    from fme.core.dataset_info import DatasetInfo

    return DatasetInfo(
        horizontal_coordinates=LatLonCoordinates(lat=torch.tensor(lg_lat(nlat), dtype=torch.float32),
                                                 lon=torch.arange(nlon, dtype=torch.float32) * 360.0 / nlon),
        vertical_coordinate=NullVerticalCoordinate(),
        timestep=TIMESTEP,
        variable_metadata={"h": VariableMetadata(units="m", long_name="height")},
    )


def normalization(residual: bool = True):
    from fme.core.normalizer import NetworkAndLossNormalizationConfig, NormalizationConfig

    net = NormalizationConfig(means=dict(MEANS), stds=dict(STDS))
    res = NormalizationConfig(means={k: 0.0 for k in MEANS}, stds=dict(RESIDUAL_STDS)) if residual else None
    return NetworkAndLossNormalizationConfig(network=net, residual=res)


def build_stepper(builder_type: str, builder_config: dict, *, seed: int = 0, residual: bool = True,
                  labels: set[str] | None = None):
    """A freshly built fme ``Stepper`` (current format) with non-zero noise, label and LoRA weights.

    ``labels``: the dataset's label set; the model is then label-conditional.
    """
    import torch
    from fme.ace.stepper.single_module import StepperConfig
    from fme.core.dataset_info import DatasetInfo
    from fme.core.registry.module import ModuleSelector
    from fme.core.step import SingleModuleStepConfig, StepSelector

    torch.manual_seed(seed)
    config = StepperConfig(step=StepSelector(type="single_module", config=dataclasses.asdict(SingleModuleStepConfig(
        builder=ModuleSelector(type=builder_type, config=builder_config, conditional=bool(labels)),
        in_names=IN_NAMES, out_names=OUT_NAMES, normalization=normalization(residual), residual_prediction=residual))))
    info = dataset_info()
    if labels:
        info = DatasetInfo(horizontal_coordinates=info.horizontal_coordinates, vertical_coordinate=info.vertical_coordinate,
                           timestep=info.timestep, variable_metadata=info.variable_metadata, all_labels=set(labels))
    stepper = config.get_stepper(dataset_info=info)
    perturb(stepper, seed)
    return stepper


def perturb(stepper, seed: int) -> None:
    """fme initialises W_s, W_b (noise conditioning) and lora_B to zero: members would be identical."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in stepper.modules.named_parameters():
            if name.endswith(("W_scale_2d.weight", "W_bias_2d.weight", "lora_B")) or "label" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def save_current(path, stepper, *, epoch: int = 3, extra: dict | None = None) -> pathlib.Path:
    """What ``Trainer.save_checkpoint`` writes for best_ckpt.tar (no optimizer, no EMA weights)."""
    import torch

    data = {"num_batches_seen": 10, "current_epoch_num_batches_seen": 0, "epoch": epoch,
            "best_validation_loss": 1.0, "best_inference_error": float("inf"),
            "stepper": stepper.get_state(),
            "ema": {"decay": torch.tensor(0.999), "num_updates": torch.tensor(10), "faster_decay_at_start": True,
                    "module_name_to_ema_name": {n: n.replace(".", "") for n, _ in stepper.modules.named_parameters()}}}
    data.update(extra or {})
    torch.save(data, path)
    return pathlib.Path(path)


def save_legacy(path, builder_type: str, builder_config: dict, *, seed: int = 0, weights: dict | None = None):
    """A legacy (``SingleModuleStepperConfig``) checkpoint, as ACE wrote before the step registry."""
    import torch
    from fme.ace.stepper.single_module import SingleModuleStepperConfig
    from fme.core.loss import StepLossConfig
    from fme.core.normalizer import NormalizationConfig
    from fme.core.registry.module import ModuleSelector

    torch.manual_seed(seed)
    names = sorted(set(IN_NAMES) | set(OUT_NAMES))
    norm = NormalizationConfig(means={k: MEANS[k] for k in names}, stds={k: STDS[k] for k in names})
    legacy = SingleModuleStepperConfig(builder=ModuleSelector(type=builder_type, config=builder_config),
                                       in_names=IN_NAMES, out_names=OUT_NAMES, normalization=norm,
                                       loss=StepLossConfig(type="MSE", weights=dict(weights or {})))
    normalizer = norm.build(names)
    info = dataset_info()
    stepper = legacy.to_stepper_config(normalizer, normalizer).get_stepper(dataset_info=info)
    state = {"config": dataclasses.asdict(legacy), "module": stepper.modules[0].state_dict(),
             "normalizer": normalizer.get_state(),
             "area": info.gridded_operations.get_initialization_kwargs()["area_weights"],
             "vertical_coordinate": {"ak": torch.arange(3.0), "bk": torch.arange(3.0)},
             "encoded_timestep": int(TIMESTEP.total_seconds() * 1e6), "img_shape": (NLAT, NLON)}
    torch.save({"stepper": state, "epoch": 7}, path)
    return pathlib.Path(path), stepper


def write_netcdf(path, names, *, n_time: int = 12, nlat: int = NLAT, nlon: int = NLON, seed: int = 0,
                 lat=None, nan_target: str | None = None, t0=(2000, 1, 1)) -> pathlib.Path:
    """ACE-format data: (time, lat, lon) float32 variables, cftime times 6 h apart."""
    import cftime
    import xarray as xr

    rng = np.random.default_rng(seed)
    times = [cftime.DatetimeJulian(*t0) + i * TIMESTEP for i in range(n_time)]
    lat = lg_lat(nlat) if lat is None else lat
    data = {}
    for n in names:
        field = MEANS.get(n, 0.0) + STDS.get(n, 1.0) * rng.standard_normal((n_time, nlat, nlon))
        data[n] = (("time", "lat", "lon"), field.astype("float32"), {"units": "m", "long_name": n})
    ds = xr.Dataset(data, coords={"time": times, "lat": lat, "lon": np.arange(nlon) * 360.0 / nlon})
    if nan_target is not None:
        ds[nan_target][1:, :2, :3] = np.nan  # every target time has 6 NaN points
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)
    return path


TRAIN_LOSS = {"type": "EnsembleLoss",
              "kwargs": {"crps_weight": 0.5, "energy_score_weight": 0.5,
                         "energy_score_whitening": {"kind": "per_sample", "exponent": 0.5}},
              "weights": {"h": 2.0}}


@functools.lru_cache(maxsize=None)
def trained_run(base: str) -> pathlib.Path:
    """Train a tiny NoiseConditionedSFNO with fme's own trainer, once per process; return experiment_dir."""
    import yaml
    from fme.ace.train.train import main as fme_train

    base = pathlib.Path(base)
    data_dir = base / "data"
    write_netcdf(data_dir / "train.nc", sorted(set(IN_NAMES) | set(OUT_NAMES)), n_time=20, seed=1)
    norm = normalization()
    config = {
        "experiment_dir": str(base / "exp"), "max_epochs": 1, "save_checkpoint": True,
        "train_evaluation_samples": 4,
        "logging": {"log_to_screen": False, "log_to_wandb": False, "log_to_file": False},
        "train_loader": {"dataset": {"data_path": str(data_dir)}, "batch_size": 4, "num_data_workers": 0},
        "validation": {"loader": {"dataset": {"data_path": str(data_dir)}, "batch_size": 4, "num_data_workers": 0}},
        "optimization": {"optimizer_type": "Adam", "lr": 1e-3},
        "stepper": {"step": {"type": "single_module", "config": {
            "builder": {"type": "NoiseConditionedSFNO",
                        "config": {"embed_dim": 8, "num_layers": 2, "noise_embed_dim": 4, "filter_num_groups": 2}},
            "in_names": IN_NAMES, "out_names": OUT_NAMES, "residual_prediction": True,
            "normalization": {"network": {"means": dict(norm.network.means), "stds": dict(norm.network.stds)},
                              "residual": {"means": dict(norm.residual.means), "stds": dict(norm.residual.stds)}}}}},
        "stepper_training": {"loss": TRAIN_LOSS, "n_forward_steps": 1, "n_ensemble": 2},
        "ema": {"decay": 0.9},
    }
    yaml_path = base / "train.yaml"
    yaml_path.write_text(yaml.safe_dump(config))
    with one_thread():
        fme_train(str(yaml_path))
    return base / "exp"


# Fixtures of the modules that probe the run fme's own trainer wrote; a module takes them with
# an import of both names (see tests/test_lookahead_fme.py).
@pytest.fixture(scope="module", autouse=True)
def threads_for_module():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The trained run directory (built once per session: ``trained_run`` caches it)."""
    return trained_run(str(tmp_path_factory.getbasetemp() / "fme_trained"))
