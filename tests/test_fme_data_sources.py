"""--data through fme's own dataset code: netCDF, zarr, data YAML, config:train/validation, merge.

The oracle for what a sample holds is xarray reading the files directly; the checkpoint and its
config.yaml are written by fme's own trainer (``trained_run``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import require

require("fme")

from fme_fixtures import IN_NAMES, OUT_NAMES, write_netcdf  # noqa: E402
from fme_fixtures import run, threads_for_module  # noqa: E402, F401 - pytest fixtures
from specprobe.errors import DataError  # noqa: E402
from specprobe.models.fme.adapter import load_fme_target  # noqa: E402
from specprobe.models.fme.quiet import EARTH2GRID_NOTICE  # noqa: E402

pytestmark = pytest.mark.oracle
ALL_NAMES = sorted(set(IN_NAMES) | set(OUT_NAMES))
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt_path(run):
    return run / "training_checkpoints" / "ckpt.tar"


@pytest.fixture(scope="module")
def ckpt(ckpt_path):
    return load_fme_target(ckpt_path)


@pytest.fixture(scope="module")
def train_nc(run):
    return run.parent / "data" / "train.nc"


@pytest.fixture(scope="module")
def store(train_nc, tmp_path_factory):
    """The training data as a zarr store, written by xarray."""
    import xarray as xr

    path = tmp_path_factory.mktemp("zarr") / "dataset.zarr"
    with xr.open_dataset(train_nc) as ds:
        ds.to_zarr(path)
    return path


def read_direct(path, times, names=ALL_NAMES, engine=None):
    """xarray's own read of the files at the batch's times: {name: (B, T, H, W)}."""
    import xarray as xr

    with xr.open_dataset(path, engine=engine, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
        return {n: np.stack([ds[n].sel(time=list(row)).values for row in times]) for n in names}


def batches(target, data, **kw):
    kw = {"n_samples": 3, "batch_size": 3, "seed": 0, **kw}
    return list(target.batches(str(data), **kw))


def assert_same_batch(a, b):
    assert list(a.payload["time"].ravel()) == list(b.payload["time"].ravel())
    assert sorted(a.payload["data"]) == sorted(b.payload["data"])
    for n in a.payload["data"]:
        torch.testing.assert_close(a.payload["data"][n], b.payload["data"][n], rtol=0, atol=0)


def test_zarr_store_holds_what_xarray_reads(ckpt, store, train_nc):
    (batch,) = batches(ckpt, store)
    assert batch.meta["source"] == "zarr" and not batch.meta["synthetic"]
    times = batch.payload["time"]
    assert times.shape == (3, 2)  # initial condition + one forward step
    direct = read_direct(train_nc, times)
    for n in ALL_NAMES:
        np.testing.assert_array_equal(batch.payload["data"][n].numpy(), direct[n])
    # the same samples through netCDF file, directory and glob
    for form in (train_nc, train_nc.parent, train_nc.parent / "*.nc"):
        assert_same_batch(batches(ckpt, form)[0], batch)


def test_window_follows_n_forward_steps(ckpt, store, train_nc):
    (batch,) = batches(ckpt, store, n_forward_steps=3)
    times = batch.payload["time"]
    assert times.shape == (3, 4)
    steps = {(b - a).total_seconds() for row in times for a, b in zip(row, row[1:])}
    assert steps == {6 * 3600.0}
    np.testing.assert_array_equal(batch.payload["data"]["h"].numpy(), read_direct(train_nc, times, ["h"])["h"])
    synthetic = next(iter(ckpt.batches(None, n_samples=2, batch_size=2, seed=0, n_forward_steps=2)))
    assert synthetic.payload["time"].shape == (2, 3) and synthetic.payload["data"]["h"].shape[1] == 3
    one_step = next(iter(ckpt.batches(None, n_samples=2, batch_size=2, seed=0)))
    torch.testing.assert_close(synthetic.payload["data"]["h"][:, :2], one_step.payload["data"]["h"], rtol=0, atol=0)


def test_config_sections_as_fmes_trainer_wrote_them(ckpt, ckpt_path, run, train_nc):
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written["validation"]["loader"]["dataset"]["data_path"] == str(train_nc.parent)
    (reference,) = batches(ckpt, train_nc.parent)
    for section in ("config:validation", "config:train"):
        (batch,) = batches(ckpt, section)
        assert batch.meta["source"] == section
        assert_same_batch(batch, reference)
    info = ckpt.describe()
    assert info["data_config"]["kind"] == "config:train"
    assert info["data_config"]["fme_loader_config"]["dataset"] == written["train_loader"]["dataset"]


def _experiment_copy(ckpt_path, tmp_path, edit):
    """The trainer's experiment dir with its config.yaml edited by ``edit``."""
    exp = tmp_path / "exp"
    (exp / "training_checkpoints").mkdir(parents=True)
    shutil.copy(ckpt_path, exp / "training_checkpoints" / "ckpt.tar")
    config = yaml.safe_load((ckpt_path.parent.parent / "config.yaml").read_text())
    edit(config)
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    return exp / "training_checkpoints" / "ckpt.tar"


