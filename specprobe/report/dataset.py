"""Results as xarray Datasets (``to_xarray()``) and netCDF files (``--netcdf``), with units and
long names as attributes. The variables come from :mod:`.labelled`, shared with W&B logging.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import SpecprobeError
from ..probing.result import CONVENTIONS, ProbeResult, wavelength_km
from .labelled import number, per_degree_arrays, summary_arrays

_META = {  # variable name -> (long name, units)
    "grad_by_l": ("filter-gradient norm per degree, root-sum-square over per-degree parameters", "1"),
    "grad_by_l_layers": ("filter-gradient norm per degree, one per-degree parameter", "1"),
    "gsnr_by_l": ("gradient signal-to-noise ratio per element (mean^2 / variance over samples)", "1"),
    "gsnr_stderr_by_l": ("standard error of gsnr_by_l from sampled elements (0: exact)", "1"),
    "adam_step_by_l_stderr": ("standard error of the steady-state Adam step from sampled elements (0: exact)", "1"),
    "output_grad_by_l": ("norm of d loss / d prediction coefficients per degree", "1"),
    "whitening_factor_by_l_mean": ("per-sample whitening factor, mean over samples", "1"),
    "whitening_factor_by_l_p10": ("per-sample whitening factor, 10th percentile over samples", "1"),
    "whitening_factor_by_l_p90": ("per-sample whitening factor, 90th percentile over samples", "1"),
    "target_power_by_l": ("target power per degree (loss space, m>0 doubled)", "normalised units^2"),
    "prediction_power_by_l": ("ensemble-member power per degree (loss space, m>0 doubled)", "normalised units^2"),
    "es_skill_spread_by_l_skill": ("energy-score skill term E|X - y| per degree", "normalised units"),
    "es_skill_spread_by_l_spread": ("energy-score spread term 0.5 E|X - X'| per degree", "normalised units"),
    "adam_by_l_sqrt_v_hat": ("sqrt of Adam's bias-corrected second moment per degree", "gradient units"),
    "adam_by_l_effective_step": ("Adam's effective step |m_hat| / (sqrt(v_hat) + eps) per degree", "1"),
    "adam_by_l_step": ("Adam step count of the parameter", "1"),
    "decline_ratio": ("low-band / high-band mean of the filter gradient", "1"),
    "spearman_rho": ("Spearman rank correlation of the filter gradient with l", "1"),
    "loglog_slope": ("slope of log gradient vs log l", "1"),
    "loss": ("mean loss over the probed samples", "1"),
    "band_mean": ("band mean of the filter gradient per degree", "1"),
    "gsnr_band_median": ("median GSNR over the band's degrees", "1"),
    "boost": ("whitened / baseline band mean of the filter gradient", "1"),
    "layer_decline_ratio": ("low-band / high-band mean of one parameter's gradient", "1"),
    "layer_spearman_rho": ("Spearman rank correlation of one parameter's gradient with l", "1"),
    "other_param_grad_norm": ("gradient L2 norm of a parameter that is not per-degree", "1"),
}


def _xr():
    try:
        import xarray as xr
    except ImportError:
        raise SpecprobeError("to_xarray needs xarray: pip install 'specprobe[xarray]'") from None
    return xr


def _attrs_for(name: str) -> dict:
    base = name.removesuffix("_layers") if name not in _META else name
    long_name, units = _META.get(name) or _META.get(base) or (name.replace("_", " "), "1")
    attrs = {"long_name": long_name, "units": units}
    for key, text in CONVENTIONS.items():
        if name.startswith(key) or name.startswith(key.replace("gradient_norm", "grad_by_l")):
            attrs["convention"] = text
    return attrs


def _safe_attrs(d: dict) -> dict:
    """netCDF attributes are strings or numbers: anything else is written as JSON."""
    out = {}
    for k, v in d.items():
        if isinstance(v, str) or number(v):
            out[k] = v
        elif v is not None:
            out[k] = json.dumps(v, default=str)
    return out


def grad_by_l_dataset(result: ProbeResult):
    """Dims variant, degree, channel, layer (and band, parameter for the statistics)."""
    xr = _xr()
    coords, curves = per_degree_arrays(result)
    more, stats = summary_arrays(result)
    coords = {**coords, **{k: v for k, v in more.items() if k != "layer"}}
    ds = xr.Dataset({v.name: (v.dims, v.values, _attrs_for(v.name)) for v in curves + stats},
                    coords={k: (k, list(v)) for k, v in coords.items()})
    whitening = [v.get("whitening", {}) for v in result.variants]
    ds = ds.assign_coords(
        wavelength_km=("degree", [wavelength_km(l) for l in ds["degree"].values],
                       {"long_name": "wavelength 2 pi R / sqrt(l (l + 1))", "units": "km"}),
        whitening_kind=("variant", [w.get("kind") or "none" for w in whitening]),
        whitening_gamma=("variant", [math.nan if w.get("exponent") is None else w["exponent"] for w in whitening]),
        whitening_eps_frac=("variant", [math.nan if w.get("eps_frac") is None else w["eps_frac"] for w in whitening]),
        band_lo=("band", [b["lo"] for b in result.bands]),
        band_hi=("band", [b["hi"] for b in result.bands]),
    )
    ds["degree"].attrs.update(long_name="spherical-harmonic degree l", units="1")
    ck = result.provenance.get("checkpoint", {})
    ds.attrs = _safe_attrs({"schema": result.schema, "checkpoint": ck.get("path"),
                            "checkpoint_sha256": ck.get("sha256"), "family": ck.get("family"),
                            "n_samples_probed": result.provenance.get("n_samples_probed"),
                            "seed": result.provenance.get("seed"), "provenance": result.provenance})
    return ds


# The optimizer-aware band summary of a whitening variant (probing.sweep.optimizer_columns): key, per band?, long name.
_OPTIMIZER_COLUMNS = (
    ("adam_step_ratio", True, "whitened / baseline steady-state Adam step, band mean"),
    ("direction_cosine", True, "cosine of the whitened and baseline mean filter gradients, per band"),
    ("direction_cosine_non_spectral", False, "cosine of the whitened and baseline mean gradients of every "
                                             "non-spectral parameter"),
    ("switch_step_ratio", True, "whitened / baseline first step after switching loss (checkpoint's Adam state), "
                                "band mean"),
)


def sweep_dataset(sweep: dict):
    """The sweep's probe (every setting is a variant) plus gamma, eps_frac, measured and predicted boost."""
    xr = _xr()
    names = [s["name"] for s in sweep["settings"]]
    bands = [b["name"] for b in sweep["bands"]]
    if "probe" in sweep:
        ds = grad_by_l_dataset(ProbeResult.from_dict(sweep["probe"]))
    else:
        ds = xr.Dataset(coords={"variant": ["baseline", *names], "band": bands})
    variants = list(ds["variant"].values)

    def per(key, band=None):
        out = np.full((len(variants),) + ((len(bands),) if band else ()), math.nan)
        for s in sweep["settings"]:
            if s.get(key) is None:  # optimizer columns: absent from files written before them
                continue
            i = variants.index(s["name"])
            if band:
                out[i] = [math.nan if s[key].get(b) is None else s[key][b] for b in bands]
            else:
                out[i] = s[key]
        return out

    ds["measured_boost"] = (("variant", "band"), per("measured_boost", True),
                            {"long_name": "whitened / baseline band mean of the filter gradient", "units": "1"})
    ds["predicted_boost"] = (("variant", "band"), per("predicted_boost", True),
                             {"long_name": "band mean of the whitening factor (samples and channels averaged)",
                              "units": "1"})
    for key, band, long_name in _OPTIMIZER_COLUMNS:
        if any(key in s for s in sweep["settings"]):
            ds[key] = (("variant", "band") if band else ("variant",), per(key, band), {"long_name": long_name,
                                                                                      "units": "1"})
    ds = ds.assign_coords(gamma=("variant", per("gamma")), eps_frac=("variant", per("eps_frac")))
    ds.attrs = _safe_attrs({**ds.attrs, "schema": sweep["schema"], "provenance": sweep.get("provenance")})
    return ds


