"""Results as labelled arrays: numpy arrays with named dims (for W&B) and xarray Datasets (netCDF).

Every per-degree field of a ProbeResult becomes a variable found by walking its nested dicts, not
from a list of field names: a key that is a variant, channel or layer name becomes that dim, a list of
numbers becomes the degree dim, and any other key becomes part of the variable's name. A field
added to ProbeResult later (per variant, per layer, per degree) shows up here without a change.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields

import numpy as np

from ..errors import SpecprobeError
from ..probing.result import CONVENTIONS, ProbeResult, wavelength_km

# Not per-degree curves: handled as summary statistics below, or kept as attributes.
_NOT_CURVES = {"provenance", "degrees", "channels", "bands", "variants", "stats", "layer_stats", "other_params",
               "loss", "nonfinite", "schema"}
_CONTAINERS = {"layers", "parameters"}  # a dict of layer name -> curve
_DROPPED_FROM_NAME = {"total", "parameters"}  # "layers" stays: grad_by_l vs grad_by_l_layers

_META = {  # variable name -> (long name, units)
    "grad_by_l": ("filter-gradient norm per degree, root-sum-square over per-degree parameters", "1"),
    "grad_by_l_layers": ("filter-gradient norm per degree, one per-degree parameter", "1"),
    "gsnr_by_l": ("gradient signal-to-noise ratio per element (mean^2 / variance over samples)", "1"),
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


@dataclass
class Labelled:
    """One variable: a numpy array with named dims (coordinates are the Dataset's)."""
    name: str
    dims: tuple
    values: np.ndarray


def _clean_name(parts) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", "_".join(parts)).strip("_")


def _leaves(obj, keys=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, keys + (str(k),))
    else:
        yield keys, obj


def _layer_names(result: ProbeResult) -> list[str]:
    """Every key that sits directly under a "layers"/"parameters" container, in first-seen order."""
    names: dict[str, None] = {}
    for f in fields(result):
        if f.name in _NOT_CURVES:
            continue
        for keys, _ in _leaves(getattr(result, f.name)):
            for i, k in enumerate(keys[:-1]):
                if k in _CONTAINERS:
                    names.setdefault(keys[i + 1], None)
    for per in result.layer_stats.values():
        for k in per:
            names.setdefault(k, None)
    return list(names)


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def per_degree_arrays(result: ProbeResult) -> tuple[dict, list[Labelled]]:
    """(coords, variables) for every per-degree field; curves shorter than the degree axis are NaN-padded."""
    coords = {"variant": result.variant_names, "channel": list(result.channels), "layer": _layer_names(result)}
    index = {dim: {name: i for i, name in enumerate(names)} for dim, names in coords.items()}
    groups: dict[tuple, list] = {}
    n_degrees = len(result.degrees)
    for f in fields(result):
        if f.name in _NOT_CURVES:
            continue
        for keys, leaf in _leaves(getattr(result, f.name)):
            dims, where, name = [], [], [f.name]
            for k in keys:
                dim = next((d for d in ("variant", "channel", "layer") if k in index[d]), None)
                if dim is not None:
                    dims.append(dim)
                    where.append(index[dim][k])
                elif k not in _DROPPED_FROM_NAME:
                    name.append(k)
            if isinstance(leaf, list) and leaf and all(v is None or _number(v) for v in leaf):
                curve = np.array([math.nan if v is None else v for v in leaf], dtype=float)
                n_degrees = max(n_degrees, curve.size)
                groups.setdefault((_clean_name(name), tuple(dims) + ("degree",)), []).append((where, curve))
            elif _number(leaf):
                groups.setdefault((_clean_name(name), tuple(dims)), []).append((where, float(leaf)))
    coords["degree"] = list(result.degrees) + list(range(len(result.degrees), n_degrees))
    variables, taken = [], set()
    for (name, dims), items in groups.items():
        shape = [len(coords[d]) for d in dims]
        values = np.full(shape, math.nan)
        for where, v in items:
            if dims and dims[-1] == "degree":
                values[tuple(where)][: v.size] = v
            else:
                values[tuple(where)] = v
        if name in taken:  # the same keys at another depth: say which dims tell them apart
            name = f"{name}_by_{'_'.join(d for d in dims if d != 'degree')}"
        taken.add(name)
        variables.append(Labelled(name, dims, values))
    return coords, variables


def summary_arrays(result: ProbeResult) -> tuple[dict, list[Labelled]]:
    """Per-variant (and per band / layer) statistics: the numbers the band and layer tables show."""
    variants, bands = result.variant_names, [b["name"] for b in result.bands]
    layers = _layer_names(result)
    others = list(dict.fromkeys(p for per in result.other_params.values() for p in per))
    boost = result.stats.get("boost", {})

    def grid(get, *axes):
        out = np.full([len(a) for a in axes], math.nan)
        for idx in np.ndindex(*out.shape):
            try:
                v = get(*(a[i] for a, i in zip(axes, idx)))
            except (KeyError, TypeError, IndexError):
                continue
            if _number(v):
                out[idx] = v
        return out

    st = result.stats
    out = [Labelled(key, ("variant",), grid(lambda v, k=key: st[v][k], variants))
           for key in ("decline_ratio", "spearman_rho", "loglog_slope")]
    out.append(Labelled("loss", ("variant",), grid(lambda v: result.loss.get(v, st[v].get("loss")), variants)))
    out.append(Labelled("band_mean", ("variant", "band"), grid(lambda v, b: st[v]["band_means"][b], variants, bands)))
    out.append(Labelled("gsnr_band_median", ("variant", "band"),
                        grid(lambda v, b: st[v]["gsnr_band_median"][b], variants, bands)))
    out.append(Labelled("boost", ("variant", "band"), grid(lambda v, b: boost[v][b], variants, bands)))
    ls = result.layer_stats
    out.append(Labelled("layer_decline_ratio", ("variant", "layer"),
                        grid(lambda v, p: ls[v][p]["decline_ratio"], variants, layers)))
    out.append(Labelled("layer_spearman_rho", ("variant", "layer"),
                        grid(lambda v, p: ls[v][p]["spearman_rho"], variants, layers)))
    if others:
        out.append(Labelled("other_param_grad_norm", ("variant", "parameter"),
                            grid(lambda v, p: result.other_params[v][p], variants, others)))
    return {"band": bands, "layer": layers, "parameter": others}, out


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
        if isinstance(v, str) or _number(v):
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
    ds = ds.assign_coords(gamma=("variant", per("gamma")), eps_frac=("variant", per("eps_frac")))
    ds.attrs = _safe_attrs({**ds.attrs, "schema": sweep["schema"], "provenance": sweep.get("provenance")})
    return ds


def series_dataset(summary: dict, results: list | None = None):
    """One entry per checkpoint (dim checkpoint, coord epoch); with the per-checkpoint results, their curves too."""
    xr = _xr()
    rows = summary["rows"]
    bands = list(dict.fromkeys(b for r in rows for b in r.get("gsnr_band_median", {})))
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
    if results:
        per = xr.concat([grad_by_l_dataset(r).drop_vars("checkpoint", errors="ignore") for r in results],
                        dim=xr.DataArray(ds["checkpoint"].values, dims="checkpoint"), join="outer",
                        combine_attrs="drop", coords="different", compat="equals")
        ds = xr.merge([per, ds], join="outer", combine_attrs="override")
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


def write_netcdf(ds, path):
    """netCDF4 file written beside the target and renamed over it: never a partial file."""
    from .files import atomic_write_with

    return atomic_write_with(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4"))
