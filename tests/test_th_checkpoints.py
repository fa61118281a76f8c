"""torch-harmonics SFNO checkpoints as users have them (issue 14): real models built with
torch-harmonics' own classes, saved plain, wrapped, Lightning-style, behind torch.compile's prefix and
with a sidecar; the constructor inferred from the weights must rebuild the same model (keys, shapes,
outputs on a seeded input), probe to the same per-degree gradients as the sidecar form, and every
ambiguous or invalid case is one line through the CLI."""

import json

import pytest
import torch
from torch_harmonics.examples import models as thm

import specprobe
from specprobe.errors import CheckpointError, SpecprobeError
from specprobe.models.registry import describe_checkpoint, load_target
from specprobe.models.safe_load import load_checkpoint_file
from specprobe.models.th.infer import full_modes, internal_grid
from test_cli_bad_input import assert_one_line_error, run_cli

SMALL = dict(img_size=(32, 64), in_chans=3, out_chans=3, embed_dim=16, num_layers=2)
X_SEED = 1234


def sfno(seed=0, **overrides):
    torch.manual_seed(seed)
    return thm.SphericalFourierNeuralOperator(**{**SMALL, **overrides})


def seeded_input(channels=3, nlat=32, nlon=64, n=2):
    return torch.randn(n, channels, nlat, nlon, generator=torch.Generator().manual_seed(X_SEED))


def assert_same_model(original, rebuilt):
    """Identical state-dict keys, shapes and values, and identical outputs on a seeded input."""
    a, b = original.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    x = seeded_input(original.in_chans, *original.img_size)
    with torch.no_grad():
        assert torch.equal(original(x), rebuilt(x))


@pytest.fixture(scope="module")
def model():
    return sfno()


# -- the forms a training loop saves ---------------------------------------------------------------


