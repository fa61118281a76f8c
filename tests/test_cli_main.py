"""The main job end to end on the bundled model: acceptance numbers, files, JSON, reproducibility,
and compare / sweep / series / coupling on real checkpoints."""

import json
import math
import shutil
import subprocess
import sys

import pytest

from specprobe.models.registry import default_checkpoint

QUICK = ["--n-samples", "4", "--batch-size", "2"]


def cli(*args, check=True):
    """In-process: one torch import for the whole module (the default run below is a real process)."""
    from typer.testing import CliRunner

    from specprobe.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    if check:
        assert r.exit_code == 0, (r.stderr, r.exception)
    return r


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    # A real process, no checkpoint, no options: the README's main job.
    r = subprocess.run([sys.executable, "-m", "specprobe", "grad-by-l", "--out", str(out)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out, r


def test_default_run_shows_the_decline_and_the_lift(default_run):
    out, r = default_run
    res = json.loads((out / "result.json").read_text())
    base = res["stats"]["baseline"]
    assert base["spearman_rho"] < -0.5 and base["decline_ratio"] > 2  # acceptance on the bundled default
    boost = res["stats"]["boost"]["per_sample(gamma=0.5,eps_frac=0.02)"]
    assert boost["high"] > boost["low"]
    assert "raw gradient falls" in r.stdout and "lifts the raw high-band gradient" in r.stdout
    # the verdict leads with what changes under the optimizer the model was trained with (Adam)
    verdict_start = r.stdout.index("under Adam (the optimizer this checkpoint was trained with)")
    assert verdict_start < r.stdout.index("raw gradient falls")
    assert "steady-state Adam step" in r.stdout and "direction: cos" in r.stdout
    view = res["stats"]["optimizer_view"]
    assert view["optimizer"]["name"] == "Adam"
    ps = view["variants"]["per_sample(gamma=0.5,eps_frac=0.02)"]
    assert 0.5 < ps["adam_step_ratio"]["high"] < 2 < boost["high"]  # Adam divides most of the raw boost away
    assert ps["cosine"]["low"] < ps["cosine"]["high"] <= 1
    for name in ("grad_by_l.png", "whitening_factors.png", "gsnr_by_l.png", "direction_by_l.png"):
        assert (out / name).stat().st_size > 10_000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_result_json_schema(default_run):
    out, _ = default_run
    res = json.loads((out / "result.json").read_text())
    assert res["schema"] == "specprobe.grad-by-l/1"
    for key in ("provenance", "degrees", "variants", "grad_by_l", "gsnr_by_l", "whitening_factor_by_l",
                "target_power_by_l", "es_skill_spread_by_l", "stats"):
        assert key in res, key
    prov = res["provenance"]
    for key in ("checkpoint", "grid", "lmax", "sht", "power_convention", "library_versions", "device", "seed",
                "data", "loss", "command_line", "utc_time", "spectral_parameters"):
        assert key in prov, key
    assert len(prov["checkpoint"]["sha256"]) == 64 and prov["checkpoint"]["size_bytes"] > 0
    assert [v["name"] for v in res["variants"]] == ["baseline", "per_sample(gamma=0.5,eps_frac=0.02)"]
    L = len(res["degrees"])
    assert L == prov["lmax"] and len(res["grad_by_l"]["baseline"]["total"]) == L
    assert set(res["whitening_factor_by_l"]["per_sample(gamma=0.5,eps_frac=0.02)"]["h"]) == {"mean", "p10", "p90"}
    assert set(res["stats"]["boost"]["per_sample(gamma=0.5,eps_frac=0.02)"]) >= {"low", "high"}
    assert all(len(v) == L for v in res["gsnr_by_l"].values())


def test_json_flag_prints_only_the_result(tmp_path):
    r = cli("grad-by-l", "--json", "--out", tmp_path, *QUICK)
    assert json.loads(r.stdout)["schema"] == "specprobe.grad-by-l/1"


def test_same_seed_gives_byte_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        cli("grad-by-l", "--out", tmp_path / "run", "--no-timestamp", "--quiet", *QUICK)
        shutil.copytree(tmp_path / "run", out)
    for name in ("result.json", "grad_by_l.png", "whitening_factors.png", "gsnr_by_l.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert "utc_time" not in json.loads((a / "result.json").read_text())["provenance"]


def test_info_describes_the_bundled_model():
    r = cli("info", "--json")
    d = json.loads(r.stdout)
    assert d["family"] == "torch-harmonics-sfno"
    assert [p["degree_axis"] for p in d["spectral_parameters"]] == [2, 2, 2, 2]
    assert d["training"]["steps"] > 0
    assert "global_conv" in cli("info").stdout


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    """Same shape and format as the bundled model, fresh weights: the reference for "trained"."""
    import torch

    from specprobe.models.th.checkpoint import build_model, read_checkpoint, save_checkpoint

    spec = read_checkpoint(default_checkpoint())
    torch.manual_seed(123)
    model = build_model(spec)  # loads the bundled state dict...
    fresh = type(model.sfno)(**{k: tuple(v) if k == "img_size" else v for k, v in spec.args.items()})
    model.sfno.load_state_dict(fresh.state_dict())  # ...then replace it with a fresh initialisation
    path = tmp_path_factory.mktemp("untrained") / "untrained.pt"
    save_checkpoint(path, model, channel_names=spec.channel_names, units=spec.units, means=spec.means,
                    stds=spec.stds, data_grid=spec.grid["type"], training={"steps": 0})
    return path


def test_compare_orders_trained_above_untrained(tmp_path, default_run, untrained_checkpoint):
    out_u = tmp_path / "u"
    cli("grad-by-l", untrained_checkpoint, "--out", out_u, "--quiet")
    r = cli("compare", default_run[0] / "result.json", out_u / "result.json", "--labels", "trained,untrained",
            "--json", "--out", tmp_path / "cmp.png")
    rows = {row["label"]: row for row in json.loads(r.stdout)}
    assert rows["trained"]["decline_ratio"] > rows["untrained"]["decline_ratio"]
    assert rows["trained"]["epoch"] == json.loads(cli("info", "--json").stdout)["training"]["steps"]
    assert (tmp_path / "cmp.png").stat().st_size > 10_000
    ps = "per_sample(gamma=0.5,eps_frac=0.02)"
    assert rows["trained"]["optimizer"] == "Adam" and 0 < rows["trained"]["optimizer_view"][ps]["direction_cosine"]["low"] < 1
    r = cli("compare", default_run[0] / "result.json", out_u / "result.json", "--normalize", "low-band",
            "--out", tmp_path / "cmp.svg")
    assert "decline" in r.stdout and "Adam high" in r.stdout


def test_sweep_boost_ratio_grows_with_gamma(tmp_path):
    r = cli("sweep", "--gamma", "0.2,0.5,0.8,1", "--eps-frac", "0.02", "--out", tmp_path, "--json", *QUICK)
    sweep = json.loads(r.stdout)
    assert sweep["schema"] == "specprobe.sweep/1"
    ratios = [s["measured_boost"]["high"] / s["measured_boost"]["low"]
              for s in sorted(sweep["settings"], key=lambda s: s["gamma"])]
    assert all(b >= a for a, b in zip(ratios, ratios[1:])), ratios
    assert all(s["predicted_boost"]["high"] > 1 for s in sweep["settings"])
    # stronger whitening re-aims the low-degree update more (measured on this model with 16 samples: per-layer cosines 0.75-0.81 at gamma 0.5, 0.37-0.46 at 1)
    cos_low = [s["direction_cosine"]["low"] for s in sorted(sweep["settings"], key=lambda s: s["gamma"])]
    assert all(b < a for a, b in zip(cos_low, cos_low[1:])), cos_low
    assert sweep["optimizer"]["name"] == "Adam"
    assert (tmp_path / "sweep.png").exists() and (tmp_path / "sweep.json").exists()


def test_series_of_three_checkpoints(tmp_path, untrained_checkpoint):
    import torch

    from specprobe.models.safe_load import load_checkpoint_file

    mid = load_checkpoint_file(default_checkpoint())
    bundled_steps = mid["training"]["steps"]
    mid["training"] = {**mid["training"], "steps": bundled_steps // 2}
    torch.save(mid, tmp_path / "mid.pt")
    r = cli("grad-by-l", untrained_checkpoint, tmp_path / "mid.pt", default_checkpoint(), "--out", tmp_path / "s",
            "--json", *QUICK)
    summary = json.loads(r.stdout)
    assert [row["epoch"] for row in summary["rows"]] == [0, bundled_steps // 2, bundled_steps]
    assert len(list((tmp_path / "s").glob("*/result.json"))) == 3
    assert (tmp_path / "s" / "series.png").exists()
    assert all(0 < row["high_band_share"] < 1 for row in summary["rows"])
    assert all(0 < row["optimizer_view"]["per_sample(gamma=0.5,eps_frac=0.02)"]["adam_step_ratio"]["high"]
               for row in summary["rows"])


def test_coupling_command(tmp_path):
    r = cli("coupling", "--out", tmp_path, "--json", "--n-samples", "2", "--n-bands", "4")
    c = json.loads(r.stdout)
    assert c["schema"] == "specprobe.coupling/1" and len(c["loss_bands"]) == 4
    m = c["variants"]["baseline"]["matrix"]
    assert len(m) == 4 and all(len(row) == len(c["degrees"]) for row in m)
    assert all(math.isfinite(v) for row in m for v in row)
    assert (tmp_path / "coupling.png").exists()


def test_coupling_identity_on_the_bundled_model():
    import torch

    from specprobe.models.registry import load_target
    from specprobe.probing.coupling import coupling_gradients

    sums, *_ = coupling_gradients(load_target(None), variants=["per_sample"], n_samples=1, n_ensemble=2, n_bands=4)
    for s in sums.values():
        for k, full in enumerate(s["full"]):
            total = sum(band[k] for band in s["bands"])
            torch.testing.assert_close(total, full, rtol=1e-4, atol=1e-6 * float(full.abs().max()))


def test_compare_takes_a_model_whose_loss_has_more_degrees_than_its_filters(tmp_path, default_run):
    """A torch-harmonics SFNO at scale_factor 3 filters 11 degrees on its internal grid while its loss SHT has
    32: the whitening factors are drawn on the loss degrees (compare crashed on the length mismatch)."""
    import torch
    from torch_harmonics.examples.models import SphericalFourierNeuralOperator

    torch.manual_seed(0)
    model = SphericalFourierNeuralOperator(img_size=(32, 64), in_chans=3, out_chans=3, embed_dim=8, num_layers=1)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    cli("grad-by-l", tmp_path / "plain.pt", "--grid", "32x64", "--out", tmp_path / "p", "--quiet", *QUICK)
    result = json.loads((tmp_path / "p" / "result.json").read_text())
    factor = next(iter(next(iter(result["whitening_factor_by_l"].values())).values()))["mean"]
    assert len(factor) > len(result["degrees"])  # the case itself
    cli("compare", default_run[0] / "result.json", tmp_path / "p" / "result.json", "--out", tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").stat().st_size > 10_000