def test_validation_list_takes_the_first_entry_with_its_subset(ckpt_path, store, tmp_path):
    def edit(config):
        first = {"name": "zarr", "loader": {"batch_size": 2, "dataset": {
            "data_path": str(store.parent), "file_pattern": store.name, "engine": "zarr",
            "subset": {"start_time": "2000-01-03", "stop_time": "2000-01-03 18:00"}}}}
        config["validation"] = [first, {"name": "nc", "loader": config["validation"]["loader"]}]

    target = load_fme_target(_experiment_copy(ckpt_path, tmp_path, edit))
    (batch,) = batches(target, "config:validation", n_samples=4, batch_size=4)
    assert batch.meta["source"] == "config:validation"
    assert all(t.startswith("2000-01-03") for t in batch.meta["times"])  # the first entry's subset
    with pytest.raises(DataError, match=r"initial times 2000-01-03 00:00:00 \.\. 2000-01-03 18:00:00\): only 4 sample\(s\) available"):
        batches(target, "config:validation", n_samples=5, batch_size=5)


def test_merge_of_two_sources_netcdf_and_zarr(ckpt, train_nc, tmp_path, store):
    import xarray as xr

    with xr.open_dataset(train_nc) as ds:
        (tmp_path / "a").mkdir()
        ds[["h", "u"]].to_netcdf(tmp_path / "a" / "state.nc")
        ds[["f", "d"]].to_zarr(tmp_path / "b.zarr")
    config = {"dataset": {"merge": [
        {"data_path": str(tmp_path / "a")},
        {"data_path": str(tmp_path), "file_pattern": "b.zarr", "engine": "zarr"}]}, "batch_size": 4}
    path = tmp_path / "merge.yaml"
    path.write_text(yaml.safe_dump(config))
    (merged,) = batches(ckpt, path)
    assert merged.meta["source"] == "yaml"
    assert_same_batch(merged, batches(ckpt, store)[0])
    with pytest.raises(DataError, match="Required variable not found in dataset: d"):
        batches(ckpt, tmp_path / "a")