def _lightning(model, prefix="model."):
    """A PyTorch Lightning checkpoint's layout (lightning.pytorch.trainer.connectors.checkpoint_connector
    dump_checkpoint): real optimizer and scheduler states, a callback state, and another module's buffer."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    state = {prefix + k: v.clone() for k, v in model.state_dict().items()}
    state["loss_fn.channel_weights"] = torch.ones(3)  # another submodule of the LightningModule
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    sched.step()
    for p in model.parameters():
        p.grad = None
    return {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0", "state_dict": state,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
            "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.25),
                                                                   "best_model_path": "/runs/epoch=2.ckpt"}},
            "optimizer_states": [opt.state_dict()], "lr_schedulers": [sched.state_dict()],
            "hparams_name": "kwargs", "hyper_parameters": {"lr": 1e-3, "embed_dim": 16, "img_size": (32, 64)}}


def _save_form(model, form, path):
    sd = model.state_dict()
    if form == "plain":
        obj = sd
    elif form in ("model_state", "state_dict", "model"):
        obj = {form: sd, "epoch": 3}
    elif form == "lightning":
        obj = _lightning(model)
    elif form == "compiled":
        # a real torch.compile'd module: compilation is lazy, its state_dict already carries _orig_mod.
        obj = torch.compile(model).state_dict()
        assert all(k.startswith("_orig_mod.") for k in obj)
    elif form == "lightning+compiled":
        obj = _lightning(model, prefix="model._orig_mod.")
    elif form == "ddp":
        obj = {f"module.{k}": v for k, v in sd.items()}
    elif form == "sidecar":
        obj = sd
        args = {**SMALL, "img_size": list(SMALL["img_size"])}
        path.with_name(path.name + ".json").write_text(json.dumps(args))
    else:
        raise AssertionError(form)
    torch.save(obj, path)
    return path


FORMS = ["plain", "model_state", "state_dict", "model", "lightning", "compiled", "lightning+compiled", "ddp",
         "sidecar"]


@pytest.mark.parametrize("form", FORMS)
def test_every_form_loads_weights_only_into_the_same_model(tmp_path, model, form):
    path = _save_form(model, form, tmp_path / f"{form.replace('+', '_')}.pt")
    torch.load(path, weights_only=True)  # torch's own weights-only unpickler, no allow-list
    load_checkpoint_file(path)  # and specprobe's
    options = {} if form == "sidecar" else {"grid": "32x64"}
    target = load_target(path, **options)
    assert target.family == "torch-harmonics-sfno"
    assert_same_model(model, target.model.sfno)
    d = target.describe()
    assert (d["sidecar"] is not None) == (form == "sidecar")
    assert (d["constructor_inference"] is None) == (form == "sidecar")
    if form == "lightning":
        assert "Lightning" in d["container"] and "'model.'" in d["container"] and "loss_fn" in d["container"]
    if "compiled" in form:
        assert "_orig_mod." in d["container"]
    assert [p.name for p in target.parameters() if p.per_degree] == [
        "blocks.0.global_conv.weight", "blocks.1.global_conv.weight"]


# -- inference over the constructor's options --------------------------------------------------------

CONFIGS = {
    # ctor overrides, options needed; what the weights tell decides which options are needed
    "defaults": ({}, {"grid": "32x64"}),
    "layer norm, bias, mlp 1.5, scale 2": (
        {"bias": True, "normalization_layer": "layer_norm", "mlp_ratio": 1.5, "scale_factor": 2}, {}),
    "sequence embedding": ({"pos_embed": "sequence", "scale_factor": 1}, {}),
    "spectral embedding, equiangular inside": (
        {"pos_embed": "spectral", "scale_factor": 1, "grid_internal": "equiangular"}, {}),
    "learnable lat, gauss grid": ({"pos_embed": "learnable lat", "scale_factor": 1, "grid": "legendre-gauss"},
                                  {"grid": "32x64:legendre-gauss"}),
    "learnable latlon": ({"pos_embed": "learnable latlon", "scale_factor": 1}, {}),
    "instance norm, no mlp, half the modes": (
        {"normalization_layer": "instance_norm", "use_mlp": False, "hard_thresholding_fraction": 0.5},
        {"grid": "32x64", "scale_factor": 3}),
    "three layers, scale 4, 5 channels": ({"num_layers": 3, "scale_factor": 4, "in_chans": 5, "out_chans": 5},
                                          {"grid": "32x64"}),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_inference_rebuilds_the_same_model(tmp_path, name):
    overrides, options = CONFIGS[name]
    original = sfno(seed=3, **overrides)
    if overrides.get("pos_embed", "").startswith("learnable"):
        with torch.no_grad():  # trained, not the zero initialisation
            original.pos_embed.position_embeddings.normal_(generator=torch.Generator().manual_seed(5))
    torch.save(original.state_dict(), tmp_path / "m.pt")
    target = load_target(tmp_path / "m.pt", **options)
    assert_same_model(original, target.model.sfno)
    args, inference = target.spec.args, target.spec.inference
    for key in ("grid", "grid_internal", "scale_factor", "pos_embed", "normalization_layer", "use_mlp", "bias"):
        if key in overrides:
            assert args[key] == overrides[key], key
    named = {**inference["inferred"], **inference["given"], **inference["assumed"]}
    assert set(named) <= set(args) and {"img_size", "scale_factor", "embed_dim", "grid"} <= set(named)
    how = inference["given"].get("img_size") or inference["inferred"]["img_size"]
    assert ("--grid" in how) == ("grid" in options)


def test_mode_count_relation_matches_torch_harmonics():
    """full_modes / internal_grid are what the SFNO's constructor builds (checked on the live object)."""
    for nlat, nlon, sf in [(32, 64, 1), (32, 64, 3), (33, 64, 2), (25, 60, 4), (19, 40, 5)]:
        m = thm.SphericalFourierNeuralOperator(img_size=(nlat, nlon), scale_factor=sf, embed_dim=2, num_layers=1)
        assert internal_grid(nlat, nlon, sf) == (m.h, m.w)
        assert full_modes(nlat, nlon, sf) == m.blocks[0].global_conv.modes_lat


def test_sidecar_wins_over_inference(tmp_path, model):
    """The sidecar says hard_thresholding_fraction 0.5 at scale factor 2 (L=8), which inference alone would
    read as scale factor 4 at fraction 1: the sidecar's model is built, and both load the same weights."""
    original = sfno(seed=2, scale_factor=2, hard_thresholding_fraction=0.5)
    torch.save(original.state_dict(), tmp_path / "m.pt")
    alone = load_target(tmp_path / "m.pt", grid="32x64").spec
    assert alone.args["scale_factor"] == 4  # the weights alone: L = 8 is the full mode count at scale factor 4
    assert "hard_thresholding_fraction" in alone.inference["assumed"]  # ... and info says what that assumed
    args = {**SMALL, "img_size": [32, 64], "scale_factor": 2, "hard_thresholding_fraction": 0.5}
    (tmp_path / "m.pt.json").write_text(json.dumps(args))
    target = load_target(tmp_path / "m.pt")
    assert target.spec.args["scale_factor"] == 2 and target.spec.inference is None
    assert_same_model(original, target.model.sfno)
    assert load_target(tmp_path / "m.pt", grid="32x64").spec.args["scale_factor"] == 2  # agreeing flags are fine


