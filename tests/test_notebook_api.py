"""The notebook API (issue 12): load_result on every file the real CLI writes, plot() / table() /
to_xarray() against the JSON, --netcdf read back, --wandb offline read back, the example and the
README snippet in fresh interpreters."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specprobe.models.registry import default_checkpoint

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["--whitening", "per_sample", "--whitening", "per_sample:gamma=1"]


def cli(*args):
    from typer.testing import CliRunner

    from specprobe.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (r.stderr, r.exception)
    return r


def nan(values):
    return np.array([math.nan if v is None else v for v in values], dtype=float)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each command once on the bundled model, small, with --netcdf, and --wandb offline where logged."""
    out = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.delenv("WANDB_DIR", raising=False)
    mp.chdir(out)  # nothing W&B might write lands in the repository
    try:
        g = cli("grad-by-l", "--n-samples", "2", *VARIANTS, "--out", out / "g", "--netcdf", "--wandb=probe-test")
        import torch

        from specprobe.models.safe_load import load_checkpoint_file

        half = load_checkpoint_file(default_checkpoint())  # the bundled weights, labelled as half-trained
        steps = half["training"]["steps"]
        half["training"] = {**half["training"], "steps": steps // 2}
        torch.save(half, out / "half.pt")
        cli("grad-by-l", out / "half.pt", default_checkpoint(), "--n-samples", "2", "--out", out / "ser",
            "--netcdf", "--wandb=series-test", "--quiet")
        cli("sweep", "--gamma", "0.5,1", "--n-samples", "2", "--out", out / "sw", "--netcdf")
        cli("coupling", "--n-samples", "2", "--batch-size", "2", "--n-bands", "4", "--out", out / "c", "--netcdf")
    finally:
        mp.undo()
    return {"root": out, "grad_stdout": g.stdout, "epochs": [steps // 2, steps]}


def read(path):
    return json.loads(Path(path).read_text())


def line(fig, label_start, ax=0):
    found = [ln for ln in fig.axes[ax].get_lines() if str(ln.get_label()).startswith(label_start)]
    assert len(found) == 1, [ln.get_label() for ln in fig.axes[ax].get_lines()]
    return np.asarray(found[0].get_ydata(), dtype=float)


# --- load_result -------------------------------------------------------------------------------

def test_load_result_knows_every_file_kind(runs):
    import specprobe

    root = runs["root"]
    kinds = {"g/result.json": "grad-by-l", "sw/sweep.json": "sweep", "ser/series.json": "series",
             "c/coupling.json": "coupling"}
    for rel, kind in kinds.items():
        assert specprobe.load_result(root / rel).kind == kind
        assert specprobe.load_result(Path(root / rel).parent).kind == kind  # the --out directory
    assert "grad_by_l" in repr(specprobe.load_result(root / "g"))


def test_load_result_errors_are_one_line(tmp_path):
    import specprobe
    from specprobe.errors import SpecprobeError

    (tmp_path / "x.json").write_text(json.dumps({"schema": "someone-else/1"}))
    for source, words in ((tmp_path / "x.json", "unknown result schema"), (tmp_path, "no specprobe result files"),
                          (tmp_path / "missing.json", "no such result file")):
        with pytest.raises(SpecprobeError, match=words) as e:
            specprobe.load_result(source)
        assert "\n" not in str(e.value)


# --- grad-by-l ---------------------------------------------------------------------------------

def test_plot_draws_the_json_values(runs):
    import specprobe
    from matplotlib.figure import Figure

    d = read(runs["root"] / "g/result.json")
    r = specprobe.load_result(runs["root"] / "g/result.json")
    # no Adam state in a th checkpoint; direction_by_l because whitened variants were probed;
    # predictability_by_l because the bundled model has an input state to measure the change from
    assert r.figure_names == ["grad_by_l", "whitening_factors", "gsnr_by_l", "direction_by_l", "predictability_by_l"]
    fig = r.plot("grad_by_l")
    assert isinstance(fig, Figure)
    for v in d["variants"]:
        np.testing.assert_array_equal(line(fig, f"{v['name']} (total"), nan(d["grad_by_l"][v["name"]]["total"]))
    layer_lines = [ln for ln in fig.axes[0].get_lines() if str(ln.get_label()).startswith("_")]
    assert len(layer_lines) == len(d["variants"]) * len(d["grad_by_l"]["baseline"]["layers"])
    gsnr = r.plot("gsnr_by_l")
    np.testing.assert_array_equal(line(gsnr, "baseline"), nan(d["gsnr_by_l"]["baseline"]))
    wf = r.plot("whitening_factors")
    name = d["variants"][2]["name"]
    np.testing.assert_array_equal(line(wf, f"v, {name}"), nan(d["whitening_factor_by_l"][name]["v"]["mean"]))
    np.testing.assert_array_equal(line(wf, "h target", ax=1), nan(d["target_power_by_l"]["h"])[1:])
    direction = r.plot("direction_by_l")
    for v in d["variants"][1:]:
        np.testing.assert_array_equal(line(direction, v["name"]), nan(d["direction_cosine_by_l"][v["name"]]["total"]))
        np.testing.assert_array_equal(line(direction, f"{v['name']}: steady-state", ax=1),
                                      nan(d["adam_step_by_l"][v["name"]]["ratio"]["total"]))


def test_plot_is_the_figure_the_cli_wrote(runs):
    import specprobe
    from specprobe.report.figures import figure_bytes

    r = specprobe.load_result(runs["root"] / "g")
    for name in r.figure_names:
        fig = r.plot(name)
        assert figure_bytes(fig, "png") == (runs["root"] / "g" / f"{name}.png").read_bytes(), name
        assert fig._repr_png_() == (runs["root"] / "g" / f"{name}.png").read_bytes()  # what a notebook shows


def test_plot_rejects_an_unknown_name(runs):
    import specprobe
    from specprobe.errors import SpecprobeError

    with pytest.raises(SpecprobeError, match="expected one of grad_by_l, whitening_factors, gsnr_by_l"):
        specprobe.load_result(runs["root"] / "g").plot("sweep")


def test_table_is_what_the_cli_printed(runs):
    import specprobe
    from rich.console import Console

    console = Console(width=100, record=True, file=open("/dev/null", "w"))
    console.print(specprobe.load_result(runs["root"] / "g").table())
    text = console.export_text()
    assert "Raw gradient of the spectral filter weights by degree band" in text and "gradient falls" in text
    assert text.strip() in runs["grad_stdout"]
    bundle = specprobe.load_result(runs["root"] / "g").table()._repr_mimebundle_(include=None, exclude=None)
    assert "gradient falls" in bundle["text/plain"]  # a Jupyter cell displays it


def test_to_xarray_dims_coords_attrs_and_values(runs):
    import specprobe

    d = read(runs["root"] / "g/result.json")
    ds = specprobe.load_result(runs["root"] / "g/result.json").to_xarray()
    assert {"variant", "degree", "channel", "layer"} <= set(ds.dims)
    assert list(ds.variant.values) == [v["name"] for v in d["variants"]]
    assert list(ds.degree.values) == d["degrees"] and list(ds.channel.values) == d["channels"]
    layers = list(d["grad_by_l"]["baseline"]["layers"])
    assert list(ds.layer.values) == layers
    np.testing.assert_array_equal(ds.wavelength_km.values[1:], d["wavelength_km"][1:])
    assert ds.wavelength_km.attrs["units"] == "km"
    for name, var in ds.data_vars.items():
        assert var.attrs.get("long_name") and "units" in var.attrs, name
    for v in ds.variant.values:
        np.testing.assert_array_equal(ds.grad_by_l.sel(variant=v).values, nan(d["grad_by_l"][v]["total"]))
        np.testing.assert_array_equal(ds.gsnr_by_l.sel(variant=v).values, nan(d["gsnr_by_l"][v]))
        for p in layers:
            np.testing.assert_array_equal(ds.grad_by_l_layers.sel(variant=v, layer=p).values,
                                          nan(d["grad_by_l"][v]["layers"][p]))
            assert float(ds.layer_decline_ratio.sel(variant=v, layer=p)) == d["layer_stats"][v][p]["decline_ratio"]
        assert float(ds.decline_ratio.sel(variant=v)) == d["stats"][v]["decline_ratio"]
        for b in d["bands"]:
            assert float(ds.band_mean.sel(variant=v, band=b["name"])) == d["stats"][v]["band_means"][b["name"]]
    v = d["variants"][1]["name"]
    assert float(ds.whitening_gamma.sel(variant=v)) == d["variants"][1]["whitening"]["exponent"]
    for ch in d["channels"]:
        np.testing.assert_array_equal(ds.whitening_factor_by_l_p90.sel(variant=v, channel=ch).values,
                                      nan(d["whitening_factor_by_l"][v][ch]["p90"]))
        assert np.isnan(ds.whitening_factor_by_l_mean.sel(variant="baseline", channel=ch)).all()
        np.testing.assert_array_equal(ds.es_skill_spread_by_l_spread.sel(channel=ch).values,
                                      nan(d["es_skill_spread_by_l"][ch]["spread"]))
    assert ds.attrs["schema"] == "specprobe.grad-by-l/1"
    assert json.loads(ds.attrs["provenance"])["checkpoint"]["sha256"] == d["provenance"]["checkpoint"]["sha256"]


def test_to_xarray_takes_per_degree_fields_it_was_not_told_about(runs):
    """A field added to ProbeResult later ({variant: {"layers": {param: [per l]}}}) needs no code here."""
    import dataclasses

    from specprobe.probing.result import ProbeResult
    from specprobe.report.dataset import grad_by_l_dataset

    d = read(runs["root"] / "g/result.json")
    base = ProbeResult.from_dict(d)
    Extended = dataclasses.make_dataclass(
        "Extended", [("future_cosine_by_l", dict, dataclasses.field(default_factory=dict)),
                     ("future_step_by_l", dict, dataclasses.field(default_factory=dict))], bases=(ProbeResult,))
    layers = list(d["grad_by_l"]["baseline"]["layers"])
    cos = {v: {"total": [0.5] * 64, "layers": {p: [i / 100 + k for i in range(64)] for k, p in enumerate(layers)}}
           for v in base.variant_names}
    switch = {v: [float(i) for i in range(64)] for v in base.variant_names}
    ext = Extended(**{f.name: getattr(base, f.name) for f in dataclasses.fields(ProbeResult)},
                   future_cosine_by_l=cos, future_step_by_l=switch)
    ds = grad_by_l_dataset(ext)
    assert ds.future_cosine_by_l_layers.dims == ("variant", "layer", "degree")
    np.testing.assert_array_equal(ds.future_cosine_by_l_layers.sel(variant="baseline", layer=layers[2]),
                                  cos["baseline"]["layers"][layers[2]])
    assert ds.future_cosine_by_l.dims == ("variant", "degree") and float(ds.future_cosine_by_l[0, 3]) == 0.5
    np.testing.assert_array_equal(ds.future_step_by_l.sel(variant=base.variant_names[-1]), switch["baseline"])


def test_to_xarray_has_the_optimizer_view(runs):
    """direction_cosine_by_l and adam_step_by_l (issue 10.1) in the Dataset: per variant, layer, degree,
    per non-spectral group, with the JSON's values."""
    import specprobe

    d = read(runs["root"] / "g/result.json")
    ds = specprobe.load_result(runs["root"] / "g/result.json").to_xarray()
    whitened = d["variants"][2]["name"]
    cos, step = d["direction_cosine_by_l"][whitened], d["adam_step_by_l"][whitened]
    layer = next(iter(cos["layers"]))
    assert ds.direction_cosine_by_l.dims == ("variant", "degree")
    np.testing.assert_array_equal(ds.direction_cosine_by_l.sel(variant=whitened), nan(cos["total"]))
    assert ds.direction_cosine_by_l_layers.dims == ("variant", "layer", "degree")
    np.testing.assert_array_equal(ds.direction_cosine_by_l_layers.sel(variant=whitened, layer=layer),
                                  nan(cos["layers"][layer]))
    assert float(ds.direction_cosine_by_l_groups_all.sel(variant=whitened)) == cos["groups"]["all"]
    np.testing.assert_array_equal(ds.adam_step_by_l.sel(variant=whitened), nan(step["total"]))
    assert ds.adam_step_by_l_ratio_layers.dims == ("variant", "layer", "degree")
    np.testing.assert_array_equal(ds.adam_step_by_l_ratio.sel(variant=whitened), nan(step["ratio"]["total"]))
    assert "steady-state adam step" in ds.adam_step_by_l.attrs["convention"].lower()
    assert float(ds.optimizer_lr) == d["optimizer"]["lr"]


def test_netcdf_files_read_back_equal(runs):
    import specprobe
    import xarray as xr

    root = runs["root"]
    for rel, nc in (("g/result.json", "g/result.nc"), ("sw/sweep.json", "sw/sweep.nc"),
                    ("ser/series.json", "ser/series.nc"), ("c/coupling.json", "c/coupling.nc")):
        with xr.open_dataset(root / nc) as back:
            xr.testing.assert_identical(back.load(), specprobe.load_result(root / rel).to_xarray())
    assert not list(root.glob("**/.*.tmp")), "atomic writes leave no temporary files"


# --- sweep, series, coupling -------------------------------------------------------------------

def test_sweep_result(runs):
    import specprobe

    d = read(runs["root"] / "sw/sweep.json")
    r = specprobe.load_result(runs["root"] / "sw")
    rows = sorted(d["settings"], key=lambda s: s["gamma"])
    np.testing.assert_array_equal(line(r.plot(), "high band, eps_frac=0.02"),
                                  [1.0] + [s["measured_boost"]["high"] for s in rows])
    ds = r.to_xarray()
    for s in d["settings"]:
        assert float(ds.gamma.sel(variant=s["name"])) == s["gamma"]
        for b in ("low", "high"):
            assert float(ds.measured_boost.sel(variant=s["name"], band=b)) == s["measured_boost"][b]
            assert float(ds.predicted_boost.sel(variant=s["name"], band=b)) == s["predicted_boost"][b]
            assert float(ds.adam_step_ratio.sel(variant=s["name"], band=b)) == s["adam_step_ratio"][b]
            assert float(ds.direction_cosine.sel(variant=s["name"], band=b)) == s["direction_cosine"][b]
        assert float(ds.direction_cosine_non_spectral.sel(variant=s["name"])) == s["direction_cosine_non_spectral"]
    np.testing.assert_array_equal(ds.grad_by_l.sel(variant="baseline"),
                                  nan(d["probe"]["grad_by_l"]["baseline"]["total"]))
    # the bundled model: the Adam view is shown too, then the probe's predictability lines
    sweep_table, optimizer_table, *predictability = r.table().renderables
    assert predictability and all("predictab" in str(t) or "energy-score weight" in str(t) for t in predictability)
    assert r.probe.plot("grad_by_l").axes and "Whitening sweep" in str(sweep_table.title)
    assert "Under the optimizer" in str(optimizer_table.title)


def test_series_result(runs):
    import specprobe

    d = read(runs["root"] / "ser/series.json")
    r = specprobe.load_result(runs["root"] / "ser")
    assert [row["epoch"] for row in d["rows"]] == runs["epochs"]
    np.testing.assert_array_equal(line(r.plot("series"), ""), [row["high_band_share"] for row in d["rows"]])
    assert len(r.results) == 2
    ds = r.to_xarray()
    assert list(ds.epoch.values) == runs["epochs"] and ds.grad_by_l.dims == ("checkpoint", "variant", "degree")
    for i, row in enumerate(d["rows"]):
        each = read(runs["root"] / "ser" / row["result"])
        np.testing.assert_array_equal(ds.grad_by_l.isel(checkpoint=i).sel(variant="baseline"),
                                      nan(each["grad_by_l"]["baseline"]["total"]))
        assert float(ds.high_band_share[i]) == row["high_band_share"]
        assert row["optimizer_view"]
        for v, view in row["optimizer_view"].items():  # the optimizer view per checkpoint, variant and band
            assert float(ds.series_adam_step_ratio.isel(checkpoint=i).sel(variant=v, band="high")) == \
                view["adam_step_ratio"]["high"]
            assert float(ds.series_direction_cosine.isel(checkpoint=i).sel(variant=v, band="low")) == \
                view["direction_cosine"]["low"]
        sha = json.loads(str(ds.provenance[i].values))["checkpoint"]["sha256"]
        assert sha == each["provenance"]["checkpoint"]["sha256"]
    assert "Series" in str(r.table().title)


def test_coupling_result(runs):
    import specprobe

    d = read(runs["root"] / "c/coupling.json")
    r = specprobe.load_result(runs["root"] / "c/coupling.json")
    fig = r.plot("coupling")
    for ax, name in zip(fig.axes, d["variants"]):
        image = np.asarray(ax.get_images()[0].get_array(), dtype=float)
        m = np.array(d["variants"][name]["matrix"], dtype=float)
        np.testing.assert_array_equal(image, np.where(m > 0, m, np.nan))
    ds = r.to_xarray()
    np.testing.assert_array_equal(ds.coupling.sel(variant="baseline"), d["variants"]["baseline"]["matrix"])
    assert list(ds.loss_band_lo.values) == [b["lo"] for b in d["loss_bands"]]
    assert len(r.table().rows) == 4


# --- W&B ---------------------------------------------------------------------------------------

def test_wandb_run_holds_figures_tables_curves_summary_and_provenance(runs):
    from PIL import Image
    from wandb_offline import offline_runs

    import specprobe
    from specprobe.report.tables import band_rows

    d = read(runs["root"] / "g/result.json")
    (run,) = offline_runs(runs["root"] / "g")
    assert run.project == "probe-test"
    assert run.config["checkpoint"]["sha256"] == d["provenance"]["checkpoint"]["sha256"]
    assert run.config["specprobe_kind"] == "grad-by-l"
    (logged,) = [h for h in run.history if "band_table" in h]
    for name in ("grad_by_l", "whitening_factors", "gsnr_by_l"):
        image = np.asarray(Image.open(run.media(logged[f"figures/{name}"])))
        assert (image == np.asarray(Image.open(runs["root"] / "g" / f"{name}.png"))).all(), name
    columns, rows = band_rows(specprobe.load_result(runs["root"] / "g").data)
    table = run.table(logged["band_table"])
    assert table["columns"] == columns and table["data"] == rows
    curves = run.table(logged["curves/variant"])
    col = curves["columns"].index("grad_by_l")
    base = [row for row in curves["data"] if row[0] == "baseline"]
    assert [row[1] for row in base] == d["degrees"]
    assert [row[col] for row in base] == d["grad_by_l"]["baseline"]["total"]
    per_layer = run.table(logged["curves/variant_layer"])
    assert {row[1] for row in per_layer["data"]} == set(d["grad_by_l"]["baseline"]["layers"])
    assert "plots/grad_by_l" in run.config["_wandb"]["visualize"]
    for v in d["variants"]:
        assert run.summary[f"{v['name']}/decline_ratio"] == d["stats"][v["name"]]["decline_ratio"]
    strongest = d["variants"][2]["name"]
    assert run.summary[f"{strongest}/boost/high"] == d["stats"]["boost"][strongest]["high"]


def test_wandb_series_logs_one_step_per_checkpoint_epoch(runs):
    from wandb_offline import offline_runs

    d = read(runs["root"] / "ser/series.json")
    (run,) = offline_runs(runs["root"] / "ser")
    steps = [h for h in run.history if "high_band_share" in h]
    assert [h["_step"] for h in steps] == runs["epochs"]
    assert [h["high_band_share"] for h in steps] == [row["high_band_share"] for row in d["rows"]]
    assert [h["epoch"] for h in steps] == runs["epochs"]
    assert all("figures/grad_by_l" in h and "curves/variant" in h for h in steps)
    assert "figures/series" in steps[-1] and "series_table" in steps[-1]


def test_bare_wandb_option_means_the_default_project(tmp_path):
    from specprobe.cli import _wandb_bare

    assert _wandb_bare(["grad-by-l", "--wandb"]) == ["grad-by-l", "--wandb=specprobe"]
    assert _wandb_bare(["grad-by-l", "--wandb", "--quiet"])[1] == "--wandb=specprobe"
    assert _wandb_bare(["grad-by-l", "--wandb", "mine", "--quiet"]) == ["grad-by-l", "--wandb", "mine", "--quiet"]
    assert _wandb_bare(["grad-by-l", "--wandb", str(tmp_path)]) == ["grad-by-l", "--wandb=specprobe", str(tmp_path)]


# --- the example and the README, in fresh interpreters -------------------------------------------

def test_examples_notebook_runs(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook.py"), str(tmp_path)], capture_output=True,
                         text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "high-band boost of per_sample(gamma=1,eps_frac=0.02)" in out.stdout
    assert {p.name for p in tmp_path.glob("*.png")} == {"grad_by_l.png", "whitening_factors.png", "gsnr_by_l.png",
                                                        "direction_by_l.png", "predictability_by_l.png"}
    assert (tmp_path / "result.nc").stat().st_size > 0


def test_readme_python_api_snippet_runs_twice(tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "load_result" in snippet and "to_xarray" in snippet and "plot(" in snippet
    code = f"exec(compile({snippet!r}, 'README', 'exec'))\n" * 2 + "print('ok')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_top_level_import_stays_light_with_load_result():
    code = ("import sys, specprobe; assert callable(specprobe.load_result); "
            "print(sorted(m for m in ('torch', 'matplotlib', 'xarray', 'wandb', 'fme') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fme_checkpoint_adam_state_figure_and_dataset(tmp_path_factory):
    """An fme ckpt.tar from fme's own trainer carries Adam state: plot("adam_by_l") and its variables."""
    from conftest import require

    require("fme")
    import specprobe
    from fme_fixtures import trained_run

    base = tmp_path_factory.mktemp("fme_notebook")
    ckpt = trained_run(str(base)) / "training_checkpoints" / "ckpt.tar"
    cli("grad-by-l", ckpt, "--n-samples", "1", "--out", base / "out", "--quiet", "--netcdf")
    d = read(base / "out" / "result.json")
    r = specprobe.load_result(base / "out")
    assert r.figure_names[-3:] == ["adam_by_l", "direction_by_l", "predictability_by_l"]
    assert (base / "out" / "adam_by_l.png").exists() and (base / "out" / "direction_by_l.png").exists()
    params = d["adam_by_l"]["parameters"]
    fig = r.plot("adam_by_l")
    for name, a in params.items():
        short = name.replace("module.", "").replace(".filter", "")
        np.testing.assert_array_equal(line(fig, short, ax=0), a["sqrt_v_hat"])
        np.testing.assert_array_equal(line(fig, short, ax=1), a["effective_step"])
    ds = r.to_xarray()
    assert ds.adam_by_l_sqrt_v_hat.dims == ("layer", "degree")
    for name, a in params.items():
        np.testing.assert_array_equal(ds.adam_by_l_effective_step.sel(layer=name), a["effective_step"])
        assert int(ds.adam_by_l_step.sel(layer=name)) == a["step"]
    assert float(ds.adam_by_l_optimizer_lr) == d["adam_by_l"]["optimizer"]["lr"]
    assert not [v for v in ds.data_vars if "betas" in v]  # (beta1, beta2) is not a per-degree curve


@pytest.mark.parametrize("option, package, words", [("--netcdf", "netCDF4", "specprobe[xarray]"),
                                                     ("--wandb=p", "wandb", "specprobe[wandb]")])
def test_missing_extra_fails_before_probing(tmp_path, monkeypatch, option, package, words):
    import importlib.util

    from typer.testing import CliRunner

    from specprobe.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    r = CliRunner().invoke(app, ["grad-by-l", "--out", str(tmp_path / "out"), option])
    assert r.exit_code == 2 and words in r.stderr and r.stderr.startswith("error:")
    assert not (tmp_path / "out").exists()