def test_dataset_yaml_forms_fill_nans_and_time_window(ckpt, tmp_path):
    nan = write_netcdf(tmp_path / "nan" / "data.nc", ALL_NAMES, n_time=6, seed=3)
    import xarray as xr

    ds = xr.load_dataset(nan)
    ds["f"][:, 3, 4] = np.nan  # a NaN forcing: fme refuses it unless the data config fills it
    ds.to_netcdf(nan)
    with pytest.raises(DataError, match="NaN in input variable 'f'"):
        batches(ckpt, nan)
    bare = tmp_path / "bare.yaml"  # the dataset block alone, as users keep it
    bare.write_text(yaml.safe_dump({"data_path": str(nan.parent), "fill_nans": {"value": 0.0}}))
    (batch,) = batches(ckpt, bare)
    f = batch.payload["data"]["f"]
    assert (f[:, :, 3, 4] == 0).all() and torch.isfinite(f).all()
    direct = read_direct(nan, batch.payload["time"], ["h"])["h"]
    np.testing.assert_array_equal(batch.payload["data"]["h"].numpy(), direct)
    # --time-start/--time-stop become fme's subset: samples chosen by initial time, inclusive
    window = batches(ckpt, bare, n_samples=2, batch_size=2, time_start="2000-01-01 06:00", time_stop="2000-01-01 12:00")
    assert window[0].meta["times"] == ["2000-01-01 06:00:00", "2000-01-01 12:00:00"]
    loader = tmp_path / "loader.yaml"
    loader.write_text(yaml.safe_dump({"batch_size": 8, "dataset": {
        "data_path": str(nan.parent), "fill_nans": {"value": 0.0}, "subset": {"start": 1, "stop": 3}}}))
    (sub,) = batches(ckpt, loader, n_samples=2, batch_size=2)
    assert sub.meta["times"] == ["2000-01-01 06:00:00", "2000-01-01 12:00:00"]
    with pytest.raises(DataError, match="already selects times"):
        batches(ckpt, loader, n_samples=1, time_start="2000-01-01")