# -- the probe: gradients, synthetic data, deterministic models --------------------------------------


@pytest.mark.parametrize("form", ["plain", "lightning"])
def test_plain_state_dict_probes_to_the_sidecar_forms_gradients(tmp_path, model, form):
    plain = _save_form(model, form, tmp_path / f"{form}.pt")
    side = _save_form(model, "sidecar", tmp_path / "side.pt")
    kw = dict(n_samples=2, n_ensemble=1, seed=7, timestamp=False, threads=1, device="cpu")
    a = specprobe.probe(plain, grid="32x64", **kw)
    b = specprobe.probe(side, **kw)
    assert a.grad_by_l == b.grad_by_l and a.gsnr_by_l == b.gsnr_by_l
    assert len(a.degrees) == 10 and max(a.grad_by_l["baseline"]["total"]) > 0
    for r in (a, b):
        assert r.provenance["data"] == {"source": "synthetic", "synthetic": True}
    assert a.provenance["options"]["grid"] == "32x64"
    assert a.provenance["model"]["constructor_inference"]["given"]["img_size"] == "--grid"


def test_synthetic_data_is_seeded_red_and_on_the_models_grid(tmp_path):
    original = sfno(seed=1, img_size=(24, 48), in_chans=4, out_chans=4, scale_factor=2)
    torch.save(original.state_dict(), tmp_path / "m.pt")
    target = load_target(tmp_path / "m.pt", grid="24x48")
    (b1,) = target.batches(None, n_samples=3, batch_size=3, seed=4)
    (b2,) = target.batches(None, n_samples=3, batch_size=3, seed=4)
    (b3,) = target.batches(None, n_samples=3, batch_size=3, seed=5)
    x, y = b1.payload["input"], b1.payload["target"]
    assert x.shape == y.shape == (3, 4, 24, 48)
    assert torch.equal(x, b2.payload["input"]) and not torch.equal(x, b3.payload["input"])
    assert target.describe()["synthetic_data"] is True
    # red: the field's power falls with degree (ducc0-independent check through torch-harmonics' own SHT)
    from torch_harmonics.sht import RealSHT

    sht = RealSHT(24, 48, grid="equiangular", norm="ortho").double()
    c = sht(x.double())
    weight = torch.ones(c.shape[-1], dtype=torch.float64)
    weight[1:] = 2.0
    power = (c.abs() ** 2 * weight).sum(-1).mean((0, 1))
    assert power[0] < 1e-10 * power[1]  # no l = 0: zero mean
    assert power[1] > 10 * power[10] > 0  # l^-2: power(1) / power(10) = 100


def test_bundled_model_keeps_its_sample_other_format_files_get_synthetic(tmp_path):
    from specprobe.models.th.checkpoint import save_checkpoint
    from specprobe.models.th.model import StochasticSFNO

    bundled = load_target(None)
    assert bundled._bundled_sample_fits() and not bundled.deterministic
    m = StochasticSFNO({"img_size": [16, 32], "scale_factor": 1, "in_chans": 3, "out_chans": 3, "embed_dim": 8,
                        "num_layers": 1}, n_state=3, n_noise=0, residual=False)
    save_checkpoint(tmp_path / "f.pt", m, channel_names=["h", "u", "v"], units=["m", "m/s", "m/s"],
                    means=[1.0, 0.0, 0.0], stds=[2.0, 1.0, 1.0], data_grid="equiangular")
    other = load_target(tmp_path / "f.pt")
    (batch,) = other.batches(None, n_samples=2, batch_size=2, seed=0)
    assert batch.payload["input"].shape == (2, 3, 16, 32) and other.describe()["synthetic_data"]


