"""Rollout health: does a model stay on the reference trajectory when it is fed its own output?

A one-step score cannot see drift or instability (the reason the whitening pull request chose gamma by
rollout: 0.8 drifted over long runs, 1 destabilised them). :func:`rollout_health` rolls a target out
autoregressively from a :class:`~specprobe.models.base.RolloutSet` (the adapter's held-out
trajectories) and scores every lead against the reference, per degree band, with the scores the
lookahead uses (``spectral.degree_scores``): power ratio, ensemble-mean error, energy score. A lead is
flagged as blown up when a member is non-finite or a band's power ratio (channels summed, the
``power_ratio`` series) leaves [1 / blowup_factor, blowup_factor]. Channels are summed because one
channel's band can hold almost no reference power (the bundled model's smooth height field: its
high band is 12x the reference at lead 1 while the band over all channels is 1.7x).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

from ..errors import DataError, SpecprobeError
from ..spectral import POWER_CONVENTIONS, band_sums, default_bands, degree_scores, to_spectral

SCHEMA = "specprobe.rollout_health/1"
METRICS = ("power_ratio", "mse", "energy_score", "reference_power")
NOISE_SEED = 9_000_001  # rollout noise: the same in every arm (paired), apart from the lookahead's seeds


@dataclass(frozen=True)
class RolloutSettings:
    # steps: 20 x 3 h = 60 h on the bundled model (measured: docs/lookahead.md, "Rollout health"). The
    # untouched checkpoint drifts in every band by then (power ratio high 1.7 -> 37-45, flagged from
    # lead 9; mid 0.97 -> 1.8; total 1.2-1.45) while its low-band error is still growing (saturated
    # only near lead 40), and one rollout takes 1.7 s on one CPU thread (4 states x 2 members).
    steps: int = 20
    n_initial: int = 4
    n_ensemble: int = 2
    seed: int = 0
    blowup_factor: float = 10.0

    def __post_init__(self):
        for name, lo in (("steps", 1), ("n_initial", 1), ("n_ensemble", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"rollout {name}: expected an integer >= {lo}, got {v!r}")
        f = self.blowup_factor
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not (math.isfinite(f) and f > 1):
            raise ValueError(f"rollout blowup_factor: expected a finite number > 1, got {f!r}")


def build_rollout_set(target, data=None, *, settings: RolloutSettings, cache_dir=None, avoid=()):
    """``target.rollout_set`` sized by ``settings``; refused when it shares a state with a pool in ``avoid``
    (e.g. the lookahead's training pool). ``data``: torch-harmonics, a trajectory file or None (the
    solver); fme, the ``--data`` source (None: synthetic)."""
    if not hasattr(target, "rollout_set"):
        raise SpecprobeError(f"the {target.family} adapter cannot roll out (no rollout_set)")
    rs = target.rollout_set(data, n_initial=settings.n_initial, steps=settings.steps, seed=settings.seed,
                            cache_dir=cache_dir)
    for pool in avoid:
        shared = rs.shared_states(pool)
        if shared:
            where = pool.description.get("source", "a training pool")
            raise DataError(f"rollout initial states: {shared} state(s) are also in the pairs of {where}; "
                            "rollouts must start from held-out states")
    rs.description["disjoint_from"] = [p.description.get("source") for p in avoid]
    return rs


def rollout_health(target, rollout_set, *, settings: RolloutSettings, bands=None) -> dict:
    """Score ``target.rollout_leads(rollout_set, ...)`` lead by lead; a JSON-able dict (see module docstring).

    ``bands``: from ``spectral.parse_bands`` (None: the default bands of the loss SHT's degrees).
    The rollout set must hold ``settings.steps`` leads (build it with ``target.rollout_set(...,
    steps=settings.steps, n_initial=settings.n_initial)``).
    """
    import numpy as np

    if rollout_set.steps != settings.steps:
        raise ValueError(f"rollout set holds {rollout_set.steps} leads, settings.steps is {settings.steps}")
    started = time.perf_counter()
    series = {m: {} for m in METRICS}
    per_channel = {m: {} for m in METRICS[:3]}
    blow_up, reasons = [], []
    leads = target.rollout_leads(rollout_set, n_ensemble=settings.n_ensemble, seed=NOISE_SEED + settings.seed)
    for gen, ref in leads:
        finite = bool(np.isfinite(gen.detach().cpu().numpy()).all())
        sums = {k: v.double().sum(dim=0).cpu().numpy()  # (C, L) sums over initial states
                for k, v in degree_scores(to_spectral(gen, grid=target.loss_grid),
                                          to_spectral(ref, grid=target.loss_grid)).items()}
        if bands is None:
            bands = default_bands(sums["mse"].shape[-1])
        n = gen.shape[0]
        band = {k: band_sums(v, bands) for k, v in sums.items()}  # {term: {band: (C,)}}
        why = [] if finite else ["non-finite values"]
        for name in band["mse"]:
            p, t = band["pred_power"][name], band["target_power"][name]
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio_c = p / np.where(t > 0, t, np.nan)
            values = {"power_ratio": (float(p.sum() / t.sum()) if t.sum() > 0 else math.nan, ratio_c),
                      "mse": (float(band["mse"][name].mean() / n), band["mse"][name] / n),
                      "energy_score": (float((band["es_skill"][name] - band["es_spread"][name]).mean() / n),
                                       (band["es_skill"][name] - band["es_spread"][name]) / n),
                      "reference_power": (float(t.mean() / n), None)}
            for m, (overall, channels) in values.items():
                series[m].setdefault(name, []).append(overall)
                if channels is not None:
                    per_channel[m].setdefault(name, []).append([float(c) for c in channels])
            r, f = values["power_ratio"][0], settings.blowup_factor
            if finite and math.isfinite(r) and not (1.0 / f <= r <= f):
                why.append(f"{name} band power x{r:.3g} of the reference")
        blow_up.append(bool(why))
        reasons.append(why)
    first = next((k + 1 for k, b in enumerate(blow_up) if b), None)
    hours = rollout_set.description.get("lead_hours")
    return {
        "schema": SCHEMA,
        "settings": asdict(settings),
        "noise_seed": NOISE_SEED + settings.seed,
        "channels": list(target.channel_names),
        "bands": [{"name": b.name, "lo": b.lo, "hi": b.hi} for b in bands],
        "leads": list(range(1, settings.steps + 1)),
        "lead_hours": hours,
        "series": series,
        "per_channel": per_channel,
        "blow_up": blow_up,
        "blow_up_reasons": reasons,
        "first_blow_up_lead": first,
        "drift": {"lead": settings.steps, **{m: {b: v[-1] for b, v in series[m].items()} for m in METRICS}},
        "rollout_set": {k: v for k, v in rollout_set.description.items()},
        "conventions": {
            "rollout": "autoregressive: each member is fed its own previous output; one seeded noise generator "
                       "through the whole rollout; members repeat-interleaved as in training",
            "state_every": rollout_set.description.get("state_every"),
            "power_ratio": "band sum of the members' physical degree power (mean over members) / the reference's; "
                           "overall: ratio of the channel sums",
            "mse": "band sum of the physical degree power of (ensemble mean - reference), loss space; mean over "
                   "channels and initial states",
            "energy_score": "unwhitened fair energy score, fme weighting (sum_m mode_w ES / 2 sqrt(LM)), band sum; "
                            "mean over channels and initial states",
            "reference_power": "band sum of the reference's physical degree power; mean over channels and states",
            "blow_up": f"non-finite values, or a band's power ratio (overall, channels summed) outside "
                       f"[1/{settings.blowup_factor:g}, {settings.blowup_factor:g}]",
            "power_convention": POWER_CONVENTIONS["physical"],
            "bands": "bands of the loss SHT degrees; 'total' is every degree",
        },
        "seconds": round(time.perf_counter() - started, 3),
    }
