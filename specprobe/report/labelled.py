"""Results as labelled numpy arrays (named dims), the common ground of to_xarray() and W&B.

Every per-degree field of a ProbeResult becomes a variable found by walking its nested dicts, not
from a list of field names: a key that is a variant, channel or layer name becomes that dim, a list
as long as a parameter's degree axis becomes the degree dim, and any other key becomes part of the
variable's name. A field added to ProbeResult later (per variant, per layer, per degree) shows up
here, in the Dataset and in W&B without a change.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

import numpy as np

from ..probing.result import ProbeResult

# Not per-degree curves: handled as summary statistics below, or kept as attributes.
_NOT_CURVES = {"provenance", "degrees", "channels", "bands", "variants", "stats", "layer_stats", "other_params",
               "loss", "nonfinite", "schema"}
_CONTAINERS = {"layers", "parameters"}  # a dict of layer name -> curve
_DROPPED_FROM_NAME = {"total", "parameters"}  # "layers" stays: grad_by_l vs grad_by_l_layers


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


def number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def per_degree_arrays(result: ProbeResult) -> tuple[dict, list[Labelled]]:
    """(coords, variables) for every per-degree field; curves shorter than the degree axis are NaN-padded."""
    coords = {"variant": result.variant_names, "channel": list(result.channels), "layer": _layer_names(result)}
    # Lists of these lengths are degree curves (the degree axes of the model's parameters); others,
    # such as Adam's (beta1, beta2), are not.
    degree_counts = {len(result.degrees)} | {len(c) for v in result.grad_by_l.values()
                                            for c in (v.get("layers") or {}).values()}
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
            if isinstance(leaf, list) and len(leaf) in degree_counts and all(v is None or number(v) for v in leaf):
                curve = np.array([math.nan if v is None else v for v in leaf], dtype=float)
                n_degrees = max(n_degrees, curve.size)
                groups.setdefault((_clean_name(name), tuple(dims) + ("degree",)), []).append((where, curve))
            elif number(leaf):
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
            if number(v):
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


