"""Held-out scores per degree and band: the energy score (skill, spread), ensemble-mean MSE and power ratio."""

from __future__ import annotations

import math

import numpy as np

from ...spectral import band_sums, degree_scores, to_spectral
from .config import EVAL_SEED, METRICS

# ------------------------------------------------------------------ scoring


def evaluate(target, pool, *, n_ensemble: int, batch_size: int) -> dict:
    """Per channel and degree (C, L) means over the pool's pairs, float64 numpy arrays."""
    import torch

    sums, n = {}, 0
    with torch.no_grad():
        for start in range(0, pool.size, batch_size):
            batch = pool.take(list(range(start, min(start + batch_size, pool.size))))
            gen, tgt = target.forward(batch, n_ensemble=n_ensemble, seed=EVAL_SEED + start)
            parts = degree_scores(to_spectral(gen, grid=target.loss_grid), to_spectral(tgt, grid=target.loss_grid))
            for k, v in parts.items():
                v = v.double().sum(dim=0).cpu().numpy()
                sums[k] = v if k not in sums else sums[k] + v
            n += gen.shape[0]
    out = {k: v / n for k, v in sums.items()}
    out["energy_score"] = out["es_skill"] - out["es_spread"]
    return out


def band_values(scores: dict, bands) -> dict:
    """{metric: {band or 'total': {'overall': x, channel index: x}}} from (C, L) arrays."""
    sums = {k: band_sums(scores[k], bands) for k in (*METRICS[:4], "pred_power", "target_power")}
    out = {m: {} for m in METRICS}
    for name in sums["mse"]:
        for m in METRICS[:4]:
            per_c = sums[m][name]
            out[m][name] = {"overall": float(per_c.mean()), "channels": per_c.tolist()}
        p, t = sums["pred_power"][name], sums["target_power"][name]
        out["power_ratio"][name] = {"overall": float(p.sum() / t.sum()) if t.sum() > 0 else math.nan,
                                    "channels": (p / np.where(t > 0, t, np.nan)).tolist()}
    return out


def per_degree(scores: dict, channels) -> dict:
    out = {"overall": {}, "channels": {}}
    for m in METRICS[:4]:
        out["overall"][m] = scores[m].mean(0).tolist()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["overall"]["power_ratio"] = (scores["pred_power"].sum(0) / scores["target_power"].sum(0)).tolist()
        for i, ch in enumerate(channels):
            out["channels"][ch] = {m: scores[m][i].tolist() for m in METRICS[:4]}
            out["channels"][ch]["power_ratio"] = (scores["pred_power"][i] / scores["target_power"][i]).tolist()
    return out
