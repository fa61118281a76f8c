"""The torch-harmonics SFNO family: checkpoint format, plain state dicts, bad inputs, the stochastic
ensemble, the shallow-water data, the training example, and evidence that the bundled default is trained."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from specprobe.errors import CheckpointError, DataError
from specprobe.models.th import swe
from specprobe.models.th.checkpoint import (
    FORMAT,
    default_checkpoint_path,
    default_sample_path,
    is_th_checkpoint,
    load_th_target,
    read_checkpoint,
    save_checkpoint,
)
from specprobe.models.th.data import load_pairs, save_sample
from specprobe.models.th.model import StochasticSFNO, isotropic_noise, noise_spectrum

ROOT = Path(__file__).resolve().parent.parent
NLAT, NLON = 16, 32
CHANNELS, UNITS = ["h", "u", "v"], ["m", "m/s", "m/s"]
MEANS, STDS = [10000.0, 0.0, 0.0], [100.0, 5.0, 5.0]


def sfno_args(n_noise=2, n_state=3):
    return {"img_size": [NLAT, NLON], "grid": "equiangular", "scale_factor": 1, "in_chans": n_state + n_noise,
            "out_chans": n_state, "embed_dim": 8, "num_layers": 2, "pos_embed": "learnable lat"}


def small_model(n_noise=2, seed=0):
    torch.manual_seed(seed)
    return StochasticSFNO(sfno_args(n_noise), n_state=3, n_noise=n_noise, noise_slope=-2.0, residual=True)


def physical_states(k=2, t=4, seed=0, nlat=NLAT, nlon=NLON):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(k, t, 3, nlat, nlon, generator=g)
    return z * torch.tensor(STDS).view(3, 1, 1) + torch.tensor(MEANS).view(3, 1, 1)


@pytest.fixture()
def files(tmp_path):
    """A small format-1 checkpoint and a matching data file (6 pairs)."""
    ckpt, data = tmp_path / "m.pt", tmp_path / "d.pt"
    save_checkpoint(ckpt, small_model(), channel_names=CHANNELS, units=UNITS, means=MEANS, stds=STDS,
                    data_grid="equiangular", training={"steps": 0, "note": "test"})
    save_sample(data, physical_states(), channel_names=CHANNELS, units=UNITS,
                grid={"nlat": NLAT, "nlon": NLON, "type": "equiangular"}, timestep_hours=3.0)
    return ckpt, data


# -- format ---------------------------------------------------------------------------------------


def test_format_round_trip_weights_only_and_identical_outputs(files):
    ckpt, data = files
    obj = torch.load(ckpt, weights_only=True)  # no allow-list needed: plain containers and tensors only
    assert is_th_checkpoint(obj) and obj["format"] == FORMAT and obj["format_version"] == 1
    assert obj["channels"]["names"] == CHANNELS and obj["grid"] == {"nlat": NLAT, "nlon": NLON, "type": "equiangular"}
    assert obj["stochastic"]["n_noise"] == 2 and obj["normalization"]["stds"] == STDS
    assert list(ckpt.parent.glob(".*.tmp")) == []  # the atomic write left nothing behind

    target = load_th_target(ckpt)
    original = small_model()
    batch = next(target.batches(data, n_samples=3, batch_size=3, seed=0))
    gen, tgt = target.forward(batch, n_ensemble=2, seed=5)
    x = batch.payload["input"].repeat_interleave(2, 0)
    expected = original(x, torch.Generator().manual_seed(5)).reshape(3, 2, 3, NLAT, NLON)
    assert torch.equal(gen, expected)
    assert gen.shape == (3, 2, 3, NLAT, NLON) and tgt.shape == (3, 1, 3, NLAT, NLON)
    assert gen.requires_grad


def test_target_interface_and_describe(files):
    ckpt, _ = files
    target = load_th_target(ckpt)
    assert target.family == "torch-harmonics-sfno" and target.loss_grid == "legendre-gauss"
    assert (target.nlat, target.nlon, target.data_grid) == (NLAT, NLON, "equiangular")
    assert target.channel_names == CHANNELS
    params = target.parameters()
    names = {p.name for p in params}
    assert names == {n for n, _ in target.model.sfno.named_parameters()}
    spectral = [p for p in params if p.per_degree]
    assert [p.name for p in spectral] == ["blocks.0.global_conv.weight", "blocks.1.global_conv.weight"]
    assert all(p.degree_axis == 2 and p.n_degrees == NLAT and p.tensor.is_complex() for p in spectral)
    d = json.loads(json.dumps(target.describe()))
    assert d["format"] == FORMAT and d["grid"]["loss_grid"] == "legendre-gauss"
    assert d["constructor_args"]["embed_dim"] == 8 and d["training"]["note"] == "test"
    assert [c["name"] for c in d["channels"]] == CHANNELS and len(d["spectral_parameters"]) == 2


def test_batches_take_the_first_pairs_in_file_order_normalised(files):
    ckpt, data = files
    target = load_th_target(ckpt)
    x, y, _ = load_pairs(data)
    got = list(target.batches(data, n_samples=5, batch_size=2, seed=123))
    assert [b.size for b in got] == [2, 2, 1]
    inputs = torch.cat([b.payload["input"] for b in got])
    mean, std = torch.tensor(MEANS).view(3, 1, 1), torch.tensor(STDS).view(3, 1, 1)
    assert torch.allclose(inputs, (x[:5] - mean) / std)
    assert got[0].meta["pairs"] == [(0, 0), (0, 1)]  # trajectory-major: (states[k, t], states[k, t+1])
    with pytest.raises(DataError, match="fewer than n_samples=7"):
        list(target.batches(data, n_samples=7, batch_size=2, seed=0))


def test_plain_state_dict_with_sidecar_is_deterministic(tmp_path, files):
    _, data = files
    torch.manual_seed(0)
    args = sfno_args(n_noise=0)
    model = StochasticSFNO(args, n_state=3, n_noise=0, residual=False)
    torch.save(model.sfno.state_dict(), tmp_path / "plain.pt")
    (tmp_path / "plain.pt.json").write_text(json.dumps(args))
    target = load_th_target(tmp_path / "plain.pt")
    assert target.channel_names == ["ch0", "ch1", "ch2"]
    d = target.describe()
    assert d["stochastic"] is None and d["normalization"] is None
    assert "ch0" in " ".join(d["notes"]) and "identical" in " ".join(d["notes"])
    batch = next(target.batches(data, n_samples=2, batch_size=2, seed=0))
    gen, tgt = target.forward(batch, n_ensemble=3, seed=0)
    assert torch.equal(gen[:, 0], gen[:, 1]) and torch.equal(gen[:, 0], gen[:, 2])
    assert torch.equal(tgt[:, 0], load_pairs(data)[1][:2])  # no normalisation: data used as is
    alone = model(batch.payload["input"][1:2], None)[0]  # row s*E + e is sample s (to batch-size rounding)
    assert torch.allclose(gen[1, 0], alone, rtol=1e-5, atol=1e-5 * float(alone.detach().abs().max()))

    # the "model.json" spelling and an explicit sidecar path work too
    (tmp_path / "plain.pt.json").rename(tmp_path / "plain.json")
    assert load_th_target(tmp_path / "plain.pt").channel_names == ["ch0", "ch1", "ch2"]
    (tmp_path / "plain.json").rename(tmp_path / "args.json")
    assert read_checkpoint(tmp_path / "plain.pt", sidecar=tmp_path / "args.json").plain


# -- bad inputs -----------------------------------------------------------------------------------


def _bad_checkpoint(tmp_path, good: Path, case: str) -> tuple[Path, str]:
    obj = torch.load(good, weights_only=True)
    p = tmp_path / f"{case}.pt"
    if case == "missing":
        return tmp_path / "nope.pt", "no such file"
    if case == "directory":
        return tmp_path, "directory"
    if case == "empty":
        p.write_bytes(b"")
        return p, "empty"
    if case == "truncated":
        data = good.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p, "truncated"
    if case == "not_a_checkpoint":
        torch.save({"hello": "world", "n": 3}, p)
        return p, "not a torch-harmonics SFNO checkpoint"
    if case == "unknown_format":
        obj["format"] = "someone.else"
        torch.save(obj, p)
        return p, "unknown checkpoint format"
    if case == "unknown_version":
        obj["format_version"] = 99
        torch.save(obj, p)
        return p, "format_version 99 is not supported"
    if case == "shape_mismatch":
        obj["model"]["args"]["embed_dim"] = 12
        torch.save(obj, p)
        return p, "shape mismatch"
    if case == "missing_keys":
        del obj["state_dict"]["blocks.1.global_conv.weight"]
        torch.save(obj, p)
        return p, "missing: blocks.1.global_conv.weight"
    if case == "unexpected_keys":
        obj["state_dict"]["blocks.9.extra"] = torch.zeros(2)
        torch.save(obj, p)
        return p, "unexpected: blocks.9.extra"
    if case == "bad_ctor_args":
        obj["model"]["args"]["no_such_argument"] = 1
        torch.save(obj, p)
        return p, "cannot build the SFNO"
    if case == "channels_vs_args":
        obj["channels"] = {"names": ["h", "u"], "units": ["m", "m/s"], "long_names": ["h", "u"]}
        torch.save(obj, p)
        return p, "do not match 2 channels"
    if case == "nan_weights":
        obj["state_dict"]["blocks.0.global_conv.weight"][0, 0, 0] = float("nan")
        torch.save(obj, p)
        return p, "nan or inf in weights blocks.0.global_conv.weight"
    if case == "plain_without_sidecar":  # nlon: neither in the weights (learnable lat embedding) nor given
        torch.save(obj["state_dict"], p)
        return p, "missing the data grid (nlon: --grid"
    if case == "plain_bad_sidecar":
        torch.save(obj["state_dict"], p)
        (tmp_path / f"{case}.pt.json").write_text("{not json")
        return p, "not valid json"
    if case == "fme_like":
        torch.save({"stepper": {"config": {}}, "epoch": 1}, p)
        return p, "fme/ace checkpoint"
    raise AssertionError(case)


BAD_CKPT = ["missing", "directory", "empty", "truncated", "not_a_checkpoint", "unknown_format", "unknown_version",
            "shape_mismatch", "missing_keys", "unexpected_keys", "bad_ctor_args", "channels_vs_args", "nan_weights",
            "plain_without_sidecar", "plain_bad_sidecar", "fme_like"]


@pytest.mark.parametrize("case", BAD_CKPT)
def test_bad_checkpoints_give_one_line_errors(tmp_path, files, case):
    path, needle = _bad_checkpoint(tmp_path, files[0], case)
    with pytest.raises(CheckpointError) as e:
        load_th_target(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and needle.lower() in msg.lower(), msg


def _bad_data(tmp_path, case) -> tuple[Path, str]:
    p = tmp_path / f"data_{case}.pt"
    grid = {"nlat": NLAT, "nlon": NLON, "type": "equiangular"}
    states = physical_states()
    if case == "missing":
        return tmp_path / "nope.pt", "no such file"
    if case == "not_data":
        torch.save({"x": torch.zeros(2)}, p)
        return p, "not a specprobe.th-sfno-data file"
    if case == "truncated":
        save_sample(p, states, channel_names=CHANNELS, units=UNITS, grid=grid, timestep_hours=3)
        p.write_bytes(p.read_bytes()[:300])
        return p, "truncated"
    if case == "grid":
        save_sample(p, physical_states(nlat=8, nlon=16), channel_names=CHANNELS, units=UNITS,
                    grid={"nlat": 8, "nlon": 16, "type": "equiangular"}, timestep_hours=3)
        return p, "does not match the model's 16x32"
    if case == "grid_type":
        save_sample(p, states, channel_names=CHANNELS, units=UNITS, grid={**grid, "type": "legendre-gauss"},
                    timestep_hours=3)
        return p, "legendre-gauss does not match"
    if case == "channels":
        save_sample(p, states, channel_names=["h", "u", "T"], units=UNITS, grid=grid, timestep_hours=3)
        return p, "do not match the model's"
    if case == "nan":
        states[1, 2, 1, 3, 4] = float("nan")
        save_sample(p, states, channel_names=CHANNELS, units=UNITS, grid=grid, timestep_hours=3)
        return p, "nan or inf"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing", "not_data", "truncated", "grid", "grid_type", "channels", "nan"])
def test_bad_data_gives_one_line_errors(tmp_path, files, case):
    target = load_th_target(files[0])
    path, needle = _bad_data(tmp_path, case)
    with pytest.raises(DataError) as e:
        list(target.batches(path, n_samples=1, batch_size=1, seed=0))
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and needle.lower() in msg.lower(), msg


def test_data_channels_are_reordered_by_name(tmp_path, files):
    ckpt, data = files
    x, y, _ = load_pairs(data)
    p = tmp_path / "swapped.pt"
    states = physical_states()[:, :, [2, 0, 1]]
    save_sample(p, states, channel_names=["v", "h", "u"], units=["m/s", "m", "m/s"],
                grid={"nlat": NLAT, "nlon": NLON, "type": "equiangular"}, timestep_hours=3)
    target = load_th_target(ckpt)
    a = next(target.batches(data, n_samples=2, batch_size=2, seed=0)).payload["input"]
    b = next(target.batches(p, n_samples=2, batch_size=2, seed=0)).payload["input"]
    assert torch.equal(a, b)


# -- the stochastic ensemble ----------------------------------------------------------------------


def test_members_differ_and_seeds_reproduce(files):
    ckpt, data = files
    target = load_th_target(ckpt)
    batch = next(target.batches(data, n_samples=2, batch_size=2, seed=0))
    g1, _ = target.forward(batch, n_ensemble=3, seed=11)
    g2, _ = target.forward(batch, n_ensemble=3, seed=11)
    g3, _ = target.forward(batch, n_ensemble=3, seed=12)
    assert torch.equal(g1, g2)
    assert not torch.equal(g1, g3)
    for s in range(2):
        for i in range(3):
            for j in range(i + 1, 3):
                assert (g1[s, i] - g1[s, j]).abs().max() > 1e-4  # every row drew its own noise


def test_repeat_interleave_layout(files):
    """Row s*E + e of the model's batch is member e of sample s (not repeat's [a, b, a, b] order)."""
    ckpt, data = files
    target = load_th_target(ckpt)
    batch = next(target.batches(data, n_samples=2, batch_size=2, seed=0))
    gen, _ = target.forward(batch, n_ensemble=2, seed=3)
    a, b = batch.payload["input"]
    rows = target.model(torch.stack([a, a, b, b]), torch.Generator().manual_seed(3))
    assert torch.equal(gen.reshape(4, 3, NLAT, NLON), rows)
    # a sample's members do not depend on the batch around it (noise is drawn row by row)
    first, _ = target.forward(type(batch)(payload={k: v[:1] for k, v in batch.payload.items()}, size=1),
                              n_ensemble=2, seed=3)
    assert torch.equal(first[0], gen[0])


def test_isotropic_noise_has_the_declared_spectrum_and_unit_variance():
    from torch_harmonics.sht import InverseRealSHT, RealSHT

    isht = InverseRealSHT(32, 64, lmax=32, mmax=32, grid="legendre-gauss")
    g = torch.Generator().manual_seed(0)
    z = isotropic_noise(64, 2, isht, slope=-2.0, generator=g)
    assert z.shape == (64, 2, 32, 64)
    w = RealSHT(32, 64, lmax=32, mmax=32, grid="legendre-gauss")(z.double())
    power = (w.abs() ** 2)
    power = (power[..., 0] + 2 * power[..., 1:].sum(-1)).mean((0, 1))  # per degree
    expected = noise_spectrum(32, -2.0) * (2 * torch.arange(32) + 1)
    assert torch.allclose(power.float(), expected.float(), rtol=0.25)
    assert abs(float(expected.sum()) / (4 * torch.pi) - 1.0) < 1e-9  # unit variance over the sphere


# -- shallow-water data and the training example ---------------------------------------------------


def test_batched_solver_step_equals_torch_harmonics_timestep():
    s = swe.make_solver(24, 48, 600.0, lmax=16, double=True)  # torch-harmonics' own transforms, even after fme
    torch.manual_seed(0)
    u = torch.stack([swe.balanced_initial_condition(s, mach=2.0) for _ in range(2)])
    ours = swe.advance(s, u, 5)
    for k in range(2):
        ref = s.timestep(u[k].clone(), 5)
        assert torch.equal(swe.advance(s, u[k : k + 1], 5)[0], ref)  # the same operations, bit for bit
        assert torch.allclose(ours[k], ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))  # batched


def _training_module():
    spec = importlib.util.spec_from_file_location("train_swe_sfno", ROOT / "examples" / "train_swe_sfno.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_training_example_is_deterministic(tmp_path):
    tr = _training_module()
    cfg = tr.TrainConfig(nlat=16, nlon=32, solver_nlat=24, solver_nlon=48, solver_lmax=16, solver_dt=600.0,
                         spinup_h=1, interval_h=1, n_train_traj=2, train_states=3, n_heldout_traj=1,
                         heldout_states=3, embed_dim=8, num_layers=2, steps=3, batch_size=2, warmup=1)
    runs = [tr.train(cfg, progress=False) for _ in range(2)]
    (m1, mean1, std1, meta1, data1), (m2, mean2, std2, meta2, data2) = runs
    assert torch.equal(data1["train"], data2["train"]) and (mean1, std1) == (mean2, std2)
    for (k, a), (_, b) in zip(m1.sfno.state_dict().items(), m2.sfno.state_dict().items()):
        assert torch.equal(a, b), k
    assert meta1["scores"] == meta2["scores"] and meta1["steps"] == 3
    tr.save(m1, mean1, std1, meta1, data1, cfg, tmp_path / "m.pt", tmp_path / "s.pt")
    target = load_th_target(tmp_path / "m.pt")
    assert target.describe()["training"]["scores"] == meta1["scores"]
    assert len(list(target.batches(tmp_path / "s.pt", n_samples=2, batch_size=2, seed=0))) == 1


# -- the bundled default --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    target = load_th_target(None)
    x, y, info = target.load_pairs(None)
    return target, x, y, info


def test_bundled_files_are_small_and_self_describing(bundled):
    target, x, y, info = bundled
    assert default_checkpoint_path().stat().st_size <= 5e6
    assert default_checkpoint_path().stat().st_size + default_sample_path().stat().st_size <= 6e6
    assert target.channel_names == ["h", "u", "v"] and (target.nlat, target.nlon) == (64, 128)
    assert info["channel_names"] == ["h", "u", "v"] and x.shape[0] >= 8
    d = target.describe()
    assert d["stochastic"]["n_noise"] > 0 and d["training"]["steps"] > 0
    assert d["training"]["loss"]["crps_weight"] == 0.9 and d["training"]["loss"]["n_ensemble"] == 2


def test_bundled_default_is_trained(bundled):
    """One-step skill on held-out trajectories, against baselines computed here, not stored numbers."""
    from specprobe.spectral import crps

    target, x, y, _ = bundled
    spec = target.spec
    torch.manual_seed(0)
    untrained = StochasticSFNO(spec.args, n_state=3, n_noise=spec.stochastic["n_noise"],
                               noise_slope=spec.stochastic["noise_spectrum_slope"], residual=True)
    e = 2
    with torch.no_grad():
        xe = x.repeat_interleave(e, 0)
        gen = target.model(xe, torch.Generator().manual_seed(0)).reshape(x.shape[0], e, *x.shape[1:])
        gen0 = untrained(xe, torch.Generator().manual_seed(0)).reshape(x.shape[0], e, *x.shape[1:])
    rmse = ((gen.mean(1) - y) ** 2).mean((0, 2, 3)).sqrt()
    persistence = ((x - y) ** 2).mean((0, 2, 3)).sqrt()
    assert (rmse < 0.9 * persistence).all(), (rmse, persistence)
    assert rmse.mean() < 0.75 * persistence.mean(), (rmse, persistence)
    c_trained, c_untrained = crps(gen, y[:, None]).mean(), crps(gen0, y[:, None]).mean()
    c_persistence = (x - y).abs().mean()
    assert c_trained < 0.25 * c_untrained, (c_trained, c_untrained)
    assert c_trained < 0.7 * c_persistence, (c_trained, c_persistence)


def test_importing_the_family_does_not_import_torch():
    code = ("import sys, specprobe.models.registry as r, specprobe.models.th.checkpoint, "
            "specprobe.models.th.target; r.default_checkpoint(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