def series_dataset(summary: dict, results: list | None = None):
    """One entry per checkpoint (dim checkpoint, coord epoch); with the per-checkpoint results, their curves too."""
    xr = _xr()
    rows = summary["rows"]
    views = [r.get("optimizer_view") or {} for r in rows]
    bands = list(dict.fromkeys([b for r in rows for b in r.get("gsnr_band_median", {})]
                               + [b for view in views for v in view.values() for b in v.get("adam_step_ratio", {})]))
    boosted = list(dict.fromkeys(v for r in rows for v in r.get("high_band_boost", {})))
    nan = lambda x: math.nan if x is None else x  # noqa: E731
    ds = xr.Dataset(
        {"high_band_share": ("checkpoint", [nan(r["high_band_share"]) for r in rows],
                             {"long_name": "high-band share of the baseline filter gradient", "units": "1"}),
         "series_decline_ratio": ("checkpoint", [nan(r["decline_ratio"]) for r in rows], _attrs_for("decline_ratio")),
         "series_gsnr_band_median": (("checkpoint", "band"),
                                     [[nan(r["gsnr_band_median"].get(b)) for b in bands] for r in rows],
                                     _attrs_for("gsnr_band_median")),
         "high_band_boost": (("checkpoint", "variant"),
                             [[nan(r["high_band_boost"].get(v)) for v in boosted] for r in rows],
                             {"long_name": "whitened / baseline high-band mean", "units": "1"})},
        coords={"checkpoint": [r["checkpoint"] for r in rows], "band": bands, "variant": boosted,
                "epoch": ("checkpoint", [nan(r["epoch"]) for r in rows])})
    for key, band, long_name in _OPTIMIZER_COLUMNS:
        if not any(key in v for view in views for v in view.values()):
            continue
        get = lambda view, v: (view.get(v) or {}).get(key)  # noqa: E731
        values = [[[nan((get(view, v) or {}).get(b)) for b in bands] if band else nan(get(view, v)) for v in boosted]
                  for view in views]
        ds[f"series_{key}"] = (("checkpoint", "variant", "band") if band else ("checkpoint", "variant"), values,
                               {"long_name": long_name, "units": "1"})
    if results:
        per = xr.concat([grad_by_l_dataset(r).drop_vars("checkpoint", errors="ignore") for r in results],
                        dim=xr.DataArray(ds["checkpoint"].values, dims="checkpoint"), join="outer",
                        combine_attrs="drop", coords="different", compat="equals")
        ds = xr.merge([per, ds], join="outer", combine_attrs="override")
        ds["provenance"] = ("checkpoint", [json.dumps(r.provenance, default=str) for r in results],
                            {"long_name": "each checkpoint's probe provenance (JSON)"})
    ds.attrs = {"schema": summary["schema"]}
    return ds


