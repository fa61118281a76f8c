"""Offline pre-screen of whitening strength: one forward per batch, one backward per (gamma, eps_frac).

For each setting: the measured boost of the filter gradient per band (whitened / baseline), and the
boost predicted from the target spectrum alone — the whitening factor's mean over the band's degrees
(samples and channels averaged). Where the two agree, a degree's filter is fed mostly by the loss at
that degree; where they differ, the network mixes degrees.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..spectral import WhiteningConfig
from .result import ProbeResult

SCHEMA = "specprobe.sweep/1"


def parse_floats(text: str, name: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{name}: expected at least one value")
    return values


def sweep_configs(gammas: list[float], eps_fracs: list[float]) -> list[WhiteningConfig]:
    return [WhiteningConfig("per_sample", exponent=g, eps_frac=e) for g, e in itertools.product(gammas, eps_fracs)]


def predicted_boost(result: ProbeResult, variant: str) -> dict:
    """Band means of the whitening factor (mean over samples, then channels)."""
    per_channel = [np.asarray(v["mean"]) for v in result.whitening_factor_by_l[variant].values()]
    factor = np.mean(per_channel, axis=0)
    return {b["name"]: float(factor[b["lo"]: b["hi"] + 1].mean()) for b in result.bands}


def optimizer_columns(result: ProbeResult, variant: str) -> dict:
    """The optimizer-aware band summary of one variant (empty for files written before it)."""
    view = ((result.stats.get("optimizer_view") or {}).get("variants") or {}).get(variant)
    if not view:
        return {}
    out = {"adam_step_ratio": view["adam_step_ratio"], "direction_cosine": view["cosine"],
           "direction_cosine_non_spectral": view["cosine_groups"].get("all")}
    if "switch_step_ratio" in view:
        out["switch_step_ratio"] = view["switch_step_ratio"]
    return out


def summarise_sweep(result: ProbeResult, configs: list[WhiteningConfig]) -> dict:
    base = result.stats["baseline"]
    settings = []
    for cfg in configs:
        st = result.stats[cfg.name]
        settings.append({**optimizer_columns(result, cfg.name),
            "name": cfg.name, "gamma": cfg.exponent, "eps_frac": cfg.eps_frac,
            "band_means": st["band_means"], "decline_ratio": st["decline_ratio"],
            "spearman_rho": st["spearman_rho"], "gsnr_band_median": st["gsnr_band_median"],
            "measured_boost": result.stats["boost"][cfg.name], "predicted_boost": predicted_boost(result, cfg.name),
        })
    return {
        "schema": SCHEMA,
        "provenance": result.provenance,
        "bands": result.bands,
        "optimizer": result.optimizer,
        "baseline": {"band_means": base["band_means"], "decline_ratio": base["decline_ratio"],
                     "spearman_rho": base["spearman_rho"], "gsnr_band_median": base["gsnr_band_median"]},
        "settings": settings,
        "probe": result.to_dict(),
    }
