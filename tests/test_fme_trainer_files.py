"""Checkpoints written by fme's own trainer: formats, EMA, Adam state, ACE netCDF data, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import require

require("fme")

from fme_fixtures import (  # noqa: E402
    IN_NAMES,
    NLAT,
    OUT_NAMES,
    TRAIN_LOSS,
    build_stepper,
    save_current,
    write_netcdf,
)
from fme_fixtures import run, threads_for_module  # noqa: E402, F401 - pytest fixtures
from specprobe.errors import CheckpointError, DataError  # noqa: E402
from specprobe.models.fme.adapter import adam_by_l, load_fme_target  # noqa: E402
from specprobe.models.fme.describe import describe_fme_checkpoint  # noqa: E402
from specprobe.models.safe_load import load_checkpoint_file  # noqa: E402
from specprobe.spectral import WhiteningConfig, energy_score_loss  # noqa: E402

pytestmark = pytest.mark.oracle
ALL_NAMES = sorted(set(IN_NAMES) | set(OUT_NAMES))


@pytest.fixture(scope="module")
def ckpt(run):
    return load_fme_target(run / "training_checkpoints" / "ckpt.tar")


def test_trainer_writes_what_we_read(run, ckpt):
    files = sorted(p.name for p in (run / "training_checkpoints").iterdir())
    assert {"ckpt.tar", "best_ckpt.tar"} <= set(files)
    info = ckpt.describe()
    assert info["format"] == "fme-current" and info["file_kind"].startswith("latest")
    assert info["optimizer_state"] and info["ema_present"]
    # the training loss is not in the checkpoint; fme's train entry point wrote it to config.yaml
    assert info["training_loss"]["kwargs"]["energy_score_whitening"] == TRAIN_LOSS["kwargs"]["energy_score_whitening"]
    assert ckpt.loss_weights == {"h": 2.0} and ckpt.loss_weights_source.endswith("config.yaml")
    # the training rollout too (fme's stepper_training.n_forward_steps; --n-forward-steps' default)
    assert info["training_rollout"]["recorded"] == "1" and info["training_rollout"]["source"].endswith("config.yaml")
    assert ckpt.rollout.n_forward_steps == 1 and info["rollout"]["step_weights"] == [1.0]
    best = describe_fme_checkpoint(load_checkpoint_file(run / "training_checkpoints" / "best_ckpt.tar"),
                                   run / "training_checkpoints" / "best_ckpt.tar")
    assert not best["optimizer_state"] and not best["ema_present"] and best["file_kind"].startswith("best validation")


def test_ema_weights_are_fmes(run, ckpt):
    from fme.ace.stepper.single_module import load_stepper

    path = run / "training_checkpoints" / "ckpt.tar"
    ema = load_fme_target(path, ema=True)
    reference = load_stepper(path, use_ema_if_available=True)  # fme's own loader (our own file: safe to unpickle)
    ours = dict(ema.stepper.modules.named_parameters())
    differs = False
    for name, p in reference.modules.named_parameters():
        torch.testing.assert_close(ours[name], p, rtol=0, atol=0)
        differs |= not torch.equal(p, dict(ckpt.stepper.modules.named_parameters())[name])
    assert differs  # decay 0.9 over a few updates: EMA weights are not the raw weights
    assert ema.describe()["ema_used"] is True
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_fme_target(run / "training_checkpoints" / "best_ckpt.tar", ema=True)


def test_adam_by_l_matches_fmes_restored_optimizer(run, ckpt):
    from fme.core.optimization import OptimizationConfig

    obj = load_checkpoint_file(run / "training_checkpoints" / "ckpt.tar")
    stats = adam_by_l(obj, ckpt)
    per_degree = [p for p in ckpt.parameters() if p.per_degree]
    assert set(stats["parameters"]) == {p.name for p in per_degree}
    # fme's own resume path: build the optimizer over stepper.modules and load the saved state
    optimization = OptimizationConfig(optimizer_type="Adam", lr=1e-3).build(ckpt.stepper.modules, max_epochs=1)
    optimization.load_state(obj["optimization"])
    beta1, beta2 = stats["optimizer"]["betas"]
    eps = stats["optimizer"]["eps"]
    for p in per_degree:
        st = optimization.optimizer.state[p.tensor]
        t = float(st["step"])
        v_hat = st["exp_avg_sq"].double() / (1 - beta2**t)
        m_hat = st["exp_avg"].double() / (1 - beta1**t)
        rows_v = v_hat.movedim(p.degree_axis, 0).reshape(p.n_degrees, -1)
        rows_m = m_hat.movedim(p.degree_axis, 0).reshape(p.n_degrees, -1)
        got = stats["parameters"][p.name]
        assert len(got["sqrt_v_hat"]) == NLAT and got["step"] == int(t)
        np.testing.assert_allclose(got["sqrt_v_hat"], rows_v.mean(1).sqrt().numpy(), rtol=1e-12)
        np.testing.assert_allclose(got["effective_step"], (rows_m.abs() / (rows_v.sqrt() + eps)).mean(1).numpy(), rtol=1e-12)
        assert all(v > 0 for v in got["sqrt_v_hat"])
    with pytest.raises(CheckpointError, match="no optimizer state"):
        adam_by_l(load_checkpoint_file(run / "training_checkpoints" / "best_ckpt.tar"), ckpt)


def test_netcdf_data_and_time_window(run, ckpt):
    data = run.parent / "data"
    batches = list(ckpt.batches(str(data), n_samples=4, batch_size=3, seed=0))
    assert [b.size for b in batches] == [3, 1]
    assert batches[0].meta["source"] == "netcdf" and not batches[0].meta["synthetic"]
    window = list(ckpt.batches(str(data / "*.nc"), n_samples=2, batch_size=2, seed=0,
                               time_start="2000-01-02", time_stop="2000-01-02 18:00"))
    assert all(t.startswith("2000-01-02") for t in window[0].meta["times"])
    # fme's subset: samples chosen by initial time (inclusive), so 2000-01-02 18:00 -> 2000-01-03 00:00 is one
    with pytest.raises(DataError, match=r"only 4 sample\(s\) available"):
        list(ckpt.batches(str(data), n_samples=5, batch_size=1, seed=0, time_start="2000-01-02", time_stop="2000-01-02 18:00"))
    gen, tgt = ckpt.forward(batches[0], n_ensemble=2, seed=0)
    whitening = WhiteningConfig("per_sample", exponent=0.5)
    gen_d, tgt_d = ckpt.generate(batches[0], n_ensemble=2, seed=0)
    theirs = ckpt.fme_step_loss(whitening)(gen_d, tgt_d, step=0).total()
    ours = energy_score_loss(gen, tgt, whitening=whitening)
    assert abs(float(ours.detach()) - float(theirs.detach())) <= 1e-6 * abs(float(theirs.detach()))


def test_nan_targets_are_zeroed_and_counted(tmp_path, ckpt):
    # d is a diagnostic (output only): NaN there never becomes a network input
    path = write_netcdf(tmp_path / "nan.nc", ALL_NAMES, n_time=4, nan_target="d")
    batch = next(iter(ckpt.batches(str(path), n_samples=2, batch_size=2, seed=0)))
    assert batch.meta["nan_targets"] == {"d": 12, "h": 0, "u": 0} and batch.meta["n_nan_targets"] == 12
    gen_d, tgt_d = ckpt.generate(batch, n_ensemble=2, seed=0)
    gen, tgt = ckpt.to_loss_space(gen_d, tgt_d)
    d = ckpt.channel_names.index("d")
    assert torch.isfinite(gen).all() and torch.isfinite(tgt).all()
    assert (gen[:, :, d, :2, :3] == 0).all() and (tgt[:, :, d, :2, :3] == 0).all()
    theirs = ckpt.fme_step_loss()(gen_d, tgt_d, step=0).total()  # fme zeroes NaN targets the same way
    assert abs(float(energy_score_loss(gen, tgt).detach()) - float(theirs.detach())) <= 1e-6 * float(theirs.detach())


@pytest.mark.parametrize("case,match", [
    ("missing", r"missing variable 'f' the model needs"),
    ("grid", r"8x16 grid, the checkpoint's grid is 16x32"),
    ("lat", "latitudes .* differ from the checkpoint's"),
    ("nan_input", "NaN in input variable 'f'"),
    ("nofile", "no such file"),
    ("timestep", "differs from the checkpoint's timestep"),
])
def test_bad_data_is_one_line_data_error(case, match, tmp_path, ckpt):
    path = tmp_path / f"{case}.nc"
    if case == "missing":
        write_netcdf(path, [n for n in ALL_NAMES if n != "f"], n_time=3)
    elif case == "grid":
        write_netcdf(path, ALL_NAMES, n_time=3, nlat=8, nlon=16)
    elif case == "lat":
        write_netcdf(path, ALL_NAMES, n_time=3, lat=np.linspace(-90, 90, NLAT))
    elif case == "nan_input":
        write_netcdf(path, ALL_NAMES, n_time=3)
        import xarray as xr

        ds = xr.load_dataset(path)
        ds["f"][:, 3, 4] = np.nan
        ds.to_netcdf(path)
    elif case == "timestep":
        import cftime
        import xarray as xr

        write_netcdf(path, ALL_NAMES, n_time=3)
        ds = xr.load_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
        ds["time"] = [cftime.DatetimeJulian(2000, 1, 1, 3 * i) for i in range(3)]
        ds.to_netcdf(path)
    with pytest.raises(DataError, match=match) as info:
        list(ckpt.batches(str(path), n_samples=1, batch_size=1, seed=0))
    assert "\n" not in str(info.value)


def test_unknown_builder_type(tmp_path):
    path = save_current(tmp_path / "ckpt.tar", build_stepper("NoiseConditionedSFNO", {"embed_dim": 8, "num_layers": 1, "noise_embed_dim": 4}))
    obj = load_checkpoint_file(path)
    obj["stepper"]["config"]["step"]["config"]["builder"]["type"] = "NoSuchNet"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="unknown builder type 'NoSuchNet'"):
        load_fme_target(path)
    assert describe_fme_checkpoint(load_checkpoint_file(path), path)["builder"]["type"] == "NoSuchNet"


def test_unknown_layout_needs_degree_axis_overrides(tmp_path):
    # tensorly-factorised (CP) filter weights: no layout we can place without the user
    stepper = build_stepper("SphericalFourierNeuralOperatorNet",
                            {"embed_dim": 8, "num_layers": 1, "factorization": "cp", "rank": 0.5, "operator_type": "dhconv"})
    path = save_current(tmp_path / "ckpt_0003.tar", stepper)
    with pytest.raises(CheckpointError, match=r"unknown spectral filter layout.*factor_2 \[16, 16, 2\]") as info:
        load_fme_target(path)
    assert "--degree-axis" in str(info.value)
    overrides = {"*.weight.factors.factor_2": 0, "*.weight.factors.factor_[01]": None, "*.weight.weights": None}
    target = load_fme_target(path, degree_axis=overrides)
    placed = {p.name: p.degree_axis for p in target.parameters() if p.per_degree}
    assert placed == {"module.blocks.0.filter.filter.weight.factors.factor_2": 0}
    with pytest.raises(CheckpointError, match="match no trainable parameter"):
        load_fme_target(path, degree_axis={**overrides, "nothing.*": 1})
    static = describe_fme_checkpoint(load_checkpoint_file(path), path)
    assert {p["name"].rsplit(".", 1)[-1] for p in static["unplaced_filter_parameters"]} == {"factor_0", "factor_1", "factor_2", "weights"}
    assert describe_fme_checkpoint(load_checkpoint_file(path), path)["file_kind"] == "per-epoch checkpoint"