def coupling_dataset(coupling: dict):
    xr = _xr()
    names = list(coupling["variants"])
    nan = lambda row: [math.nan if x is None else x for x in row]  # noqa: E731
    bands = coupling["loss_bands"]
    v = coupling["variants"]
    return xr.Dataset(
        {"coupling": (("variant", "loss_band", "degree"), [[nan(r) for r in v[n]["matrix"]] for n in names],
                      {"long_name": "filter-gradient norm at degree l of the loss restricted to one band of "
                                    "loss degrees", "units": "1", "convention": coupling.get("convention", "")}),
         "full": (("variant", "degree"), [nan(v[n]["full"]) for n in names],
                  {"long_name": "filter-gradient norm per degree of the whole loss", "units": "1"}),
         "diagonal_share": (("variant", "loss_band"), [nan(v[n]["diagonal_share"]) for n in names],
                            {"long_name": "share of the band's gradient on its own degrees", "units": "1"})},
        coords={"variant": names, "loss_band": list(range(len(bands))), "degree": coupling["degrees"],
                "loss_band_lo": ("loss_band", [b["lo"] for b in bands]),
                "loss_band_hi": ("loss_band", [b["hi"] for b in bands])},
        attrs=_safe_attrs({"schema": coupling["schema"], "provenance": coupling.get("provenance")}))


_LOOKAHEAD_LONG_NAMES = {
    "energy_score": "unwhitened energy score on held-out pairs", "es_skill": "energy score skill term E|X-y|",
    "es_spread": "energy score spread term E|X-X'|/2", "mse": "ensemble-mean squared error",
    "power_ratio": "predicted / target power"}