def test_deterministic_model_members_are_identical_and_the_verdict_says_so(tmp_path, model):
    from specprobe.report.tables import verdict

    path = _save_form(model, "plain", tmp_path / "p.pt")
    kw = dict(grid="32x64", n_samples=1, seed=0, timestamp=False, threads=1, device="cpu", variants=())
    two, one = specprobe.probe(path, n_ensemble=2, **kw), specprobe.probe(path, n_ensemble=1, **kw)
    # identical members by construction (one forward, repeated: see ThTarget.forward), so the spread
    # term and its gradient are exactly zero on any machine and the gradient is the skill term's alone
    target = load_target(path, grid="32x64")
    (batch,) = target.batches(None, n_samples=2, batch_size=2, seed=0)
    gen, _ = target.forward(batch, n_ensemble=3, seed=0)
    assert torch.equal(gen[:, 0], gen[:, 1]) and torch.equal(gen[:, 0], gen[:, 2])
    for a, b in zip(two.grad_by_l["baseline"]["total"], one.grad_by_l["baseline"]["total"]):
        assert a == pytest.approx(b, rel=1e-6)
    assert two.provenance["model"]["deterministic"] is True
    line = verdict(two)[-1]
    assert "deterministic" in line and "--n-ensemble 1" in line
    assert not any("deterministic" in v for v in verdict(one))


# -- other torch-harmonics models -----------------------------------------------------------------


@pytest.mark.parametrize("cls,kw", [
    ("LocalSphericalNeuralOperator", dict(embed_dim=8, num_layers=2, scale_factor=2)),
    ("SphericalUNet", {}),
    ("SphericalTransformer", dict(embed_dim=8, num_layers=1, scale_factor=2)),
    ("SphericalSegformer", {}),
])
def test_other_torch_harmonics_models_are_refused_by_name(tmp_path, cls, kw):
    torch.manual_seed(0)
    m = getattr(thm, cls)(img_size=(32, 64), in_chans=3, out_chans=3, **kw)
    torch.save({"state_dict": m.state_dict(), "epoch": 1}, tmp_path / "m.pt")
    assert_one_line_error(run_cli("info", tmp_path / "m.pt", "--grid", "32x64"), cls, "not supported")


# -- ambiguous and invalid: one line through the CLI ------------------------------------------------


def _ambiguous_or_invalid(tmp_path, model, case):
    p = tmp_path / f"{case}.pt"
    if case == "no_grid":
        torch.save(model.state_dict(), p)
        return [p], ["missing the data grid", "--grid NLATxNLON"]
    if case == "cut_modes_no_scale_factor":
        torch.save(sfno(hard_thresholding_fraction=0.7).state_dict(), p)
        return [p, "--grid", "32x64"], ["--scale-factor", "L=7"]
    if case == "dropout":
        torch.save(sfno(drop_rate=0.1).state_dict(), p)
        return [p, "--grid", "32x64"], ["drop_rate", "dropout.pt.json"]
    if case == "grid_contradicts_layer_norm":
        torch.save(sfno(normalization_layer="layer_norm").state_dict(), p)
        return [p, "--grid", "33x64"], ["contradicts", "layer norm"]
    if case == "bad_grid_text":
        torch.save(model.state_dict(), p)
        return [p, "--grid", "32by64"], ["--grid", "NLATxNLON"]
    if case == "bad_grid_type":
        torch.save(model.state_dict(), p)
        return [p, "--grid", "32x64:healpix"], ["grid type"]
    if case == "bad_scale_factor":
        torch.save(model.state_dict(), p)
        return [p, "--grid", "32x64", "--scale-factor", "0"], ["--scale-factor", ">= 1"]
    if case == "too_many_modes":
        torch.save(model.state_dict(), p)
        return [p, "--grid", "16x32", "--scale-factor", "2"], ["L=10", "exceed"]
    if case == "contradicts_sidecar":
        _save_form(model, "sidecar", p)
        return [p, "--grid", "64x128"], ["contradicts", "sidecar"]
    if case == "contradicts_format_file":
        return [None, "--scale-factor", "2"], ["contradicts", "the checkpoint declares"]
    if case == "two_sfnos":
        sd = model.state_dict()
        torch.save({"state_dict": {**{f"model.{k}": v for k, v in sd.items()},
                                   **{f"ema_model.{k}": v for k, v in sd.items()}}, "epoch": 1}, p)
        return [p, "--grid", "32x64"], ["2 SFNOs", "'ema_model.'"]
    if case == "not_state_to_state":
        torch.save(sfno(in_chans=5).state_dict(), p)
        return [p, "--grid", "32x64"], ["in_chans=5", "state-to-state"]
    if case == "real_filters":
        sd = dict(model.state_dict())
        sd["blocks.0.global_conv.weight"] = sd["blocks.0.global_conv.weight"].real.contiguous()
        torch.save(sd, p)
        return [p, "--grid", "32x64"], ["complex"]
    if case == "filters_not_numbered":
        sd = {k.replace("blocks.1.", "blocks.2."): v for k, v in model.state_dict().items()}
        torch.save(sd, p)
        return [p, "--grid", "32x64"], ["numbered"]
    if case == "extra_key":
        sd = {**model.state_dict(), "blocks.0.extra.weight": torch.zeros(2)}
        torch.save(sd, p)
        return [p, "--grid", "32x64"], ["inferred from it", "unexpected: blocks.0.extra.weight"]
    raise AssertionError(case)


