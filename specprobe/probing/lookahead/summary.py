"""The sweep's table: every arm against the checkpoint and the baseline, paired per batch order, with provenance."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from ...spectral import POWER_CONVENTIONS
from ..recommend import JUDGEMENT_RULE, Rule, add_recommendation, threshold_text
from .config import SCHEMA
from .scoring import band_values, per_degree


def _rel(a, b, ref):
    return (a - b) / abs(ref) if ref and math.isfinite(ref) else math.nan


def compare_bands(arms: list[dict], before_bands: dict, k: float | None = None) -> dict:
    """Each arm vs the untouched checkpoint and vs the baseline arm, relative to the checkpoint's value.

    ``noise``: the run-to-run spread of one arm, RMS over the repeat baselines of (repeat - baseline),
    in the same units. ``paired`` (per whitened arm): :func:`~specprobe.probing.recommend.judge_paired`
    of (arm - baseline) on each batch order; ``beyond_noise`` is its verdict (None: unjudged)."""
    from ..recommend import BEYOND, UNJUDGED, judge_paired

    base = arms[0]["bands"]
    base_name = arms[0]["variant"]
    repeats = [a["bands"] for a in arms if a["repeat"] > 0 and a["variant"] == base_name]
    by_order = {(a["variant"], a["repeat"]): a["bands"] for a in arms}
    orders = sorted({a["repeat"] for a in arms})
    out = {}
    for m, per_band in before_bands.items():
        out[m] = {}
        for band, v0 in per_band.items():
            ref = v0["overall"]
            b = base[m][band]["overall"]
            noise = (math.sqrt(np.mean([_rel(rp[m][band]["overall"], b, ref) ** 2 for rp in repeats]))
                     if repeats else math.nan)
            row = {"checkpoint": ref, "noise": noise, "arms": {}}
            for a in arms:
                if a["repeat"]:
                    continue
                v = a["bands"][m][band]["overall"]
                cell = {"value": v, "vs_checkpoint": _rel(v, ref, ref), "vs_baseline": _rel(v, b, ref),
                        "beyond_noise": None}
                if a is not arms[0]:
                    paired = [_rel(by_order[(a["variant"], r)][m][band]["overall"],
                                   by_order[(base_name, r)][m][band]["overall"], ref)
                              for r in orders if (a["variant"], r) in by_order and (base_name, r) in by_order]
                    j = judge_paired(paired, k)
                    cell["paired"] = j
                    cell["judgement"] = j["judgement"]
                    cell["beyond_noise"] = None if j["judgement"] == UNJUDGED else j["judgement"] == BEYOND
                    if j["n"] > 1:  # the earlier files' names, kept
                        cell["paired_sd"], cell["paired_mean"] = j["sd"], j["mean"]
                row["arms"][a["name"]] = cell
            out[m][band] = row
    return out


def _stalled_warning(table: dict, lr: float) -> list[str]:
    """Never a silent no-op: the baseline arm left every score where the checkpoint had it."""
    moved = [abs(c["arms"][name]["vs_checkpoint"]) for per_band in table.values() for c in per_band.values()
             for name in list(c["arms"])[:1] if math.isfinite(c["arms"][name]["vs_checkpoint"])]
    if moved and max(moved) < 1e-7:
        return [f"the baseline arm left every band score within 1e-7 of the checkpoint's: lr {lr:g} is too small to "
                "move the scores, so no difference can show; raise --lr"]
    return []


def summarise(target, configs, arms, before, bands, loss, opt_prov, s, train_pool, eval_pool, n_checked, elapsed,
              rollout=None, rule: Rule | None = None) -> dict:
    channels = list(target.channel_names)
    before_bands = band_values(before, bands)
    for a in arms:
        a["bands"] = band_values(a["scores"], bands)
        a["per_degree"] = per_degree(a.pop("scores"), channels)
    table = compare_bands(arms, before_bands, s.k)
    result = {
        "schema": SCHEMA,
        "channels": channels,
        "degrees": list(range(before["mse"].shape[-1])),
        "bands": [{"name": b.name, "lo": b.lo, "hi": b.hi} for b in bands],
        "variants": [{"name": c.name, "whitening": c.to_dict()} for c in configs],
        "settings": {**asdict(s), "n_ensemble": loss["n_ensemble"], "orders": s.orders,
                     "trajectory_steps": list(s.trajectory_steps())},
        "loss": loss,
        "optimizer": opt_prov,
        "data": {"train": train_pool.description, "eval": eval_pool.description,
                 "disjoint": f"no state of the {train_pool.size} training pairs ({n_checked} distinct states) is in "
                             f"the {eval_pool.size} evaluation pairs (exact byte fingerprints)",
                 "train_order": "seeded shuffles of the training pool; every arm of one repeat (batch order) uses the "
                                "same batches, order and noise seeds; repeats change order and noise"
                                + ("; paired: every arm is rerun on each repeat's order" if s.paired else
                                   "; repeats rerun the baseline only")},
        "conventions": {
            "energy_score": "unwhitened fair energy score per degree: sum_m mode_w[m] * ES[l,m] / (2 sqrt(LM)), "
                            "mean over pairs; skill - spread; the sum over l is fme's energy-score loss",
            "mse": "physical degree power of (ensemble mean - target), loss (normalised) space",
            "power_ratio": "physical degree power of the members (mean over members) / of the target",
            "power_convention": POWER_CONVENTIONS["physical"],
            "forward": "the adapter's training forward (fme: modules in train mode), no gradients, fixed noise seeds",
            "bands": "band value = sum over the band's degrees (power_ratio: ratio of the band sums); overall = "
                     "mean over channels (power_ratio: ratio of channel sums)",
            "relative_change": "(value - reference) / |checkpoint value|",
            "beyond_noise": JUDGEMENT_RULE.format(threshold=threshold_text(s.k)),
            "noise": "run-to-run spread of one arm: RMS over the repeat baselines of (repeat - baseline), relative "
                     "to the checkpoint's value; how much rerunning the same training on another batch order moves a "
                     "score (not the noise of an arm - baseline difference)",
            "trajectory": "the paired judgement after each of settings.trajectory_steps and the last step",
        },
        "before": {"bands": before_bands, "per_degree": per_degree(before, channels)},
        "arms": arms,
        "table": table,
        "elapsed_s": round(elapsed, 3),
    }
    if rollout is not None:
        result["rollout"] = rollout
        result["conventions"]["rollout"] = ("each arm and the untouched checkpoint rolled out autoregressively from "
                                            "the same held-out initial states and noise (rollout_health); drift = "
                                            "the values at the last lead")
    warnings = _stalled_warning(table, opt_prov["lr"]) if s.steps > 0 else []
    if warnings:
        result["warnings"] = warnings
    add_recommendation(result, rule)
    return result