def lookahead_dataset(look: dict):
    """Per degree, per arm (and the untouched checkpoint as ``before_*``): the held-out scores; the sweep
    (per whitened arm, band and metric: the paired effect vs the baseline, its se and judgement, and its
    trajectory over the scored steps) and, when rolled out, each arm's rollout series per band and lead."""
    from .lookahead_report import ensure_recommendation

    xr = _xr()
    look = ensure_recommendation(look)
    arms = [a["name"] for a in look["arms"]]  # repeats are named "baseline#repeatR"
    channels = list(look["channels"])
    nan = lambda row: [math.nan if x is None else x for x in row]  # noqa: E731
    num = lambda x: math.nan if x is None else float(x)  # noqa: E731
    data = {}
    for m, long_name in _LOOKAHEAD_LONG_NAMES.items():
        attrs = {"long_name": long_name, "units": "1 (loss space)"}
        data[m] = (("arm", "degree"), [nan(a["per_degree"]["overall"][m]) for a in look["arms"]], attrs)
        data[f"{m}_by_channel"] = (("arm", "channel", "degree"),
                                   [[nan(a["per_degree"]["channels"][c][m]) for c in channels] for a in look["arms"]],
                                   attrs)
        data[f"before_{m}"] = (("degree",), nan(look["before"]["per_degree"]["overall"][m]),
                               {**attrs, "long_name": long_name + ", untouched checkpoint"})
    coords = {"arm": arms, "degree": look["degrees"], "channel": channels,
              "variant": ("arm", [a["variant"] for a in look["arms"]]),
              "repeat": ("arm", [int(a.get("repeat", 0)) for a in look["arms"]])}
    rows = look["sweep"]
    if rows:
        bands = list(rows[0]["bands"])
        metrics = list(rows[0]["bands"][bands[0]])
        cell = lambda r, b, m: r["bands"][b][m]  # noqa: E731
        rel = {"units": "1 (fraction of the checkpoint's value)"}
        data["effect_mean"] = (("sweep_arm", "band", "metric"),
                               [[[num(cell(r, b, m)["mean"]) for m in metrics] for b in bands] for r in rows],
                               {**rel, "long_name": "arm - baseline on the same batch order, mean over orders"})
        data["effect_se"] = (("sweep_arm", "band", "metric"),
                             [[[num(cell(r, b, m)["se"]) for m in metrics] for b in bands] for r in rows],
                             {**rel, "long_name": "paired standard error: sd over orders / sqrt(orders)"})
        data["effect_judgement"] = (("sweep_arm", "band", "metric"),
                                    [[[cell(r, b, m)["judgement"] for m in metrics] for b in bands] for r in rows],
                                    {"long_name": (look.get("conventions") or {}).get("beyond_noise", "paired judgement")})
        data["run_to_run_spread"] = (("band", "metric"),
                                     [[num(look["table"][m][b]["noise"]) for m in metrics] for b in bands],
                                     {**rel, "long_name": "run-to-run spread of one arm (repeat - baseline, RMS)"})
        steps = [x["steps"] for x in (cell(rows[0], bands[0], metrics[0]).get("trajectory") or [])]
        if steps:
            for key, long_name in (("mean", "arm - baseline, paired mean, after each scored step count"),
                                   ("se", "paired standard error after each scored step count")):
                data[f"trajectory_{key}"] = (
                    ("sweep_arm", "band", "metric", "step"),
                    [[[[num(x[key]) for x in cell(r, b, m)["trajectory"]] for m in metrics] for b in bands]
                     for r in rows], {**rel, "long_name": long_name})
            coords["step"] = steps
        coords.update({"sweep_arm": [r["arm"] for r in rows], "band": bands, "metric": metrics,
                       "gamma": ("sweep_arm", [num(r["gamma"]) for r in rows]),
                       "eps_frac": ("sweep_arm", [num(r["eps_frac"]) for r in rows])})
    rolled = [a for a in look["arms"] if a.get("rollout")]
    if rolled and len(rolled) == len(look["arms"]):
        first = rolled[0]["rollout"]
        r_bands = list(first["series"]["power_ratio"])
        for m in ("power_ratio", "mse", "energy_score"):
            data[f"rollout_{m}"] = (("arm", "rollout_band", "lead"),
                                    [[nan(a["rollout"]["series"][m][b]) for b in r_bands] for a in look["arms"]],
                                    {"long_name": f"rollout {m.replace('_', ' ')} against the reference, band sum",
                                     "units": "1"})
        coords.update({"rollout_band": r_bands, "lead": first["leads"]})
    rec = look["recommendation"]
    return xr.Dataset(data, coords=coords,
                      attrs=_safe_attrs({"schema": look["schema"], "settings": look.get("settings"),
                                         "provenance": look.get("provenance"), "recommendation": rec["choice"],
                                         "recommendation_rule": rec["rule"]["text"],
                                         "recommendation_summary": rec["summary"]}))


def write_netcdf(ds, path):
    """netCDF4 file written beside the target and renamed over it: never a partial file."""
    from .files import atomic_write_with

    return atomic_write_with(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4"))