CASES = ["no_grid", "cut_modes_no_scale_factor", "dropout", "grid_contradicts_layer_norm", "bad_grid_text",
         "bad_grid_type", "bad_scale_factor", "too_many_modes", "contradicts_sidecar", "contradicts_format_file",
         "two_sfnos", "not_state_to_state", "real_filters", "filters_not_numbered", "extra_key"]


@pytest.mark.parametrize("case", CASES)
def test_ambiguous_and_invalid_cases_are_one_line_cli_errors(tmp_path, model, case):
    args, needles = _ambiguous_or_invalid(tmp_path, model, case)
    path, rest = args[0], [str(a) for a in args[1:]]
    head = [] if path is None else [path]
    assert_one_line_error(run_cli("info", *head, *rest), *needles)
    out = tmp_path / "out"
    assert_one_line_error(run_cli("grad-by-l", *head, *rest, "--out", out, "--n-samples", "1", "--quiet"), *needles)
    assert not (out / "result.json").exists()


def test_cli_probes_a_wrapped_state_dict_and_shows_the_inference(tmp_path, model):
    path = _save_form(model, "model_state", tmp_path / "w.pt")
    r = run_cli("info", path, "--grid", "32x64")
    assert r.returncode == 0, r.stderr
    for needle in ("constructor inferred", "'model_state'", "inferred", "assumed", "activation_function", "--grid"):
        assert needle in r.stdout, needle
    r = run_cli("grad-by-l", path, "--grid", "32x64", "--out", tmp_path / "o", "--n-samples", "1")
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in r.stdout and "deterministic model" in r.stdout and "--n-ensemble 1" in r.stdout
    res = json.loads((tmp_path / "o" / "result.json").read_text())
    assert res["provenance"]["data"]["synthetic"] is True
    r = run_cli("sweep", path, "--grid", "32x64", "--gamma", "0.5", "--out", tmp_path / "s", "--n-samples", "1",
                "--json")
    assert r.returncode == 0, r.stderr
    r = run_cli("coupling", path, "--grid", "32x64", "--n-bands", "2", "--out", tmp_path / "c", "--n-samples", "1",
                "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["provenance"]["data"]["synthetic"] is True


def test_fme_options_and_th_options_stay_with_their_family(tmp_path, model):
    from specprobe.models import fme
    from specprobe.models.options import LoadOptions

    with pytest.raises(CheckpointError, match="--grid applies to torch-harmonics state dicts"):
        fme.load(tmp_path / "x.tar", {"stepper": {}}, options=LoadOptions.from_kwargs(grid="32x64"))
    path = _save_form(model, "plain", tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="time_start apply to fme checkpoints only"):
        load_target(path, grid="32x64", time_start="2000-01-01")
    assert describe_checkpoint(path, grid="32x64")["constructor_args"]["img_size"] == [32, 64]


def _mutations(sd):
    """Every key deleted, grown by one along its first axis, and flipped real <-> complex."""
    for key, value in sd.items():
        yield f"drop {key}", {k: v for k, v in sd.items() if k != key}
        grown = torch.cat([value, value[:1]]) if value.ndim else value.reshape(1)
        yield f"grow {key}", {**sd, key: grown}
        flipped = value.real.contiguous() if value.is_complex() else torch.complex(value, torch.zeros_like(value))
        yield f"flip {key}", {**sd, key: flipped}


def test_every_single_mutation_of_a_state_dict_is_refused_in_one_line(tmp_path):
    """One key dropped, grown or flipped real <-> complex leaves weights no SFNO constructor matches
    exactly: inference + strict loading must notice every one, never load a near miss."""
    original = sfno(normalization_layer="layer_norm", bias=True)
    n = 0
    for what, sd in _mutations(original.state_dict()):
        torch.save(sd, tmp_path / "m.pt")
        with pytest.raises(SpecprobeError) as e:
            load_target(tmp_path / "m.pt", grid="32x64")
        assert "\n" not in str(e.value) and str(tmp_path / "m.pt") in str(e.value), what
        n += 1
    assert n == 3 * len(original.state_dict())