@pytest.mark.parametrize("case,match", [
    ("missing_store", "no such file, directory, zarr store or glob"),
    ("bad_yaml", r"not valid YAML \(line \d+\)"),
    ("yaml_list", "must be a YAML mapping, got list"),
    ("yaml_keys", "not an fme data config: expected a 'dataset:' block"),
    ("yaml_unknown_field", r"not a valid fme data config: .*XarrayDataConfig.*\"data_pth\""),
    ("training_yaml", "a training config; use --data config:train"),
    ("no_section", r"no validation.loader with a dataset"),
    ("no_experiment", "no experiment config.yaml"),
    ("unknown_section", r"config:test: unknown section"),
    ("missing_variable", "Required variable not found in dataset: f"),
    ("grid", r"data on a 8x16 grid, the checkpoint's grid is 16x32"),
    ("timestep", r"data timestep 3:00:00 differs from the checkpoint's timestep 6:00:00"),
    ("empty_dir", "holds no \\*.nc files and is not a zarr store"),
    ("bad_time", "fme cannot load the data"),
])
def test_bad_data_is_one_line(case, match, tmp_path, ckpt, ckpt_path, train_nc):
    target, data = ckpt, tmp_path / "x.yaml"
    if case == "missing_store":
        data = tmp_path / "nowhere.zarr"
    elif case == "bad_yaml":
        data.write_text("dataset:\n  data_path: [unclosed\n")
    elif case == "yaml_list":
        data.write_text("- 1\n- 2\n")
    elif case == "yaml_keys":
        data.write_text("path: /data\n")
    elif case == "yaml_unknown_field":
        data.write_text(yaml.safe_dump({"dataset": {"data_pth": str(train_nc.parent)}}))
    elif case == "training_yaml":
        shutil.copy(ckpt_path.parent.parent / "config.yaml", data)
    elif case == "no_section":
        target = load_fme_target(_experiment_copy(ckpt_path, tmp_path, lambda c: c.pop("validation")))
        data = "config:validation"
    elif case == "no_experiment":
        shutil.copy(ckpt_path, tmp_path / "ckpt.tar")
        target, data = load_fme_target(tmp_path / "ckpt.tar"), "config:train"
    elif case == "unknown_section":
        data = "config:test"
    elif case == "missing_variable":
        data = write_netcdf(tmp_path / "m.nc", [n for n in ALL_NAMES if n != "f"], n_time=3)
    elif case == "grid":
        data = write_netcdf(tmp_path / "g.nc", ALL_NAMES, n_time=3, nlat=8, nlon=16)
    elif case == "timestep":
        import cftime
        import xarray as xr

        data = write_netcdf(tmp_path / "t.nc", ALL_NAMES, n_time=3)
        ds = xr.load_dataset(data, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
        ds["time"] = [cftime.DatetimeJulian(2000, 1, 1, 3 * i) for i in range(3)]
        ds.to_netcdf(data)
    elif case == "empty_dir":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "bad_time":
        with pytest.raises(DataError, match=match) as info:
            batches(target, train_nc, n_samples=1, time_start="not a date")
        assert "\n" not in str(info.value)
        return
    with pytest.raises(DataError, match=match) as info:
        batches(target, data, n_samples=1, batch_size=1)
    assert "\n" not in str(info.value)


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "specprobe", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def test_cli_zarr_matches_netcdf_probe_and_stays_quiet(ckpt_path, store, train_nc, tmp_path):
    from specprobe import probe

    common = dict(n_samples=2, n_ensemble=2, seed=0, timestamp=False, threads=1)
    nc = probe(ckpt_path, data=str(train_nc), **common).to_dict()
    proc = _cli("grad-by-l", str(ckpt_path), "--data", str(store), "--n-samples", "2", "--no-timestamp",
                "--json", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert EARTH2GRID_NOTICE not in proc.stderr + proc.stdout
    zarr = json.loads(proc.stdout)
    assert zarr["provenance"]["model"]["data_config"]["kind"] == "zarr"
    assert zarr["degrees"] == nc["degrees"]
    for variant in nc["grad_by_l"]:
        np.testing.assert_allclose(zarr["grad_by_l"][variant]["total"], nc["grad_by_l"][variant]["total"], rtol=1e-6)
        assert max(nc["grad_by_l"][variant]["total"]) > 0
    for channel in nc["target_power_by_l"]:
        np.testing.assert_allclose(zarr["target_power_by_l"][channel], nc["target_power_by_l"][channel], rtol=1e-6)
    # a one-line error through the CLI: exit 2, `error: ...`
    bad = _cli("grad-by-l", str(ckpt_path), "--data", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "o2"),
               cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


def test_earth2grid_notice_is_dropped_and_nothing_else(caplog):
    """In-process: re-run fme's module with and without our filter (the CLI test covers a fresh process)."""
    import importlib
    import logging

    from specprobe.models.fme.quiet import EARTH2GRID_LOGGER, DropEarth2gridNotice

    module = importlib.import_module(EARTH2GRID_LOGGER)  # the logger is named after fme's module
    log = logging.getLogger(EARTH2GRID_LOGGER)
    ours = [f for f in log.filters if isinstance(f, DropEarth2gridNotice)]
    assert len(ours) == 1  # installed on import of specprobe.models.fme, once
    with caplog.at_level(logging.WARNING, logger=EARTH2GRID_LOGGER):
        importlib.reload(module)
        log.warning("another notice from the same logger")
        kept = [r.getMessage() for r in caplog.records]
        caplog.clear()
        log.removeFilter(ours[0])
        try:
            importlib.reload(module)
        finally:
            log.addFilter(ours[0])
        unfiltered = [r.getMessage() for r in caplog.records]
    assert EARTH2GRID_NOTICE not in kept and "another notice from the same logger" in kept
    assert EARTH2GRID_NOTICE in unfiltered  # fme does log it here: the filter is what keeps it away


def test_data_config_labels_reach_a_conditional_model(tmp_path):
    from fme_fixtures import build_stepper, save_current

    stepper = build_stepper("NoiseConditionedSFNO", {"embed_dim": 8, "num_layers": 1, "noise_embed_dim": 4,
                                                     "label_embed_dim": 3}, labels={"era5", "cm4"})
    path = save_current(tmp_path / "ckpt.tar", stepper)
    nc = write_netcdf(tmp_path / "data" / "d.nc", ALL_NAMES, n_time=4)
    labelled = tmp_path / "labelled.yaml"
    labelled.write_text(yaml.safe_dump({"data_path": str(nc.parent), "labels": ["cm4"]}))

    def gen(target, data):
        batch = batches(target, data, n_samples=2, batch_size=2)[0]
        return target.forward(batch, n_ensemble=2, seed=0)[0].detach()

    from_config = gen(load_fme_target(path), labelled)
    explicit = gen(load_fme_target(path, labels=["cm4"]), nc)
    unlabelled = gen(load_fme_target(path), nc)
    torch.testing.assert_close(from_config, explicit, rtol=0, atol=0)
    assert not torch.equal(from_config, unlabelled)  # fme's all-zero label vector is another model input
